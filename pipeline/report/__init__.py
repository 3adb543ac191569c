"""The report of a results store: figures and one self-contained HTML page."""
