# MLflow tracking server with the PostgreSQL driver (the official image has none), for infra/docker-compose.yml.
FROM python:3.11-slim
RUN pip install --no-cache-dir "mlflow==3.17.2" "psycopg2-binary==2.9.13"
ENV MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true
EXPOSE 5000
