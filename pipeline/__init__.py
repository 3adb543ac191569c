"""ssim-pipeline: streaming SSIM evaluation for whole datasets."""

from importlib.metadata import PackageNotFoundError, version

from pipeline import jit_cache
from pipeline.accessor import ReviewAccessor  # registers the ``review`` Dataset accessor
from pipeline.config import RunConfig, load_config
from pipeline.engine import evaluate
from pipeline.folders import open_folder_pair  # registers the folder-of-images source
from pipeline.image_pair import open_file_pair  # registers the two-image-files source
from pipeline.loss import ssim_loss
from pipeline.metrics import ssim
from pipeline.multiscale import ms_ssim
from pipeline.presets import PROFILES, SSIMParams
from pipeline.sinks import open_results

# Cached kernels built from older sources are dropped on the first kernel call (numba
# reads its cache then), never at import.
jit_cache.refresh_before_first_compile()

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
    "open_file_pair",
    "open_folder_pair",
    "open_results",
    "ssim",
    "ssim_loss",
]
