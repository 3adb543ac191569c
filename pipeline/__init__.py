"""ssim-pipeline: streaming SSIM evaluation for whole datasets."""

from importlib.metadata import PackageNotFoundError, version

from pipeline import jit_cache
from pipeline.accessor import ReviewAccessor  # registers the ``review`` Dataset accessor
from pipeline.config import RunConfig, load_config
from pipeline.engine import evaluate
from pipeline.folders import open_folder_pair  # registers the folder-of-images source
from pipeline.loss import ssim_loss
from pipeline.metrics import ssim
from pipeline.multiscale import ms_ssim
from pipeline.presets import PROFILES, SSIMParams
from pipeline.sinks import open_results

# Before any kernel runs (numba loads its cache on a kernel's first call): drop cached
# kernels built from older sources.
jit_cache.refresh()

try:
    __version__ = version("ssim-pipeline")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "PROFILES",
    "ReviewAccessor",
    "RunConfig",
    "SSIMParams",
    "__version__",
    "evaluate",
    "load_config",
    "ms_ssim",
    "open_folder_pair",
    "open_results",
    "ssim",
    "ssim_loss",
]
