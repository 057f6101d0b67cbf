"""Fails the run when ExampleValidator reports anomalies (ExampleValidator alone never fails)."""
