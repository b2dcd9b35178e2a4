"""Scoring benchmark: throughput and memory of the score stage, and what a later day looks like to an analyst."""
