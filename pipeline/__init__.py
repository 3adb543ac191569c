"""ssim-pipeline: streaming SSIM evaluation for whole datasets.

The public names are imported on first use (module ``__getattr__``), so that
``import pipeline`` -- and the command line's ``--help`` -- load neither NumPy's
numeric stack nor Dask, xarray, numba or matplotlib until something needs them.

The ``review`` accessor of xarray Datasets (:class:`ReviewAccessor`) is registered
as soon as xarray is imported: at once when it already is, otherwise by
:class:`_ImportHook`, a ``sys.meta_path`` finder that runs the registration right
after xarray's own module has executed (then removes itself); what it registers is
:class:`_ReviewPlaceholder`, which imports the accessor module on first use. So
``import pipeline; ds = xarray.open_zarr(...); ds.review`` works as it always did.
The same hook lets :mod:`pipeline.kernels.cpu.jit_cache` watch numba's first compile
as soon as numba is imported, whoever imports it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.engine.run import evaluate
    from pipeline.engine.settings import RunConfig, load_config
    from pipeline.inputs.folders import open_folder_pair
    from pipeline.inputs.image_pair import open_file_pair
    from pipeline.metrics.loss import ssim_loss
    from pipeline.metrics.multiscale import ms_ssim
    from pipeline.metrics.profiles import PROFILES, SSIMParams
    from pipeline.metrics.score import ssim
    from pipeline.results.stores import open_results
    from pipeline.review.accessor import ReviewAccessor

# Public name -> the module that defines it.
_PUBLIC = {
    "PROFILES": "pipeline.metrics.profiles",
    "ReviewAccessor": "pipeline.review.accessor",
    "RunConfig": "pipeline.engine.settings",
    "SSIMParams": "pipeline.metrics.profiles",
    "evaluate": "pipeline.engine.run",
    "load_config": "pipeline.engine.settings",
    "ms_ssim": "pipeline.metrics.multiscale",
    "open_file_pair": "pipeline.inputs.image_pair",
    "open_folder_pair": "pipeline.inputs.folders",
    "open_results": "pipeline.results.stores",
    "ssim": "pipeline.metrics.score",
    "ssim_loss": "pipeline.metrics.loss",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name on first use (and keep it as a module attribute)."""
    if name == "__version__":
        value: Any = _version()
    elif name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
    else:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ssim-pipeline")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


class _ReviewPlaceholder:
    """``ds.review`` until first used: then the accessor module is imported and answers.

    Registered on ``xarray.Dataset`` as soon as xarray is imported, without importing
    :mod:`pipeline.review.accessor` (which needs Dask and the reductions, and may be
    half-imported itself at that moment: Dask imports xarray when it is installed).
    """

    def __new__(cls, dataset: Any) -> Any:
        from pipeline.review.accessor import ReviewAccessor  # registers the real one

        return ReviewAccessor(dataset)


def _install_review_placeholder() -> None:
    if "pipeline.review.accessor" in sys.modules:  # imported (or importing): it registers
        return
    import xarray

    if not hasattr(xarray.Dataset, "review"):
        xarray.register_dataset_accessor("review")(_ReviewPlaceholder)


def _drop_review_placeholder() -> None:
    """Before the accessor module registers ``review``: no warning about an overridden name."""
    xarray = sys.modules.get("xarray")
    if xarray is not None and xarray.Dataset.__dict__.get("review") is not None:
        if getattr(xarray.Dataset.__dict__["review"], "_accessor", None) is _ReviewPlaceholder:
            delattr(xarray.Dataset, "review")


def _prepare_kernels() -> None:
    """Drop cached kernels built from older sources before numba's first compile."""
    half_done = sys.modules.get("pipeline.kernels.cpu.jit_cache")
    if half_done is not None and not hasattr(half_done, "refresh_before_first_compile"):
        # numba was first imported by jit_cache itself, which registers its listener
        # when its own import ends.
        return
    from pipeline.kernels.cpu import jit_cache

    jit_cache.refresh_before_first_compile()


_Hook = Callable[[], None] | None
# Module -> (what runs just before it executes, what runs right after it has), or now
# (the second) when it is already imported.
_IMPORT_HOOKS: dict[str, tuple[_Hook, _Hook]] = {
    "xarray": (None, _install_review_placeholder),
    "pipeline.review.accessor": (_drop_review_placeholder, None),
    "numba": (None, _prepare_kernels),
}


class _HookedLoader(importlib.abc.Loader):
    """Wraps a module's loader: ``before``, execute the module, ``after``."""

    def __init__(self, loader: Any, before: _Hook, after: _Hook) -> None:
        self._loader = loader
        self._before = before
        self._after = after

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self._loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        if self._before is not None:
            self._before()
        self._loader.exec_module(module)
        # The module keeps its own loader, as if it had been imported without the hook.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        if self._after is None:
            return
        try:
            self._after()
        except Exception as error:  # never break the user's import of the module
            warnings.warn(
                f"pipeline could not finish its set-up after importing {module.__name__} "
                f"({type(error).__name__}: {error})",
                RuntimeWarning,
                stacklevel=2,
            )


class _ImportHook(importlib.abc.MetaPathFinder):
    """A pre/post-import hook: finds no module itself, wraps the loader of those watched.

    On the import of a module of :data:`_IMPORT_HOOKS` it asks the other finders for
    the spec and wraps its loader in :class:`_HookedLoader`; it leaves ``sys.meta_path``
    once every watched module has been seen.
    """

    def __init__(self, pending: dict[str, tuple[_Hook, _Hook]]) -> None:
        self.pending = pending

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        hooks = self.pending.pop(fullname, None)
        if hooks is None:
            return None
        if not self.pending and self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _HookedLoader(spec.loader, *hooks)
                return spec
        return None


def _install_hooks() -> None:
    pending = {}
    for name, (before, after) in _IMPORT_HOOKS.items():
        if name not in sys.modules:
            pending[name] = (before, after)
        elif after is not None:
            after()
    if pending and not any(isinstance(f, _ImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _ImportHook(pending))


_install_hooks()
