"""`mlcycle runs`: training runs side by side (compare.py), their learning curves (curves.py), and the
command that reads both from the cluster and S3 (cli.py)."""
