"""Run settings: one validated model, read from and written to YAML here.

A :class:`RunConfig` holds everything that decides what :func:`pipeline.evaluate`
computes and where it goes; :class:`ClusterSettings` is its ``cluster:`` section.
Both are frozen pydantic models: each field's type, choices and bounds are declared
once, refused values are reported in the house words (the setting, the value, what is
allowed), and :meth:`RunConfig.model_json_schema` is the JSON Schema of the YAML
files (committed as ``configs/schema.json``). The command line's options are
generated from the same fields (:mod:`pipeline.cli.parser`).

:func:`load_config` reads a YAML file (the one YAML reader of run settings: safe
loader, bounded alias expansion and nesting) and :func:`dump_config` writes one back,
so YAML -> settings -> YAML is a round trip. :func:`resolve_config` turns what
``evaluate(config=...)`` was given (an object, a mapping, a YAML path or nothing)
plus keyword overrides into the effective settings.

The :meth:`RunConfig.fingerprint` is a hash of the settings that change the
numbers or the layout of the results; a results store remembers it, and a run
with a different fingerprint is refused on that store.

Only light modules are imported here (pydantic, PyYAML, the regions grammar), so the
command line's ``--help`` does not load NumPy or Dask; the checks shared with the
in-memory API (data ranges, MS-SSIM weights) are imported when a value needs them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import operator
from collections.abc import Callable, Mapping
from numbers import Real
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.inputs.options import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_INPUT_ELEMENTS,
    InputOptions,
)
from pipeline.reductions.region_spec import (
    REGION_PATTERN,
    REGION_SPEC_HELP,
    RegionSpec,
    parse_region_spec,
)
from pipeline.storage.locations import redact_options

if TYPE_CHECKING:
    import yaml


__all__ = [
    "COLOR_MODES",
    "COVARIANCES",
    "DEVICES",
    "ENGINES",
    "LOCAL_SCHEDULERS",
    "MAP_CHOICES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "MISSING_CHUNK_POLICIES",
    "NAMED_SCHEDULERS",
    "NAN_POLICIES",
    "OUTPUT_FORMATS",
    "PROFILE_NAMES",
    "SCHEDULERS",
    "WINDOWS",
    "ClusterSettings",
    "RunConfig",
    "dump_config",
    "json_schema_text",
    "load_config",
    "resolve_config",
    "write_json_schema",
]

# -- choices -------------------------------------------------------------------------
# Declared here as types so that the settings (and the command line) need not import the
# numeric modules that implement them; tests/engine/test_settings.py checks that each
# matches its implementation (metrics.profiles, metrics.colour, kernels, inputs.sources).
ProfileName = Literal["wang2004", "skimage", "wang2009"]
WindowName = Literal["gaussian", "uniform"]
CovarianceName = Literal["population", "sample"]
ColorMode = Literal["channels", "luma"]
EngineName = Literal["auto", "reference", "fused", "gpu"]
DeviceName = Literal["cpu", "gpu"]
# What a non-finite (NaN/Inf) pixel does: fail its pair, or drop the windows touching it.
NanPolicy = Literal["fail", "mask"]
MissingChunkPolicy = Literal["fail", "fill"]
OutputFormat = Literal["zarr", "netcdf", "csv"]
_MapLiteral = Literal["ssim", "luminance", "contrast", "structure"]
if TYPE_CHECKING:
    # The engine handles these as plain names and numbers; validation uses the Literals.
    MapName = str
    ZarrFormat = int
else:
    MapName = _MapLiteral
    ZarrFormat = Literal[2, 3]

PROFILE_NAMES: tuple[str, ...] = get_args(ProfileName)
WINDOWS: tuple[str, ...] = get_args(WindowName)
COVARIANCES: tuple[str, ...] = get_args(CovarianceName)
COLOR_MODES: tuple[str, ...] = get_args(ColorMode)
ENGINES: tuple[str, ...] = get_args(EngineName)
DEVICES: tuple[str, ...] = get_args(DeviceName)
NAN_POLICIES: tuple[str, ...] = get_args(NanPolicy)
MISSING_CHUNK_POLICIES: tuple[str, ...] = get_args(MissingChunkPolicy)
MAP_CHOICES: tuple[str, ...] = get_args(_MapLiteral)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)

# Schedulers that need no cluster: Dask's own, or whatever Dask's configuration says
# ("default" leaves the choice to it, e.g. an active distributed Client).
LOCAL_SCHEDULERS = ("threads", "synchronous", "processes", "default")
SCHEDULERS = LOCAL_SCHEDULERS
NAMED_SCHEDULERS = (*LOCAL_SCHEDULERS, "local", "slurm", "pbs", "cuda")


# Flat shorthands for fields of the ``cluster:`` section (older configurations, the CLI's
# --scheduler and --performance-report): ``scheduler: local`` is ``cluster: {scheduler: local}``.
CLUSTER_SHORTHANDS = {
    "scheduler": "scheduler",
    "num_workers": "workers",
    "performance_report": "performance_report",
}
_SUFFIX_FORMATS = {".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf", ".csv": "csv"}
# Settings that say how or where a run executes, not what it computes; they stay out
# of the fingerprint so that a resumed run may use another scheduler or flag.
# storage_options too: how inputs are reached, and it may hold credentials, which a
# results store must never record.
_EXECUTION_ONLY = frozenset({"output", "resume", "overwrite", "cluster", "storage_options"})
# Mapping-valued settings: ``replace_dotted`` sets one entry of them by ``name.key``.
_SECTIONS = frozenset({"cluster", "data_ranges", "label_names", "storage_options"})


# -- value checks ----------------------------------------------------------------------
# Before-validators: they refuse what YAML or Python could hand over by mistake (a bool
# for a count, a string for a number) with a custom error type that _house_error words.


def _type_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("setting_type", "{message}", {"message": message})


def _integer(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        raise PydanticCustomError("setting_integer", "must be an integer")
    try:
        return operator.index(value)  # int and NumPy integers
    except TypeError:
        raise PydanticCustomError("setting_integer", "must be an integer") from None


def _number(value: Any) -> Any:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    if isinstance(value, Real) and not isinstance(value, bool):
        return float(value)  # NumPy scalars
    raise PydanticCustomError("setting_number", "must be a number")


def _boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise PydanticCustomError("setting_boolean", "must be true or false")
    return value


def _path(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, PathLike):
        return str(value)
    raise PydanticCustomError("setting_path", "must be a path")


def _strict_str(value: Any) -> Any:
    if value is not None and not isinstance(value, str):
        raise PydanticCustomError("setting_string", "must be a string")
    return value


Count = Annotated[int, BeforeValidator(_integer), Field(ge=1)]
OptionalCount = Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_integer)]
PositiveNumber = Annotated[float, BeforeValidator(_number), Field(gt=0, allow_inf_nan=False)]
OptionalPositiveNumber = Annotated[
    Annotated[float, Field(gt=0, allow_inf_nan=False)] | None, BeforeValidator(_number)
]
Flag = Annotated[bool, BeforeValidator(_boolean)]
PathText = Annotated[str | None, BeforeValidator(_path)]
Text = Annotated[str | None, BeforeValidator(_strict_str)]

_MODEL_CONFIG = ConfigDict(
    frozen=True,
    extra="forbid",
    arbitrary_types_allowed=True,
    # The validators are built on first use: the command line's --help reads the
    # fields only, and should not pay for them.
    defer_build=True,
)


# -- error wording ---------------------------------------------------------------------

_TEMPLATES: dict[str, tuple[type[Exception], str]] = {
    "setting_integer": (TypeError, "{name} must be an integer (got {input!r})"),
    "setting_number": (TypeError, "{name} must be a number (got {input!r})"),
    "setting_boolean": (TypeError, "{name} must be true or false (got {input!r})"),
    "setting_path": (TypeError, "{name} must be a path (got {input!r})"),
    "setting_string": (TypeError, "{name} must be a string (got {input!r})"),
    "string_type": (TypeError, "{name} must be a string (got {input!r})"),
    "greater_than_equal": (ValueError, "{name} must be at least {ge} (got {input})"),
    "greater_than": (ValueError, "{name} must be a positive finite number (got {input})"),
    "finite_number": (ValueError, "{name} must be a positive finite number (got {input})"),
    "tuple_type": (TypeError, "{name} must be a list (got {input!r})"),
    "dict_type": (TypeError, "{name} must be a mapping (got {input!r})"),
}
# The cluster section's counts have always said "positive integer".
_CLUSTER_TEMPLATES: dict[str, tuple[type[Exception], str]] = {
    **_TEMPLATES,
    "greater_than_equal": (ValueError, "{name} must be a positive integer (got {input!r})"),
    "setting_integer": (TypeError, "{name} must be a positive integer (got {input!r})"),
}


def _choices_text(choices: tuple[Any, ...]) -> str:
    if all(isinstance(c, int) for c in choices):
        return " or ".join(str(c) for c in choices)
    return "one of " + ", ".join(str(c) for c in choices)


def _literal_choices(model: type[BaseModel], name: str) -> tuple[Any, ...]:
    """The choices of a Literal-typed field (inside Optional or tuple[...] too)."""
    todo = [model.model_fields[name].annotation]
    while todo:
        annotation = todo.pop()
        if getattr(annotation, "__origin__", None) is Literal:
            return get_args(annotation)
        todo.extend(get_args(annotation))
    return ()


def _house_error(
    error: ValidationError,
    model: type[BaseModel],
    unknown: Callable[[list[str]], Exception],
    *,
    prefix: str = "",
) -> Exception:
    """The first problem of ``error`` in the house words: setting, value, what is allowed.

    ``unknown`` words unknown keys (they differ between a file, a mapping and keyword
    arguments); a problem inside the cluster section names ``cluster.KEY``.
    """
    details = error.errors(include_url=False)
    for detail in details:
        loc = [prefix] if prefix else []
        loc += [part for part in detail["loc"] if isinstance(part, str)]  # not list indices
        in_cluster = len(loc) > 1 and loc[0] == "cluster"
        owner: type[BaseModel] = ClusterSettings if in_cluster else model
        field = loc[1] if in_cluster else (loc[0] if loc else "")
        name = ".".join(loc[:2]) if in_cluster else field
        kind, ctx, value = detail["type"], detail.get("ctx") or {}, detail["input"]
        if kind == "extra_forbidden":
            keys = [d["loc"] for d in details if d["type"] == kind]
            if in_cluster:
                return _cluster_unknown(sorted({str(k[-1]) for k in keys if prefix or len(k) > 1}))
            return unknown(sorted(str(k[0]) for k in keys if len(k) == 1))
        if kind == "value_error":
            return ValueError(str(ctx.get("error", detail["msg"])))
        if kind == "setting_type":
            return TypeError(str(ctx["message"]))
        if kind == "literal_error":
            choices = _literal_choices(owner, field) if field in owner.model_fields else ()
            allowed = _choices_text(choices) if choices else f"one of {ctx.get('expected')}"
            return ValueError(f"{name} must be {allowed} (got {value!r})")
        if kind in ("model_type", "model_attributes_type") and loc == ["cluster"]:
            return TypeError(
                f"cluster must be a mapping of cluster settings (got {type(value).__name__})"
            )
        templates = _CLUSTER_TEMPLATES if in_cluster else _TEMPLATES
        if kind in templates:
            cls, template = templates[kind]
            return cls(template.format(name=name, input=value, **ctx))
    first = details[0]
    where = ".".join(str(part) for part in first["loc"]) or model.__name__
    return ValueError(f"{where}: {first['msg']}")


# -- the cluster section ---------------------------------------------------------------


class ClusterSettings(BaseModel):
    """The ``cluster:`` section of a run configuration: where the graph runs.

    ``scheduler`` is one of :data:`NAMED_SCHEDULERS`, a ``tcp://``/``tls://``
    address or the path of a Dask scheduler file (``*.json``). ``workers`` is
    the number of worker threads (``threads``), processes (``processes``,
    ``local``) or jobs (``slurm``/``pbs``). ``performance_report`` is a path
    for Dask's HTML performance report (distributed schedulers only). The
    scheduler itself is opened by :func:`pipeline.engine.schedulers.open_scheduler`.
    """

    model_config = ConfigDict(
        **_MODEL_CONFIG,
        json_schema_extra={"description": "Where the graph runs (not part of the fingerprint)."},
    )

    scheduler: str = Field(
        "threads",
        description="threads (default), synchronous, processes, default, local, slurm, pbs, "
        "cuda, a tcp:// address or a scheduler file (*.json)",
    )
    workers: OptionalCount = Field(
        None, description="worker threads (threads), processes (processes, local) or jobs"
    )
    threads_per_worker: OptionalCount = Field(None, description="threads of each worker")
    cores: OptionalCount = Field(None, description="cores per job (slurm, pbs)")
    memory: Text = Field(None, description="memory per job, e.g. 8GiB (slurm, pbs)")
    walltime: Text = Field(None, description="wall time per job, e.g. '01:00:00' (quoted)")
    queue: Text = Field(None, description="queue or partition (slurm, pbs)")
    account: Text = Field(None, description="account charged (slurm, pbs)")
    job_directives: tuple[str, ...] = Field((), description="extra job script lines")
    connect_timeout: PositiveNumber = Field(
        10.0, description="seconds to wait for a scheduler address to answer"
    )
    dashboard_address: Text = Field(":0", description="where the dashboard listens")
    performance_report: PathText = Field(
        None, description="path of Dask's HTML performance report (distributed schedulers)"
    )
    extra: dict[str, Any] = Field(
        default_factory=dict, description="further keyword arguments of the cluster class"
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise _house_error(error, ClusterSettings, _cluster_unknown, prefix="cluster") from None

    @field_validator("scheduler", mode="before")
    @classmethod
    def _check_scheduler(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise _type_error(f"cluster.scheduler must be a string (got {value!r})")
        if _scheduler_kind(value) == "unknown":
            raise ValueError(
                f"cluster.scheduler must be one of {', '.join(NAMED_SCHEDULERS)}, a tcp:// "
                f"address, or a scheduler file (*.json) (got {value!r})"
            )
        return value

    @field_validator("job_directives", mode="before")
    @classmethod
    def _check_directives(cls, value: Any) -> Any:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise _type_error(f"cluster.job_directives must be a list of strings (got {value!r})")
        return tuple(value)

    @model_validator(mode="after")
    def _check_report(self) -> ClusterSettings:
        if self.performance_report is not None and not self.distributed:
            raise ValueError(
                "cluster.performance_report needs a distributed scheduler (local, an address, "
                f"a scheduler file, slurm, pbs or cuda) (got scheduler {self.scheduler!r})"
            )
        return self

    @property
    def kind(self) -> str:
        """One of :data:`NAMED_SCHEDULERS`, ``address``, ``scheduler-file`` or ``unknown``."""
        return _scheduler_kind(self.scheduler)

    @property
    def distributed(self) -> bool:
        """Whether the scheduler is a ``distributed`` one (a cluster or an address)."""
        return self.kind not in LOCAL_SCHEDULERS

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ClusterSettings:
        """Build from a mapping such as the ``cluster:`` section of a YAML file."""
        if not isinstance(mapping, Mapping):
            raise TypeError(
                f"cluster must be a mapping of cluster settings (got {type(mapping).__name__})"
            )
        return cls(**{str(key): value for key, value in mapping.items()})

    def to_mapping(self) -> dict[str, Any]:
        """Plain YAML/JSON-safe values of every field (tuples become lists)."""
        out = {name: getattr(self, name) for name in type(self).model_fields}
        out["job_directives"] = list(self.job_directives)
        out["extra"] = dict(self.extra)
        return out

    def replace(self, **overrides: Any) -> ClusterSettings:
        """A copy with ``overrides`` applied (and validated)."""
        return type(self)(**{**self.to_mapping(), **overrides})


def _scheduler_kind(scheduler: str) -> str:
    if scheduler in NAMED_SCHEDULERS:
        return scheduler
    if "://" in scheduler:
        return "address"
    if scheduler.endswith(".json"):
        return "scheduler-file"
    return "unknown"


def _cluster_unknown(names: list[str]) -> ValueError:
    return ValueError(
        f"unknown key(s) in cluster: {', '.join(names)}; valid keys: "
        f"{', '.join(sorted(ClusterSettings.model_fields))}"
    )


# -- the run settings ------------------------------------------------------------------


def _add_shorthands(schema: dict[str, Any]) -> None:
    """The JSON Schema's description, and the flat cluster shorthands files may still use."""
    schema["description"] = (
        "A run configuration of ssim-pipeline (ssim-pipeline evaluate --config FILE, "
        "pipeline.load_config); generated from pipeline.engine.settings.RunConfig."
    )
    cluster = ClusterSettings.model_fields
    for name, target in CLUSTER_SHORTHANDS.items():
        described = cluster[target].description
        kind: dict[str, Any] = (
            {"type": ["integer", "null"], "minimum": 1}
            if target == "workers"
            else {"type": ["string", "null"]}
        )
        schema["properties"][name] = {
            **kind,
            "description": f"shorthand for cluster.{target} (wins over the section): {described}",
        }


