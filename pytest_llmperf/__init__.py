"""pytest-llmperf: LLM-serving performance as pytest regression tests."""

__version__ = "0.1.0"
