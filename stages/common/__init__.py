"""Small shared core copied into every stage image.

config (environment), storage (path/file:// /s3:// URIs), audit (PostgreSQL), logs,
schema (canonical flow schema), errors (exit codes) and runner (the stage main()).
"""
