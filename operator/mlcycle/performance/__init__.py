"""Live model quality from delayed ground truth: joining logged predictions with labels, and the metrics."""
