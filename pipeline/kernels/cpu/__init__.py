"""Compiled CPU kernels (numba): fused SSIM maps and statistics, colour, histogram, JIT cache."""
