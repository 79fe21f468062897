"""Erased stays erased in the stream: the suppression list's replica and the ingest gate."""
