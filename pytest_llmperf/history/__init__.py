"""Nightly history: a SQL store of every session, change points over it, the drift guard."""
