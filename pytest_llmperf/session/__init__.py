"""Orchestration: the engine that runs a matrix, A/B, baseline sessions."""
