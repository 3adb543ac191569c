"""One pair in memory: ``ssim``, ``ms_ssim``, ``ssim_loss``, profiles and input checks."""
