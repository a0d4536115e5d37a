"""Test instruments (a scripted OpenAI-compatible server with known timings)."""
