"""Performance benchmark: ingest against zat and bare pyarrow, and the pipeline end to end at 1M and 10M flows.

Run ``python -m benchmarks.perf --help``. Results go to ``benchmarks/perf/RESULTS.md``.
"""
