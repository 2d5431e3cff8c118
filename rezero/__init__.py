"""ReZero: teach a small LLM to search persistently, as a versioned pipeline."""
