"""The pipeline run on this machine: the demo, its scoring step and the embedded services."""
