"""Loaders for the authors' reference implementations (benchmarks and fixture making only)."""
