"""Synthetic participants: test-pattern media sources and a Python room client that speaks /ws."""
