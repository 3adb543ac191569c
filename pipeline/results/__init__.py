"""The result Dataset: its schema, the stores it is written to and read from, lock, summary."""
