"""Reproducible benchmarks: ``python -m benchmarks [perf|detection|all]`` (see each package's ``--help``)."""
