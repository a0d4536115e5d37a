"""Outputs: results.json, plots, HTML, benchmark.json, terminal lines."""
