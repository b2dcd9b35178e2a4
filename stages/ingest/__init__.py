"""ingest stage: raw flows from Zeek/CSV/Parquet/synthetic sources into the canonical schema."""
