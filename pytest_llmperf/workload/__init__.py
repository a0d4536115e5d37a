"""Stage 3, the workload: prompts sized exactly with the server's tokenizer."""
