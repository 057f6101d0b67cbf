"""Atomic pusher: blessed model -> ``<serving_model_dir>/<version>/`` (TF Serving layout)."""
