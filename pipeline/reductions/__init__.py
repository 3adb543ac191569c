"""Partial statistics of SSIM maps per block, image and region, and their merge."""
