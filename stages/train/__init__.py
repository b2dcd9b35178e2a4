"""Train stage: silver features → calibrated anomaly model (skops), model card, MLflow run and version."""
