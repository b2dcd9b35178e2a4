"""Detection-quality benchmark: our silver + train vs a plain Isolation Forest, on the same holdout.

Run ``python -m benchmarks.detection --help``. Results go to ``benchmarks/detection/RESULTS.md``.
"""
