"""The warm start, the pass-rate selection of questions and GRPO, with their checkpoints."""
