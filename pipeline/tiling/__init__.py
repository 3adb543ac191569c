"""Chunk planning and the overlapped-block graphs whose blocks give exact 'valid' SSIM maps."""
