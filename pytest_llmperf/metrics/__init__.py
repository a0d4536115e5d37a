"""Stage 5, metrics: per-run statistics from request records (pure)."""
