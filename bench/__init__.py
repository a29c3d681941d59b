"""Benchmarks (importable so that worker processes can load `bench.throughput` by name)."""
