"""CUDA kernels through CuPy: fused SSIM maps and device-side statistics (CuPy imported lazily)."""
