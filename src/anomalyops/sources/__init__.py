"""Where a day's data comes from: the demo simulator or files users drop in ``landing/``."""
