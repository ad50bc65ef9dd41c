"""Benchmarks: scripts that print their numbers and write them as JSON (never timed tests)."""
