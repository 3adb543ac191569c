"""Several generated sources (models) against one reference: names and opening.

:func:`model_sources` turns what the user gave -- a list of generated sources or a
mapping ``{name: source}`` -- into named sources: a folder or store is named by its
last path component (without a ``.zarr`` suffix), an in-memory array ``model-<k>``;
two equal names become distinct (``gan``, ``gan-2``) with a warning that says so.
:func:`open_models` opens each model's :class:`~pipeline.inputs.sources.SourcePair`
against the same reference. Folders of image files are opened so that the
reference decode tasks have keys that depend on the reference files alone
(:func:`pipeline.inputs.folders.folder_source` with ``shared_reference``): one
graph computing every model's statistics decodes each reference once. A reference
that some models pair and one does not is a failed pair of that one, so that every
model has the same ``image`` axis; and every model's pairs are laid out in the size
groups of the references (:func:`_reference_groups`), so that a pair failing from
its generated file's header (another size, dtype or channel count, unreadable) keeps
its reference's slot in that model instead of changing its groups. Arrays and
Zarr stacks are read through keys that depend on the reference array or store
alone already.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from pipeline.inputs.folders import folder_source, is_image_folder, pair_folder_files
from pipeline.inputs.opening import open_pair
from pipeline.inputs.options import InputOptions
from pipeline.inputs.pairing import FailedPair, ImagePair, PairingPlan, SizeGroup
from pipeline.inputs.sources import SourcePair

__all__ = ["is_several_models", "model_sources", "open_models"]


def is_several_models(generated: Any) -> bool:
    """Whether ``generated`` names several models: a list, a tuple or a mapping of sources."""
    return isinstance(generated, list | tuple | Mapping)


def _source_name(source: Any, index: int) -> str:
    """A model's default name: the last path component (no ``.zarr``), or ``model-<k>``."""
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        text = text.rstrip("/\\") or text
        name = text.replace("\\", "/").rsplit("/", 1)[-1]
        if name.lower().endswith(".zarr") and len(name) > len(".zarr"):
            name = name[: -len(".zarr")]
        if name:
            return name
    return f"model-{index}"


def model_sources(generated: Any) -> list[tuple[str, Any]]:
    """``(name, source)`` of every model, names unique (renamed ones stated in a warning).

    Raises
    ------
    ValueError
        No source at all, or a mapping key that is not a non-empty string.
    """
    if isinstance(generated, Mapping):
        pairs = list(generated.items())
        for key, _ in pairs:
            if not isinstance(key, str) or not key:
                raise ValueError(
                    f"model names (the keys of generated) must be non-empty strings (got {key!r})"
                )
    else:
        pairs = [(_source_name(source, k), source) for k, source in enumerate(generated)]
    if not pairs:
        raise ValueError("generated holds no source: give at least one generated folder or stack")
    names: list[str] = []
    renamed: list[str] = []
    for name, _ in pairs:
        unique, n = name, 1
        while unique in names:
            n += 1
            unique = f"{name}-{n}"
        if unique != name:
            renamed.append(f"{name!r} -> {unique!r}")
        names.append(unique)
    if renamed:
        warnings.warn(
            "several generated sources have the same name; the models are named "
            f"{', '.join(renamed)} (pass a mapping {{name: source}} to choose names)",
            UserWarning,
            stacklevel=4,
        )
    return [(name, source) for name, (_, source) in zip(names, pairs, strict=True)]


