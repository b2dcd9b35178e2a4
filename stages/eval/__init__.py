"""eval: score the holdout, measure, report, apply the quality gate, manage the champion alias."""
