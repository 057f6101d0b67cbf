"""The training window: the last N spans, restarted at the newest day that began a new regime."""
