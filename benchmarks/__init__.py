"""Benchmarks and fault scenarios of the whole service (run as modules: ``python -m benchmarks.faults``)."""