def open_models(
    reference: Any,
    models: Sequence[tuple[str, Any]],
    *,
    channel_axis: int | None = None,
    options: InputOptions | None = None,
) -> list[SourcePair]:
    """One :class:`SourcePair` per model, each against ``reference``; nothing decoded.

    Raises
    ------
    ValueError
        A generated folder that pairs with no reference file (naming the model and
        folder), or any error :func:`pipeline.inputs.opening.open_pair` raises for
        one pair (prefixed with the model's name).
    """
    options = InputOptions() if options is None else options
    opened: list[SourcePair | PairingPlan] = []
    for name, source in models:
        try:
            opened.append(_open_model(reference, name, source, channel_axis, options))
        except (ValueError, FileNotFoundError, NotADirectoryError) as error:
            raise type(error)(f"model {name!r} ({_shown(source)}): {error}") from None
    plans = [plan for plan in opened if isinstance(plan, PairingPlan)]
    every = {pair.id: pair for plan in plans for pair in plan.pairs}
    groups = _reference_groups(plans)
    return [
        folder_source(
            replace(_with_missing(plan, name, every), size_groups=groups),
            max_image_pixels=options.max_image_pixels,
            storage_options=options.storage_options,
            shared_reference=True,
        )
        if isinstance(plan, PairingPlan)
        else plan
        for (name, _), plan in zip(models, opened, strict=True)
    ]


def _with_missing(plan: PairingPlan, name: str, every: Mapping[str, ImagePair]) -> PairingPlan:
    """``plan`` with a failed pair for each reference another model pairs and it does not.

    Every model then has the same ``image`` axis: the reference is scored where the
    model has its file, and the row of a reference it lacks fails with the reason
    (``generated`` ``""``); the reference stays listed as unpaired in its own report.
    """
    have = set(plan.ids)
    missing = sorted(pair_id for pair_id in every if pair_id not in have)
    if not missing:
        return plan
    added = [
        ImagePair(
            id=pair_id,
            reference=every[pair_id].reference,
            generated="",
            reference_stamp=every[pair_id].reference_stamp,
        )
        for pair_id in missing
    ]
    failed = [
        FailedPair(
            pair_id,
            f"model {name!r} has no generated file for reference {pair_id} "
            "(no file of the same relative path or stem in its folder)",
        )
        for pair_id in missing
    ]
    return replace(
        plan,
        pairs=tuple(sorted([*plan.pairs, *added], key=lambda pair: pair.id)),
        failed=(*plan.failed, *failed),
    )


def _reference_groups(plans: Sequence[PairingPlan]) -> tuple[SizeGroup, ...]:
    """The size groups of the references, the same for every model.

    A pair's size group is its reference's shape and dtype (the pairing groups the
    pairs it can score by the reference's header). Every model's pairs are laid out
    in these groups: a pair that fails in one model for its generated file (a
    truncated or unreadable file, another size, dtype or channel count, no file at
    all) keeps its reference's slot, failed, instead of moving to the first group as
    in a run of that model alone; its other pairs, and every other model's, keep the
    groups, chunks and batches they have in their own runs, so their values are
    those of their own runs. A reference that no model can pair (its own header
    fails, or every model's file fails) has no known group: the first group holds
    it, failed, in every model alike. Groups come in the order of their first pair
    by id, as in a single run.
    """
    key_of: dict[str, tuple[tuple[int, ...], str]] = {}
    for plan in plans:
        for group in plan.size_groups:
            for pair_id in group.ids:
                key_of.setdefault(pair_id, (tuple(group.shape), group.dtype))
    members: dict[tuple[tuple[int, ...], str], list[str]] = {}
    for pair_id in sorted(key_of):
        members.setdefault(key_of[pair_id], []).append(pair_id)
    return tuple(SizeGroup(shape, dtype, tuple(ids)) for (shape, dtype), ids in members.items())


def _shown(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return repr(os.fspath(source))
    return f"a {type(source).__name__}"


def _open_model(
    reference: Any, name: str, source: Any, channel_axis: int | None, options: InputOptions
) -> SourcePair | PairingPlan:
    """The pair of a model, or the pairing plan of two folders (a source made later)."""
    folders = is_image_folder(reference, options.storage_options) and is_image_folder(
        source, options.storage_options
    )
    if not folders:
        return open_pair(reference, source, channel_axis=channel_axis, options=options)
    plan = pair_folder_files(reference, source, channel_axis, options)
    if not plan.pairs:
        raise ValueError(
            f"generated folder of model {name!r} pairs with no reference file "
            f"({len(plan.unpaired_generated)} of its images have no reference of the same "
            "relative path or stem)"
        )
    return plan
