"""Scoring checkpoints, the statistics of accuracy, the ReZero-versus-baseline comparison and its figures."""
