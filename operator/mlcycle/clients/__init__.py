"""Clients for the services mlcycle talks to (S3 object storage, Triton)."""
