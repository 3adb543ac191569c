"""A run: settings, plan, graphs, schedulers and the batch-by-batch run loop (``evaluate``)."""
