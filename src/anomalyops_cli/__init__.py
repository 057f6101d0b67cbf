"""The ``anomalyops`` command: one entry point that dispatches to every layer below it."""
