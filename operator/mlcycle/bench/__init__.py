"""Benchmarks: scripts that print numbers (see docs/benchmarks.md). Never timed assertions in tests."""
