"""Data drift: bounded per-column summaries and the statistics that compare a window of logged requests
with a reference (see stats.py), and the report a drift check writes (report.py)."""
