"""The four pipeline stages (ingest, silver, train, eval) and their small shared core."""
