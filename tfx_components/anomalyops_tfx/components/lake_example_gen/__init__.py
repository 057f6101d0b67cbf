"""ExampleGen over the lake's ``validated/ds=YYYY-MM-DD/`` partitions (one span per day)."""
