"""Training losses for PyTorch (torch is imported only here, lazily)."""
