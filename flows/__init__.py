"""The Prefect flows (pipeline.py, compare.py) and what they share (support.py, reports.py)."""
