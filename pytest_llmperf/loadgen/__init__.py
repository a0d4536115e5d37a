"""Stage 4, the load generator: the measured hot path and the run orchestration."""
