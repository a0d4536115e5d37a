"""`python -m pytest_llmperf` subcommands."""