class RunConfig(BaseModel):
    """Validated settings of one :func:`pipeline.evaluate` run.

    Every field is described in :attr:`model_fields` (the command line's help texts
    and the JSON Schema's descriptions come from there); the notes below say more.

    Parameters
    ----------
    profile : str
        Compatibility profile (``"wang2004"``, ``"skimage"`` or ``"wang2009"``).
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
        ``"labels"`` (with ``labels``); see :mod:`pipeline.reductions.region_spec`.
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
    mean_maps : bool or "auto"
        Accumulate, per size group, the mean over its ``ok`` pairs of the valid
        SSIM, luminance, contrast and structure maps (variables ``mean_ssim_map``
        ...; see :mod:`pipeline.reductions.mean_maps`), one per model with several.
        ``"auto"`` (default): on for 2-D runs with ``nan_policy="fail"`` whose images
        have at most 512x512 pixels and whose output holds maps (not CSV); off for
        larger images, whose float64 sums (40 bytes per map pixel per block task)
        would add more than a quarter to the run's peak memory (measured: about 50 %
        at 1024x1024, several times at 2048x2048); ``True`` turns them on at any size.
        The kernels add the maps to their sums in the statistics pass. ``False``
        turns them off.
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
        Where the graph runs (:class:`ClusterSettings`): Dask's ``threads`` (default),
        ``synchronous`` or ``processes`` scheduler, a ``local`` cluster, a scheduler
        address or file, ``slurm``/``pbs`` or ``cuda``. Not part of the fingerprint:
        results are the same everywhere. The flat shorthands ``scheduler``,
        ``num_workers`` and ``performance_report`` (accepted by the constructor,
        :meth:`from_mapping` and :meth:`replace`) set ``cluster.scheduler``,
        ``cluster.workers`` and ``cluster.performance_report``, and win over the section.
    storage_options : mapping
        Keyword arguments of the fsspec filesystem of every input given as a URL
        (``anon``, ``endpoint_url``, ``client_kwargs``, ``key``/``secret``, ...). Not
        needed for the standard credentials (``AWS_*`` variables, ``AWS_PROFILE``,
        ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``),
        which the filesystems read themselves. Never part of the fingerprint nor of the
        stored configuration; :meth:`to_mapping` (and so YAML and ``--dry-run``) shows
        secret-looking values as ``***``.
    """

    model_config = ConfigDict(
        **_MODEL_CONFIG,
        title="ssim-pipeline run configuration",
        json_schema_extra=_add_shorthands,
    )

    profile: ProfileName = Field("wang2004", description="compatibility profile")
    window: WindowName | None = Field(None, description="window shape (overrides the profile)")
    win_size: OptionalCount = Field(None, description="window side, odd (overrides the profile)")
    sigma: OptionalPositiveNumber = Field(
        None, description="Gaussian window's sigma (overrides the profile)"
    )
    k1: OptionalPositiveNumber = Field(None, description="K1 constant (overrides the profile)")
    k2: OptionalPositiveNumber = Field(None, description="K2 constant (overrides the profile)")
    covariance: CovarianceName | None = Field(
        None, description="variance estimator (overrides the profile)"
    )
    data_range: Annotated[
        float | None,
        WithJsonSchema({"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]}),
    ] = Field(
        None,
        description="L, the data range (required for float images; integers default to "
        "their dtype's range)",
    )
    data_ranges: Annotated[
        dict[str, float] | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "object",
                        "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                    },
                    {"type": "null"},
                ]
            }
        ),
    ] = Field(None, description="L per dtype, e.g. {float32: 1.0} (folders that mix dtypes)")
    channel_axis: int | None = Field(None, description="axis of colour channels in array inputs")
    color_mode: ColorMode = Field(
        "channels", description="per-channel SSIM averaged, or SSIM of BT.601 luma"
    )
    regions: Annotated[str, WithJsonSchema({"type": "string", "pattern": REGION_PATTERN})] = Field(
        "all", description=REGION_SPEC_HELP
    )
    labels: Annotated[Any, WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "null"}]})] = (
        Field(None, description="label mask (Zarr path) for regions 'labels'")
    )
    label_names: Annotated[
        dict[int, str] | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "object",
                        "propertyNames": {"pattern": "^[0-9]+$"},
                        "additionalProperties": {"type": "string"},
                    },
                    {"type": "null"},
                ]
            }
        ),
    ] = Field(None, description="names of labels, {label value: name}")
    hist_bins: Count = Field(100, description="histogram bins over [-1, 1]")
    nan_policy: NanPolicy = Field(
        "fail", description="a NaN/Inf pixel fails its pair, or masks the windows touching it"
    )
    missing_chunks: MissingChunkPolicy = Field(
        "fail", description="a missing Zarr chunk fails its pairs, or reads as the fill value"
    )
    max_image_pixels: Count = Field(
        DEFAULT_MAX_IMAGE_PIXELS, description="largest image file decoded, in pixels"
    )
    max_input_elements: Count = Field(
        DEFAULT_MAX_INPUT_ELEMENTS, description="largest Zarr input accepted, in elements"
    )
    ms_ssim: Flag = Field(False, description="also compute MS-SSIM per image")
    ms_weights: Annotated[tuple[Annotated[float, Field(ge=0)], ...], Field(min_length=1)] | None = (
        Field(None, description="MS-SSIM exponents, one per scale (needs ms_ssim)")
    )
    volume: Flag = Field(False, description="evaluate the stack as one 3-D volume")
    chunks: Literal["auto", "input"] | tuple[Count, Count, Count] = Field(
        "auto", description="task chunks: auto, input, or [images, y, x]"
    )
    chunk_pixels: Count = Field(2**22, description="target pixels read by one task")
    batch_images: OptionalCount = Field(
        None, description="pairs committed per batch (default: planned)"
    )
    save_maps: Flag = Field(False, description="also store the SSIM maps (Zarr)")
    maps: tuple[MapName, ...] = Field(("ssim",), description="maps stored by save_maps")
    maps_output: PathText = Field(None, description="Zarr path of the stored maps")
    mean_maps: Literal["auto"] | Flag = Field(
        "auto",
        description="mean SSIM map per size group and model: auto (on up to 512x512), "
        "true or false",
    )
    output: PathText = Field(None, description="results path (.zarr, .nc or .csv)")
    output_format: OutputFormat | None = Field(
        None, description="output format (default: from the suffix)"
    )
    zarr_format: ZarrFormat = Field(3, description="Zarr format of the results")
    resume: Flag = Field(False, description="finish an interrupted run into the same output")
    overwrite: Flag = Field(False, description="replace an existing output")
    engine: EngineName = Field("auto", description="kernel engine")
    device: DeviceName = Field("cpu", description="cpu or gpu")
    cluster: ClusterSettings = Field(
        default_factory=ClusterSettings, description="where the graph runs"
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="filesystem arguments for inputs given as URLs (s3://, gs://, az://, "
        "https://), e.g. anon or endpoint_url; never stored with the results",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise _house_error(error, RunConfig, _unknown_keyword) from None

    # -- checks beyond the types -------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _fold_shorthands(cls, values: Any) -> Any:
        """Move the flat ``scheduler``/``num_workers``/``performance_report`` into ``cluster``."""
        if not isinstance(values, Mapping):
            return values
        values = dict(values)
        shorthands = {
            target: values.pop(name)
            for name, target in CLUSTER_SHORTHANDS.items()
            if values.get(name) is not None
        }
        for name in CLUSTER_SHORTHANDS:
            values.pop(name, None)
        if shorthands:
            base = values.get("cluster", ClusterSettings())
            if isinstance(base, ClusterSettings):
                base = base.to_mapping()
            if isinstance(base, Mapping):
                values["cluster"] = {**base, **shorthands}
        return values

    @field_validator("data_range", mode="before")
    @classmethod
    def _check_data_range(cls, value: Any) -> Any:
        from pipeline.metrics.checks import check_data_range

        return _as_setting_error(check_data_range, value)

    @field_validator("data_ranges", mode="before")
    @classmethod
    def _check_data_ranges(cls, value: Any) -> Any:
        from pipeline.metrics.checks import check_data_ranges

        return _as_setting_error(check_data_ranges, value)

    @field_validator("ms_weights", mode="before")
    @classmethod
    def _check_weights(cls, value: Any) -> Any:
        if value is None:
            return None
        from pipeline.metrics.multiscale import resolve_weights

        return _as_setting_error(resolve_weights, value)

    @field_validator("channel_axis", mode="before")
    @classmethod
    def _check_channel_axis(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, bool):
                raise TypeError
            return operator.index(value)
        except TypeError:
            raise _type_error(f"channel_axis must be an integer or None (got {value!r})") from None

    @field_validator("regions", mode="before")
    @classmethod
    def _check_regions(cls, value: Any) -> Any:
        return parse_region_spec(value).text

    @field_validator("label_names", mode="before")
    @classmethod
    def _check_label_names(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise _type_error(
                f"label_names must be a mapping of label value to name (got {type(value).__name__})"
            )
        names: dict[int, str] = {}
        for key, name in value.items():
            if isinstance(key, bool) or not isinstance(key, int | str) or not str(key).isdigit():
                raise ValueError(f"label_names keys must be non-negative integers (got {key!r})")
            names[int(key)] = str(name)
        if len(set(names.values())) != len(names):
            raise ValueError(f"label_names must be unique (got {sorted(names.values())})")
        return dict(sorted(names.items()))

    @field_validator("chunks", mode="before")
    @classmethod
    def _check_chunks(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in ("auto", "input"):
                raise ValueError(f"chunks must be one of auto, input (got {value!r})")
            return value
        values = tuple(value) if isinstance(value, list | tuple) else ()
        if len(values) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ValueError(
                "chunks must be 'auto', 'input' or three positive integers "
                f"(images, y, x) (got {value!r})"
            )
        return values

    @field_validator("maps", mode="before")
    @classmethod
    def _one_map(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("zarr_format", mode="before")
    @classmethod
    def _check_zarr_format(cls, value: Any) -> Any:
        if isinstance(value, bool) or value not in (2, 3):
            raise ValueError(f"zarr_format must be 2 or 3 (got {value!r})")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> RunConfig:
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite exclude each other (got both true)")
        if self.regions == "labels" and self.labels is None:
            raise ValueError("regions='labels' needs labels (a label mask array or Zarr path)")
        if self.labels is not None and self.regions != "labels":
            raise ValueError(
                f"labels were given but regions is {self.regions!r}; set regions='labels'"
            )
        if self.ms_weights is not None and not self.ms_ssim:
            raise ValueError(
                f"ms_weights were given ({self.ms_weights!r}) but ms_ssim is false; "
                "set ms_ssim=True"
            )
        return self

    # -- conversions -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> RunConfig:
        """Build from a mapping such as parsed YAML; unknown keys are refused."""
        if not isinstance(mapping, Mapping):
            raise TypeError(f"a configuration must be a mapping (got {type(mapping).__name__})")
        values = {str(key): value for key, value in mapping.items()}
        unknown = sorted(set(values) - set(cls.model_fields) - set(CLUSTER_SHORTHANDS))
        if unknown:
            raise _unknown_key(unknown)
        return cls(**values)

    def to_mapping(self) -> dict[str, Any]:
        """Plain YAML/JSON-safe values of every field (tuples become lists)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, ClusterSettings):
                value = value.to_mapping()
            elif name == "labels" and value is not None and not isinstance(value, str):
                value = f"<in-memory {type(value).__name__}>"
            if name == "storage_options":
                value = redact_options(value)
            out[name] = value
        return out

    def replace(self, **overrides: Any) -> RunConfig:
        """A copy with ``overrides`` applied (and validated); unknown names are refused."""
        valid = list(type(self).model_fields)
        unknown = sorted(set(overrides) - set(valid) - set(CLUSTER_SHORTHANDS))
        if unknown:
            raise _unknown_keyword(unknown)
        values = {name: getattr(self, name) for name in valid}
        return type(self)(**{**values, **overrides})

    def replace_dotted(self, assignments: Mapping[str, Any]) -> RunConfig:
        """A copy with settings named by dotted keys replaced, nested sections merged.

        Parameters
        ----------
        assignments : mapping
            ``{"win_size": 7, "cluster.workers": 4, "data_ranges.float32": 1.0}``: a
            key is a field name (or a flat ``scheduler``/``num_workers``/
            ``performance_report``); ``section.key`` sets one entry of a mapping
            field (``cluster``, ``data_ranges``, ``label_names``, ``storage_options``)
            and keeps the others.
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
        valid = [*type(self).model_fields, *CLUSTER_SHORTHANDS]
        current = self.to_mapping()
        current["storage_options"] = dict(self.storage_options)  # to_mapping hides secrets
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
            if not isinstance(section, Mapping):
                raise ValueError(
                    f"setting {head!r} is not a section, so {key!r} cannot name an entry in it "
                    f"(it holds {section!r}); set it whole: {head}=VALUE"
                )
            values[head] = _set_nested(dict(section), path, value, key)
        return self.replace(**values)

    # -- derived values ----------------------------------------------------------------

    @property
    def scheduler(self) -> str:
        """``cluster.scheduler``, the one switch of where the graph runs."""
        return self.cluster.scheduler

    @property
    def region_spec(self) -> RegionSpec:
        """``regions`` parsed (:func:`pipeline.reductions.region_spec.parse_region_spec`)."""
        return parse_region_spec(self.regions)

    def input_options(self) -> InputOptions:
        """The settings that say how inputs are read (:func:`pipeline.inputs.opening.open_pair`)."""
        return InputOptions(
            missing_chunks=self.missing_chunks,
            max_image_pixels=self.max_image_pixels,
            max_input_elements=self.max_input_elements,
            storage_options=dict(self.storage_options),
        )

    def ssim_overrides(self) -> dict[str, Any]:
        """The explicit SSIM parameters, for :func:`pipeline.metrics.profiles.resolve_params`."""
        from pipeline.metrics.profiles import PARAM_NAMES

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


def _as_setting_error(check: Callable[[Any], Any], value: Any) -> Any:
    """``check(value)``; its TypeError kept a TypeError through pydantic's validation."""
    try:
        return check(value)
    except TypeError as error:
        raise _type_error(str(error)) from None


def _unknown_keyword(names: list[str]) -> TypeError:
    valid = ", ".join(RunConfig.model_fields)
    return TypeError(f"unknown setting(s) {', '.join(names)}; valid settings: {valid}")


def _unknown_key(names: list[str]) -> ValueError:
    valid = ", ".join(RunConfig.model_fields)
    return ValueError(f"unknown configuration key(s) {', '.join(names)}; valid keys: {valid}")


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


# -- YAML files ------------------------------------------------------------------------

# A run configuration is a few dozen values; aliases (``*name``) repeat what their anchor
# holds, so a small file can stand for billions of values ("billion laughs") that
# validation and fingerprinting would then walk. More than this is refused unread.
MAX_YAML_VALUES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values ``node`` stands for once every alias is expanded (each node counted once)."""
    import yaml

    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:  # an alias inside its own anchor: infinite when expanded
        return MAX_YAML_VALUES + 1
    open_nodes.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children: list[yaml.Node] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, open_nodes)
        if total > MAX_YAML_VALUES:
            break
    open_nodes.discard(key)
    sizes[key] = total
    return total


MAX_YAML_DEPTH = 100
"""Deepest nesting of collections a configuration file may have (a run configuration is flat)."""


def _depth(root: yaml.Node) -> int:
    """Deepest nesting of collections under ``root``, walked without recursion (aliases once)."""
    import yaml

    deepest, seen, todo = 0, set(), [(root, 1)]
    while todo:
        node, depth = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        deepest = max(deepest, depth)
        if isinstance(node, yaml.SequenceNode):
            todo.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            todo.extend((child, depth + 1) for pair in node.value for child in pair)
    return deepest


def _safe_load_bounded(text: str, path: Path) -> Any:
    """``yaml.safe_load``, refusing documents that expand to more than MAX_YAML_VALUES."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _depth(node) > MAX_YAML_DEPTH:
            raise RecursionError  # reported below like a document too deep for the composer
        size = _expanded_size(node, {}, set())
        if size > MAX_YAML_VALUES:
            raise ValueError(
                f"configuration file {str(path)!r} expands to more than {MAX_YAML_VALUES:,} "
                "values through YAML aliases (*name repeats its &name anchor); a run "
                "configuration is a small mapping: write the values out instead of aliasing them"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML run configuration (``yaml.safe_load``) and validate it.

    Files whose aliases expand to more than :data:`MAX_YAML_VALUES` values are
    refused before they are constructed.

    Parameters
    ----------
    path : str or Path
        A YAML file holding a mapping of :class:`RunConfig` fields.

    Returns
    -------
    RunConfig

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "run.yaml"
    >>> _ = f.write_text("profile: skimage\\nregions: 2x2\\n")
    >>> load_config(f).regions
    '2x2'
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read configuration file {str(path)!r}: {error}") from error
    try:
        mapping = _safe_load_bounded(text, path)
    except yaml.YAMLError as error:
        raise ValueError(f"configuration file {str(path)!r} is not valid YAML: {error}") from error
    except RecursionError as error:
        # PyYAML composes nested collections recursively: thousands of levels exhaust the stack.
        raise ValueError(
            f"configuration file {str(path)!r} nests its values too deeply (more than "
            f"{MAX_YAML_DEPTH} levels); a run configuration is a flat mapping"
        ) from error
    if mapping is None:
        mapping = {}
    try:
        return RunConfig.from_mapping(mapping)
    except (TypeError, ValueError) as error:
        raise type(error)(f"in configuration file {str(path)!r}: {error}") from error


def dump_config(config: RunConfig, path: str | Path | None = None) -> str:
    """The YAML text of ``config``, also written to ``path`` when given."""
    import yaml

    mapping = config.to_mapping()
    if config.labels is not None and not isinstance(config.labels, str):
        raise ValueError("a configuration with an in-memory label array cannot be written as YAML")
    text = yaml.safe_dump(mapping, sort_keys=False)
    if path is not None:
        Path(path).write_text(text)
    return text


def resolve_config(
    config: RunConfig | Mapping[str, Any] | str | Path | None, **overrides: Any
) -> RunConfig:
    """The effective settings: ``config`` (object, mapping, YAML path or None) plus overrides."""
    if config is None:
        base = RunConfig()
    elif isinstance(config, RunConfig):
        base = config
    elif isinstance(config, Mapping):
        base = RunConfig.from_mapping(config)
    elif isinstance(config, str | Path):
        base = load_config(config)
    else:
        raise TypeError(
            f"config must be a RunConfig, a mapping or a YAML path (got {type(config).__name__})"
        )
    return base.replace(**overrides) if overrides else base


def json_schema_text() -> str:
    """The JSON Schema of run configuration files, as committed in ``configs/schema.json``."""
    return json.dumps(RunConfig.model_json_schema(), indent=2) + "\n"


def write_json_schema(path: str | Path) -> None:
    """Write :func:`json_schema_text` to ``path`` (after a settings field changes)."""
    Path(path).write_text(json_schema_text())
