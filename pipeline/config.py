"""Run configurations as files: the one place YAML is read.

:func:`load_config` reads a YAML file into a :class:`RunConfig` (the validated
settings object of :mod:`pipeline.run_config`, importable from here too) and
:func:`dump_config` writes one back, so YAML -> config -> YAML is a round trip.
:func:`resolve_config` turns what ``evaluate(config=...)`` was given (an object,
a mapping, a YAML path or nothing) plus keyword overrides into the effective
settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.run_config import (
    DEVICES,
    MAP_CHOICES,
    NAN_POLICIES,
    OUTPUT_FORMATS,
    SCHEDULERS,
    RunConfig,
)

__all__ = [
    "DEVICES",
    "MAP_CHOICES",
    "NAN_POLICIES",
    "OUTPUT_FORMATS",
    "SCHEDULERS",
    "RunConfig",
    "dump_config",
    "load_config",
    "resolve_config",
]


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML run configuration (``yaml.safe_load``) and validate it.

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
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read configuration file {str(path)!r}: {error}") from error
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"configuration file {str(path)!r} is not valid YAML: {error}") from error
    if mapping is None:
        mapping = {}
    try:
        return RunConfig.from_mapping(mapping)
    except (TypeError, ValueError) as error:
        raise type(error)(f"in configuration file {str(path)!r}: {error}") from error


def dump_config(config: RunConfig, path: str | Path | None = None) -> str:
    """The YAML text of ``config``, also written to ``path`` when given."""
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
