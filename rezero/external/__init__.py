"""What reaches outside the process: model files, MLflow, OpenAI-compatible endpoints, and the redaction of
the URLs and credentials they use."""
