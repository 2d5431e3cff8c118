"""The one exception stages turn into a clear message and a non-zero exit."""


class PipelineError(Exception):
    """Bad input or configuration. The message says what is wrong and how to fix it."""
