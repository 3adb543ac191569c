"""ssim-pipeline: streaming SSIM evaluation for whole datasets."""

from importlib.metadata import PackageNotFoundError, version

from pipeline.loss import ssim_loss
from pipeline.metrics import ssim
from pipeline.multiscale import ms_ssim
from pipeline.presets import PROFILES, SSIMParams

try:
    __version__ = version("ssim-pipeline")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "PROFILES",
    "SSIMParams",
    "__version__",
    "ms_ssim",
    "ssim",
    "ssim_loss",
]
