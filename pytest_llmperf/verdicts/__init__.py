"""Stage 6, verdicts: gates, saturation, baselines, fingerprints and comparison."""
