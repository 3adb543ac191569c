"""Run configurations as files: the one place YAML is read.

:func:`load_config` reads a YAML file into a :class:`RunConfig` (the validated
settings object of :mod:`pipeline.engine.run_config`, importable from here too) and
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

from pipeline.engine.run_config import (
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
    "MAX_YAML_VALUES",
    "NAN_POLICIES",
    "OUTPUT_FORMATS",
    "SCHEDULERS",
    "RunConfig",
    "dump_config",
    "load_config",
    "resolve_config",
]


# A run configuration is a few dozen values; aliases (``*name``) repeat what their anchor
# holds, so a small file can stand for billions of values ("billion laughs") that
# validation and fingerprinting would then walk. More than this is refused unread.
MAX_YAML_VALUES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values ``node`` stands for once every alias is expanded (each node counted once)."""
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
