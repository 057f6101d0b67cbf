"""Final step: ask the scoring service to reload and confirm it serves the pushed version."""
