"""Ingest: where events come from (Kafka, files), decoding them, and dead letters."""
