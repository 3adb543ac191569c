"""ssim-pipeline: streaming SSIM evaluation for whole datasets."""

from importlib.metadata import PackageNotFoundError, version

from pipeline.engine.config import RunConfig, load_config
from pipeline.engine.run import evaluate
from pipeline.inputs.folders import open_folder_pair  # registers the folder-of-images source
from pipeline.inputs.image_pair import open_file_pair  # registers the two-image-files source
from pipeline.kernels.cpu import jit_cache
from pipeline.metrics.loss import ssim_loss
from pipeline.metrics.multiscale import ms_ssim
from pipeline.metrics.profiles import PROFILES, SSIMParams
from pipeline.metrics.score import ssim
from pipeline.results.stores import open_results
from pipeline.review.accessor import ReviewAccessor  # registers the ``review`` Dataset accessor

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
