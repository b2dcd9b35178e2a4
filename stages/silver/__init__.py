"""Silver stage: RAW canonical flows → per-flow and time-window features, a time split, a manifest."""
