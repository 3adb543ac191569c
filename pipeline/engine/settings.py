"""Run settings: one frozen, validated object.

A :class:`RunConfig` holds everything that decides what :func:`pipeline.evaluate`
computes and where it goes. It is built from keyword arguments or from a mapping
(:meth:`RunConfig.from_mapping`) and dumps back to the same mapping, which
:mod:`pipeline.engine.config` reads from and writes to YAML.

The :meth:`RunConfig.fingerprint` is a hash of the settings that change the
numbers or the layout of the results; a results store remembers it, and a run
with a different fingerprint is refused on that store.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.engine.schedulers import ClusterSettings
from pipeline.inputs.sources import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_INPUT_ELEMENTS,
    MISSING_CHUNK_POLICIES,
    InputOptions,
)
from pipeline.kernels import ENGINES
from pipeline.metrics.colour import COLOR_MODES
from pipeline.metrics.multiscale import resolve_weights
from pipeline.metrics.profiles import COVARIANCES, PARAM_NAMES, PROFILES, WINDOWS

__all__ = [
    "DEVICES",
    "MAP_CHOICES",
    "NAN_POLICIES",
    "OUTPUT_FORMATS",
    "SCHEDULERS",
    "RunConfig",
]

DEVICES = ("cpu", "gpu")
OUTPUT_FORMATS = ("zarr", "netcdf", "csv")
# Dask's own schedulers; ``cluster.scheduler`` also takes clusters (pipeline.engine.schedulers).
# "default" leaves the choice to Dask's configuration, e.g. an active distributed Client.
SCHEDULERS = ("threads", "synchronous", "processes", "default")
# Flat shorthands for fields of the ``cluster:`` section (older configurations, the CLI's
# --scheduler and --performance-report): ``scheduler: local`` is ``cluster: {scheduler: local}``.
_CLUSTER_SHORTHANDS = {
    "scheduler": "scheduler",
    "num_workers": "workers",
    "performance_report": "performance_report",
}
MAP_CHOICES = ("ssim", "luminance", "contrast", "structure")
# What a non-finite (NaN/Inf) pixel does: fail its pair, or drop the windows touching it.
NAN_POLICIES = ("fail", "mask")

_REGION_PATTERN = re.compile(r"^(all|labels|\d+x\d+|\d+px)$")
_SUFFIX_FORMATS = {".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf", ".csv": "csv"}
# Settings that say how or where a run executes, not what it computes; they stay out
# of the fingerprint so that a resumed run may use another scheduler or flag.
_EXECUTION_ONLY = frozenset({"output", "resume", "overwrite", "cluster"})
# Mapping-valued settings: ``replace_dotted`` sets one entry of them by ``name.key``.
_SECTIONS = frozenset({"cluster", "data_ranges", "label_names"})


@dataclass(frozen=True)
class RunConfig:
    """Validated settings of one :func:`pipeline.evaluate` run.

    Parameters
    ----------
    profile : str
        Compatibility profile (``"wang2004"`` or ``"skimage"``).
    window, win_size, sigma, k1, k2, covariance
        Explicit SSIM parameters overriding the profile (``None`` keeps it).
    data_range : float, optional
        ``L``; integer inputs default to their dtype's range, floats must give it.
        In a folder that mixes dtypes a scalar is refused unless every integer dtype
        has a ``data_ranges`` entry; use ``data_ranges: {float32: 1.0}`` there.
    data_ranges : mapping, optional
        ``{dtype name: L}``, e.g. ``{"float32": 1.0, "uint16": 4095}``: the data range
        of the pairs of that dtype (folders that mix dtypes); wins over ``data_range``.
    channel_axis : int, optional
        Axis of colour channels in the input arrays.
    color_mode : str
        ``"channels"`` (per-channel SSIM, averaged per pixel) or ``"luma"``.
    regions : str
        ``"all"``, a grid ``"RxC"`` (rows x columns), a tile size ``"256px"`` or
        ``"labels"`` (with ``labels``).
    labels : str or array, optional
        Label mask: a Zarr path or an integer array of shape (y, x) or (image, y, x).
    label_names : mapping, optional
        ``{label value: name}``; only these labels become regions.
    hist_bins : int
        Number of equal histogram bins over [-1, 1].
    missing_chunks : str
        ``"fail"`` (default): a pair that touches a Zarr chunk that is not stored fails,
        naming the chunk. ``"fill"``: the array's fill value stands for missing chunks
        (stores that are sparse on purpose).
    max_image_pixels : int
        Largest image file decoded, in pixels (default 178,956,970, where Pillow's own
        decompression-bomb check stops); a larger file fails its pair.
    max_input_elements : int
        Largest Zarr input accepted, in elements (default 2**40); larger metadata is
        refused before any work.
    nan_policy : str
        ``"fail"`` (default): a pair with a NaN or Inf pixel fails, with the count in
        its ``status``. ``"mask"``: the windows touching such a pixel are left out
        of every statistic and counted per pair in the ``nan_masked`` variable.
    ms_ssim : bool
        Also compute MS-SSIM per image (the ``ms_ssim`` variable), chunk by chunk.
    ms_weights : tuple of float, optional
        MS-SSIM exponents, one per scale (default Wang's five); needs ``ms_ssim``.
    volume : bool
        Evaluate the stack as one 3-D volume (image axis = ``z``) with an N-D
        window: one result row (see :mod:`pipeline.engine.volumes`).
    chunks : str or tuple
        ``"auto"`` (planned from ``chunk_pixels`` and the source's chunks),
        ``"input"`` (keep a Dask input's chunks) or ``(images, y, x)``.
    chunk_pixels : int
        Target number of pixels read by one task (default 2**22: 2000x2000 tiles of
        a 1000-chunked Zarr image; measured 13 % faster than 2**21, peak RSS under
        1 GB for a 20000x20000 pair with a 4x4 region grid).
    batch_images : int, optional
        Images committed to the output per batch (default: planned).
    save_maps : bool
        Also write the maps named in ``maps`` to Zarr.
    maps : tuple of str
        Which maps ``save_maps`` writes.
    maps_output : str, optional
        Zarr path of the maps (default: group ``maps`` inside a Zarr output).
    output : str, optional
        Results path; the format follows the suffix unless ``output_format`` is given.
    output_format : str, optional
        ``"zarr"``, ``"netcdf"`` or ``"csv"``.
    zarr_format : int
        2 or 3.
    resume, overwrite : bool
        Continue an interrupted run, or replace an existing store.
    engine : str
        Kernel engine passed to :func:`pipeline.kernels.block_maps`.
    device : str
        ``"cpu"`` or ``"gpu"``.
    cluster : ClusterSettings or mapping
        Where the graph runs (:class:`pipeline.engine.schedulers.ClusterSettings`): Dask's
        ``threads`` (default), ``synchronous`` or ``processes`` scheduler, a
        ``local`` cluster, a scheduler address or file, ``slurm``/``pbs`` or
        ``cuda``. Not part of the fingerprint: results are the same everywhere.
        The flat shorthands ``scheduler``, ``num_workers`` and
        ``performance_report`` (accepted by :meth:`from_mapping` and
        :meth:`replace`) set ``cluster.scheduler``, ``cluster.workers`` and
        ``cluster.performance_report``, and win over the section.
    """

    profile: str = "wang2004"
    window: str | None = None
    win_size: int | None = None
    sigma: float | None = None
    k1: float | None = None
    k2: float | None = None
    covariance: str | None = None
    data_range: float | None = None
    data_ranges: Mapping[str, float] | None = None
    channel_axis: int | None = None
    color_mode: str = "channels"
    regions: str = "all"
    labels: Any = None
    label_names: Mapping[int, str] | None = None
    hist_bins: int = 100
    nan_policy: str = "fail"
    missing_chunks: str = "fail"
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_input_elements: int = DEFAULT_MAX_INPUT_ELEMENTS
    ms_ssim: bool = False
    ms_weights: tuple[float, ...] | None = None
    volume: bool = False
    chunks: str | tuple[int, int, int] = "auto"
    chunk_pixels: int = 2**22
    batch_images: int | None = None
    save_maps: bool = False
    maps: tuple[str, ...] = ("ssim",)
    maps_output: str | None = None
    output: str | None = None
    output_format: str | None = None
    zarr_format: int = 3
    resume: bool = False
    overwrite: bool = False
    engine: str = "auto"
    device: str = "cpu"
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    def __post_init__(self) -> None:
        _choice("profile", self.profile, tuple(PROFILES))
        _choice("window", self.window, WINDOWS, optional=True)
        _choice("covariance", self.covariance, COVARIANCES, optional=True)
        _choice("color_mode", self.color_mode, COLOR_MODES)
        _choice("engine", self.engine, ENGINES)
        _choice("device", self.device, DEVICES)
        _choice("nan_policy", self.nan_policy, NAN_POLICIES)
        _choice("missing_chunks", self.missing_chunks, MISSING_CHUNK_POLICIES)
        if isinstance(self.cluster, Mapping):
            object.__setattr__(self, "cluster", ClusterSettings.from_mapping(self.cluster))
        elif not isinstance(self.cluster, ClusterSettings):
            raise TypeError(
                f"cluster must be a mapping of cluster settings (got {type(self.cluster).__name__})"
            )
        _choice("output_format", self.output_format, OUTPUT_FORMATS, optional=True)
        for name in (
            "win_size",
            "hist_bins",
            "chunk_pixels",
            "batch_images",
            "max_image_pixels",
            "max_input_elements",
        ):
            _positive_int(name, getattr(self, name), optional=name in ("win_size", "batch_images"))
        for name in ("sigma", "k1", "k2", "data_range"):
            _positive_float(self, name)
        self._check_data_ranges()
        if self.channel_axis is not None and (
            isinstance(self.channel_axis, bool) or not isinstance(self.channel_axis, int)
        ):
            raise TypeError(f"channel_axis must be an integer or None (got {self.channel_axis!r})")
        for name in ("save_maps", "resume", "overwrite"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false (got {getattr(self, name)!r})")
        if self.zarr_format not in (2, 3) or isinstance(self.zarr_format, bool):
            raise ValueError(f"zarr_format must be 2 or 3 (got {self.zarr_format!r})")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other (got both true)")
        self._check_regions()
        self._check_chunks()
        self._check_family()
        maps = (self.maps,) if isinstance(self.maps, str) else tuple(self.maps)
        for name in maps:
            _choice("maps", name, MAP_CHOICES)
        object.__setattr__(self, "maps", maps)
        for name in ("output", "maps_output"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str | Path):
                    raise TypeError(f"{name} must be a path (got {value!r})")
                object.__setattr__(self, name, str(value))

    def _check_regions(self) -> None:
        if not isinstance(self.regions, str) or not _REGION_PATTERN.match(self.regions):
            raise ValueError(
                f"regions must be 'all', a grid 'RxC' such as '4x4', a tile size such as "
                f"'256px', or 'labels' (got {self.regions!r})"
            )
        if self.regions != "all" and self.regions != "labels":
            sizes = [int(v) for v in re.findall(r"\d+", self.regions)]
            if min(sizes) < 1:
                raise ValueError(f"regions needs sizes of at least 1 (got {self.regions!r})")
        if self.regions == "labels" and self.labels is None:
            raise ValueError("regions='labels' needs labels (a label mask array or Zarr path)")
        if self.labels is not None and self.regions != "labels":
            raise ValueError(
                f"labels were given but regions is {self.regions!r}; set regions='labels'"
            )
        if self.label_names is not None:
            if not isinstance(self.label_names, Mapping):
                raise TypeError(
                    f"label_names must be a mapping of label value to name "
                    f"(got {type(self.label_names).__name__})"
                )
            names: dict[int, str] = {}
            for key, value in self.label_names.items():
                if (
                    isinstance(key, bool)
                    or not isinstance(key, int | str)
                    or not str(key).isdigit()
                ):
                    raise ValueError(
                        f"label_names keys must be non-negative integers (got {key!r})"
                    )
                names[int(key)] = str(value)
            if len(set(names.values())) != len(names):
                raise ValueError(f"label_names must be unique (got {sorted(names.values())})")
            object.__setattr__(self, "label_names", dict(sorted(names.items())))

    def _check_data_ranges(self) -> None:
        if self.data_ranges is None:
            return
        if not isinstance(self.data_ranges, Mapping):
            raise TypeError(
                "data_ranges must be a mapping of dtype name to data range, e.g. "
                f"{{float32: 1.0}} (got {type(self.data_ranges).__name__})"
            )
        ranges: dict[str, float] = {}
        for key, value in self.data_ranges.items():
            try:
                dtype = np.dtype(str(key))
            except TypeError:
                raise ValueError(
                    f"data_ranges keys must be dtype names such as 'float32' or 'uint16' "
                    f"(got {key!r})"
                ) from None
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"data_ranges[{key!r}] must be a positive finite number (got {value!r})"
                )
            ranges[dtype.name] = float(value)
        object.__setattr__(self, "data_ranges", dict(sorted(ranges.items())))

    def input_options(self) -> InputOptions:
        """The settings that say how inputs are read (:func:`pipeline.inputs.sources.open_pair`)."""
        return InputOptions(
            missing_chunks=self.missing_chunks,
            max_image_pixels=self.max_image_pixels,
            max_input_elements=self.max_input_elements,
        )

    def _check_chunks(self) -> None:
        if isinstance(self.chunks, str):
            _choice("chunks", self.chunks, ("auto", "input"))
            return
        values = tuple(self.chunks) if isinstance(self.chunks, list | tuple) else ()
        if len(values) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ValueError(
                "chunks must be 'auto', 'input' or three positive integers "
                f"(images, y, x) (got {self.chunks!r})"
            )
        object.__setattr__(self, "chunks", values)

    def _check_family(self) -> None:
        for name in ("ms_ssim", "volume"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false (got {getattr(self, name)!r})")
        if self.ms_weights is not None:
            if not self.ms_ssim:
                raise ValueError(
                    f"ms_weights were given ({self.ms_weights!r}) but ms_ssim is false; "
                    "set ms_ssim=True"
                )
            object.__setattr__(self, "ms_weights", resolve_weights(self.ms_weights))

    # -- conversions -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> RunConfig:
        """Build from a mapping such as parsed YAML; unknown keys are refused."""
        if not isinstance(mapping, Mapping):
            raise TypeError(f"a configuration must be a mapping (got {type(mapping).__name__})")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in mapping if k not in valid and k not in _CLUSTER_SHORTHANDS)
        if unknown:
            raise ValueError(
                f"unknown configuration key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}"
            )
        values = _fold_cluster_shorthands(dict(mapping), ClusterSettings())
        if isinstance(values.get("chunks"), list):
            values["chunks"] = tuple(values["chunks"])
        if isinstance(values.get("maps"), list):
            values["maps"] = tuple(values["maps"])
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """Plain YAML/JSON-safe values of every field (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, ClusterSettings):
                value = value.to_mapping()
            elif f.name == "labels" and value is not None and not isinstance(value, str):
                value = f"<in-memory {type(value).__name__}>"
            out[f.name] = value
        return out

    def replace(self, **overrides: Any) -> RunConfig:
        """A copy with ``overrides`` applied (and validated); unknown names are refused."""
        valid = [f.name for f in fields(self)]
        unknown = sorted(set(overrides) - set(valid) - set(_CLUSTER_SHORTHANDS))
        if unknown:
            raise TypeError(
                f"unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(valid)}"
            )
        return replace(self, **_fold_cluster_shorthands(dict(overrides), self.cluster))

    def replace_dotted(self, assignments: Mapping[str, Any]) -> RunConfig:
        """A copy with settings named by dotted keys replaced, nested sections merged.

        Parameters
        ----------
        assignments : mapping
            ``{"win_size": 7, "cluster.workers": 4, "data_ranges.float32": 1.0}``: a
            key is a field name (or a flat ``scheduler``/``num_workers``/
            ``performance_report``); ``section.key`` sets one entry of a mapping
            field (``cluster``, ``data_ranges``, ``label_names``) and keeps the others.
            Applied in order, so a later key wins.

        Raises
        ------
        ValueError
            An unknown field, or a dotted key into a field that is not a mapping.

        Examples
        --------
        >>> RunConfig().replace_dotted({"cluster.workers": 2, "win_size": 7}).cluster.workers
        2
        """
        valid = [f.name for f in fields(self)] + list(_CLUSTER_SHORTHANDS)
        current = self.to_mapping()
        values: dict[str, Any] = {}
        for key, value in assignments.items():
            head, *path = str(key).split(".")
            if head not in valid:
                close = difflib.get_close_matches(head, valid, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown setting {head!r} in key {key!r}{hint} (valid settings: "
                    f"{', '.join(valid)})"
                )
            if not path:
                values[head] = value
                continue
            section = values.get(head, current.get(head))
            if section is None and head in _SECTIONS:
                section = {}
            if head == "cluster" and isinstance(section, ClusterSettings):
                section = section.to_mapping()
            if not isinstance(section, Mapping):
                raise ValueError(
                    f"setting {head!r} is not a section, so {key!r} cannot name an entry in it "
                    f"(it holds {section!r}); set it whole: {head}=VALUE"
                )
            values[head] = _set_nested(dict(section), path, value, key)
        return self.replace(**values)

    @property
    def scheduler(self) -> str:
        """``cluster.scheduler``, the one switch of where the graph runs."""
        return self.cluster.scheduler

    def ssim_overrides(self) -> dict[str, Any]:
        """The explicit SSIM parameters, for :func:`pipeline.metrics.profiles.resolve_params`."""
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def resolved_output_format(self) -> str | None:
        """The output format, from ``output_format`` or the output path's suffix."""
        if self.output is None:
            return None
        if self.output_format is not None:
            return self.output_format
        suffix = Path(self.output.rstrip("/")).suffix.lower()
        if suffix not in _SUFFIX_FORMATS:
            raise ValueError(
                f"cannot tell the output format from {self.output!r}; use a suffix among "
                f"{', '.join(_SUFFIX_FORMATS)} or set output_format"
            )
        return _SUFFIX_FORMATS[suffix]

    def result_mapping(self) -> dict[str, Any]:
        """:meth:`to_mapping` without the settings of how and where the run executes.

        What a results store records: a resumed run leaves it unchanged.
        """
        return {k: v for k, v in self.to_mapping().items() if k not in _EXECUTION_ONLY}

    def fingerprint(self) -> str:
        """Stable hash of the settings that decide the results (not how the run executes)."""
        canonical = self.result_mapping()
        if self.labels is not None and not isinstance(self.labels, str):
            from dask.base import tokenize

            # tokenize hashes an array's values (NumPy) or its graph (Dask) deterministically.
            canonical["labels"] = tokenize(self.labels)
        text = json.dumps(canonical, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fold_cluster_shorthands(values: dict[str, Any], cluster: ClusterSettings) -> dict[str, Any]:
    """Move the flat ``scheduler``/``num_workers`` into ``values["cluster"]``."""
    shorthands = {
        target: values.pop(name)
        for name, target in _CLUSTER_SHORTHANDS.items()
        if name in values and values[name] is not None
    }
    for name in _CLUSTER_SHORTHANDS:
        values.pop(name, None)
    if shorthands:
        base = values.get("cluster", cluster)
        if isinstance(base, Mapping):
            base = ClusterSettings.from_mapping(base)
        if isinstance(base, ClusterSettings):
            values["cluster"] = replace(base, **shorthands)
    return values


def _set_nested(section: dict[str, Any], path: list[str], value: Any, key: str) -> dict[str, Any]:
    """``section`` with ``value`` at ``path`` (one key per level), other entries kept."""
    head, *rest = path
    if not rest:
        section[head] = value
        return section
    inner = section.get(head, {})
    if not isinstance(inner, Mapping):
        raise ValueError(
            f"{key!r} names an entry inside {head!r}, which is not a section (it holds {inner!r})"
        )
    section[head] = _set_nested(dict(inner), rest, value, key)
    return section


def _choice(name: str, value: Any, allowed: tuple[str, ...], *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")


def _positive_int(name: str, value: Any, *, optional: bool) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer (got {value!r})")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (got {value})")


def _positive_float(config: RunConfig, name: str) -> None:
    value = getattr(config, name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise TypeError(f"{name} must be a number (got {value!r})")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number (got {value})")
    object.__setattr__(config, name, float(value))
