"""The ``ssim-pipeline`` command: thin wrappers over the public API.

::

    ssim-pipeline evaluate REFERENCE GENERATED --out RESULTS.zarr [--config FILE]
                  [--profile NAME] [--win-size N] [--data-range L] ... (one option per
                  run setting) [--set KEY=VALUE ...] [--dry-run] [--quiet] [--json]
    ssim-pipeline demo   [--out DIR]
    ssim-pipeline report RESULTS.zarr [--out DIR] [--worst N]
    ssim-pipeline ingest FOLDER --out STACK.zarr [--overwrite]

REFERENCE and GENERATED are two folders of images, two Zarr arrays or two image
files (one pair, named by the reference file). Every field of
:class:`pipeline.engine.settings.RunConfig` has an option (:mod:`pipeline.cli.parser`
derives them from the settings model) and ``--set KEY=VALUE`` reaches any setting,
nested ones by a dotted key; the order of precedence is ``--config``, then the
options, then ``--set``. Library messages are shown in the command line's words
(``pass --overwrite``, not ``pass overwrite=True``), and every file name printed
goes through :func:`pipeline.results.text.terminal_text`.

Exit status: 0 done; 1 finished, but some pairs (or files) failed -- they are
listed on stderr; 2 bad usage or input that stops the run (a message on stderr
naming the file or parameter, no traceback); 130 interrupted (Ctrl-C).

Progress goes to stderr, one bar per run, advanced after every committed batch
(computed from this process whatever the scheduler, so it works on clusters
too); ``--quiet`` silences it and the summary table. ``--json`` prints a
machine-readable summary (:func:`pipeline.results.summary.summarize`, plus the output
paths) on stdout instead of the table.

The argument grammar is in :mod:`pipeline.cli.parser` and the progress bar in
:mod:`pipeline.cli.progress`; :func:`build_parser` and :class:`ProgressBar` are
importable from here too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pipeline
from pipeline.cli.parser import DEFAULT_DEMO_DIR as DEFAULT_DEMO_DIR
from pipeline.cli.parser import build_parser, parse_command_line, setting_flag, setting_names
from pipeline.cli.progress import ProgressBar
from pipeline.results.text import json_text, terminal_text
from pipeline.storage.locations import is_remote, is_url, location, redact

if TYPE_CHECKING:
    from pipeline.engine.settings import RunConfig

__all__ = ["ProgressBar", "build_parser", "main"]

EXIT_OK, EXIT_FAILED_PAIRS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Errors that mean "the input or the settings are wrong": message, no traceback.
_USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, RuntimeError)


class _UsageError(Exception):
    """A problem with the command line itself (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 done, 1 failed pairs, 2 bad usage).

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    """
    parser = build_parser()
    try:
        args = parse_command_line(parser, argv)
    except SystemExit as exit_:  # argparse has printed its message
        return EXIT_OK if exit_.code in (0, None) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler = {"evaluate": _evaluate, "demo": _demo, "report": _report, "ingest": _ingest}
    try:
        return handler[args.command](args)
    except KeyboardInterrupt:
        # Zarr's I/O runs on an asyncio loop in another thread; tasks it had in flight
        # are destroyed pending at exit, and asyncio logs each with a traceback. The
        # interruption is deliberate and every committed batch is safe: keep stderr to
        # the one line that says how to finish.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        # Coroutines of that loop finalized after it closed report "Event loop is closed"
        # through the unraisable hook (a traceback at exit): the same noise, dropped too.
        sys.unraisablehook = _drop_closed_loop_noise
        print(
            "\ninterrupted; what was committed is kept: run the same command with --resume "
            "to finish",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except _UsageError as error:
        _error(args.command, str(error))
        return EXIT_USAGE
    except _USER_ERRORS as error:
        _error(args.command, _message(error))
        return EXIT_USAGE


def _drop_closed_loop_noise(unraisable: Any) -> None:
    """After Ctrl-C: drop a destroyed coroutine's complaint, pass anything else on."""
    if isinstance(unraisable.object, types.CoroutineType) or (
        isinstance(unraisable.exc_value, RuntimeError)
        and "Event loop is closed" in str(unraisable.exc_value)
    ):
        return
    sys.__unraisablehook__(unraisable)


def _message(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return text or type(error).__name__


def _error(command: str, message: str) -> None:
    # Whatever a library or a server put in the message, no credential reaches the terminal.
    text = terminal_text(_cli_words(redact(message)))
    print(f"ssim-pipeline {command}: error: {text}", file=sys.stderr)


# ``name=value`` in a library message, for a setting: said as the option that sets it.
_ASSIGNMENT = re.compile(r"\b([a-z][a-z0-9_]*)=('[^']*'|True|False|-?[0-9][0-9.e+-]*)(?![\w\[(])")


def _option_words(match: re.Match[str]) -> str:
    from pipeline.engine.settings import RunConfig

    name, value = match.group(1), match.group(2)
    fields = RunConfig.model_fields
    if name not in fields:
        return match.group(0)
    flag = setting_flag(name)
    if flag is None:
        return f"--set {name}={value.strip(chr(39))}"
    if isinstance(fields[name].default, bool) and value in ("True", "False"):
        return flag if value == "True" else "--no-" + flag[2:]
    return f"{flag} {value.strip(chr(39))}"


def _cli_words(message: str) -> str:
    """A library message in the command line's words: ``resume=True`` is ``--resume``.

    The library speaks in keyword arguments (``pass overwrite=True``, ``set
    nan_policy='mask'``); on the command line the same advice is an option.
    """
    # "rerun with --resume (resume=True)": the option is already named.
    message = re.sub(r"(--[a-z-]+) \([a-z_]+=True\)", r"\1", message)
    message = re.sub(r"\bpass overwrite to\b", "pass --overwrite to", message)
    return _ASSIGNMENT.sub(_option_words, message)


# ---------------------------------------------------------------------------
# evaluate


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as options (an option left out is absent from ``args``)."""
    return {name: getattr(args, name) for name in setting_names() if hasattr(args, name)}


def _assignments(texts: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` arguments as ``{dotted key: value}``, each value read as YAML."""
    import yaml

    out: dict[str, Any] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise _UsageError(
                f"--set needs KEY=VALUE, such as --set cluster.workers=4 (got {text!r})"
            )
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise _UsageError(
                f"--set {key.strip()}: the value {value!r} is not valid YAML "
                f"({str(error).splitlines()[0]})"
            ) from None
    return out


def _settings(args: argparse.Namespace) -> RunConfig:
    """``--config``, then the setting options, then ``--set`` (a later source wins)."""
    from pipeline.engine.settings import resolve_config

    config = resolve_config(args.config, **_overrides(args))
    if args.assignments:
        assignments = _assignments(args.assignments)
        try:
            config = config.replace_dotted(assignments)
        except (TypeError, ValueError) as error:
            raise type(error)(f"--set: {error}") from None
    return config


def _storage_options(config: RunConfig) -> dict[str, Any]:
    """The filesystem options of the run's URLs (inputs and output)."""
    return dict(config.storage_options)


def _option_assignments(args: argparse.Namespace) -> dict[str, Any]:
    """``--storage-option KEY=VALUE`` of a command without settings (ingest, report)."""
    return {key.split(".", 1)[1]: value for key, value in _assignments(args.assignments).items()}


def _check_writable(path: str) -> None:
    """A clear error before any work when the output cannot be written.

    An object-store URL is checked for its form only (a read-only ``https://`` URL is
    refused); whether the bucket exists and the credentials may write is learnt when
    the run takes the store's lock, before any pixel is read.
    """
    if is_url(path):
        try:
            where = location(path, writable=True, what="--out")
        except ValueError as error:
            raise _UsageError(str(error)) from None
        if where.remote:
            return
        path = where.path
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _UsageError(
            f"output {path!r} cannot be written: its folder {str(parent)!r} cannot be "
            f"created ({error.strerror or error})"
        ) from None
    if not parent.is_dir():
        raise _UsageError(f"output {path!r} cannot be written: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _UsageError(f"output {path!r} cannot be written: folder {str(parent)!r} is read-only")


def _evaluate(args: argparse.Namespace) -> int:
    config = _settings(args)
    if args.dry_run:
        return _dry_run(args, config)
    if config.output is None:
        raise _UsageError("--out RESULTS is required (or give output in the --config file)")
    config.resolved_output_format()  # an unknown suffix is refused here, before any work
    _check_writable(config.output)
    return _run_and_summarize(
        args.reference,
        _generated(args),
        config,
        quiet=args.quiet,
        as_json=args.json,
        folders=_typed_folders(args),
    )


def _generated(args: argparse.Namespace) -> Any:
    """GENERATED as given: one source, or a list of several (several models in one run)."""
    sources = list(args.generated) if isinstance(args.generated, list) else [args.generated]
    return sources[0] if len(sources) == 1 else sources


def _typed_folders(args: argparse.Namespace) -> dict[str, str] | None:
    """The two inputs as the user typed them, to name skipped files by (one model only)."""
    generated = _generated(args)
    if isinstance(generated, list):
        return None  # each model's files are named from its recorded sources
    return {"reference": str(args.reference), "generated": str(generated)}


def _print_json(value: Any, **kwargs: Any) -> None:
    # ensure_ascii escapes control characters; json_text the names that are not UTF-8.
    # Redacted like every message: a URL given with user info or a signed query never
    # reaches the output.
    print(redact(json.dumps(json_text(value), indent=2, ensure_ascii=True, **kwargs)))


def _say_retried(n_pairs: int) -> None:
    if n_pairs:
        print(
            f"retrying {n_pairs} pair(s) that had failed for a transient reason "
            "(file not found, permission, I/O error, missing chunk)",
            file=sys.stderr,
        )


def _run_and_summarize(
    reference: Any,
    generated: Any,
    config: RunConfig,
    *,
    quiet: bool,
    as_json: bool,
    extra: dict[str, Any] | None = None,
    after: Callable[[], object] | None = None,
    folders: dict[str, str] | None = None,
) -> int:
    """Evaluate with a progress bar, call ``after`` (e.g. write the report), print the summary."""
    from pipeline.results.summary import format_summary, summarize

    bar = None if quiet else ProgressBar("evaluate")
    try:
        ds = pipeline.evaluate(
            reference, generated, config=config, on_batch=bar, on_retry=_say_retried
        )
    finally:
        if bar is not None:
            bar.close()
    if after is not None:
        after()
    summary = summarize(ds, folders=folders)
    paths = {"results": redact(config.output), **(extra or {})}
    if as_json:
        _print_json({**summary, **paths}, allow_nan=False)
    elif not quiet:
        print(format_summary(summary))
        print()
        for name, path in paths.items():
            print(f"{name}: {terminal_text(path)}")
    if summary["failed"]:
        if quiet or as_json:
            # The table (which lists them) was not printed: list the failures here.
            for failure in summary["failures"]:
                print(
                    f"failed: {terminal_text(failure['image'])}: "
                    f"{terminal_text(failure['status'])}",
                    file=sys.stderr,
                )
        print(
            f"{summary['failed']} of {summary['pairs']} pairs failed (listed above); "
            "the other pairs were computed",
            file=sys.stderr,
        )
        return EXIT_FAILED_PAIRS
    return EXIT_OK


def _output_warnings(config: RunConfig, plan_attrs: dict[str, Any]) -> list[str]:
    """Why the run would be refused on its existing ``--out`` (a dry run reads nothing else)."""
    from pipeline.results.stores import output_exists, stored_attrs

    options = _storage_options(config)
    if config.output is None or config.overwrite or not output_exists(config.output, options):
        return []
    output = redact(config.output)
    if config.resolved_output_format() != "zarr":
        return [
            f"--out {output} already exists and the run would be refused; a "
            f"{config.resolved_output_format()} output cannot be resumed: pass --overwrite "
            "to replace it"
        ]
    if not config.resume:
        return [
            f"--out {output} already exists and the run would be refused; pass --resume to "
            "finish it or --overwrite to start again"
        ]
    try:
        stored = stored_attrs(config.output, options)
    except Exception:  # anything unreadable is refused by the run itself
        return [
            f"--out {output} exists but is not a readable results store; the run would be "
            "refused: pass --overwrite to replace it"
        ]
    warnings = []
    for key, what in (
        ("config_fingerprint", "with a different configuration"),
        ("source_fingerprint", "from different sources"),
    ):
        ours, theirs = plan_attrs.get(key), stored.get(key)
        if ours != theirs:
            warnings.append(
                f"--out {output} was written {what} ({key} {theirs!r} in the store, "
                f"{ours!r} for this run); --resume would be refused: pass --overwrite to "
                "replace it or choose another --out"
            )
    return warnings


def _readable_groups(plan: Any) -> list[tuple[Any, int, int]]:
    """``(size group, pairs, readable pairs)``, groups with no readable pair left out.

    Pairs whose headers already failed take a slot in the first group (never decoded),
    so a group's size alone would count them.
    """
    failed = set(plan.failed)
    rows = []
    for group in plan.groups:
        readable = group.n_images - sum(1 for k in failed if group.start <= k < group.stop)
        rows.append((group, group.n_images, readable))
    return rows


def _dry_run(args: argparse.Namespace, config: RunConfig) -> int:
    """Open and plan the run (headers only) and print it; nothing is decoded or computed.

    With several GENERATED, each model's plan is printed (its own pairing, unpaired
    files and size groups), one after the other.
    """
    generated = _generated(args)
    if not isinstance(generated, list):
        return _dry_run_one(args, config)
    from pipeline.inputs.models import model_sources

    status = EXIT_OK
    plans: dict[str, Any] = {}
    for name, source in model_sources(generated):
        one = argparse.Namespace(**{**vars(args), "generated": [source]})
        if not args.json:
            print(f"== model {terminal_text(name)}")
            status = max(status, _dry_run_one(one, config))
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = max(status, _dry_run_one(one, config))
        plans[name] = json.loads(printed.getvalue())
    if args.json:
        _print_json({"reference": str(args.reference), "models": plans}, default=str)
    return status


def _dry_run_one(args: argparse.Namespace, config: RunConfig) -> int:
    """The dry run of one generated source."""
    args = argparse.Namespace(**{**vars(args), "generated": _generated(args)})
    from pipeline.engine.plan import plan_run
    from pipeline.inputs.opening import open_pair
    from pipeline.results.schema import SKIPPED_FILES
    from pipeline.results.summary import skipped_files

    pair = open_pair(
        args.reference,
        args.generated,
        channel_axis=config.channel_axis,
        options=config.input_options(),
    )
    plan = plan_run(config, pair)
    group_rows: list[dict[str, Any]] = []
    for group, _, readable in _readable_groups(plan):
        if readable == 0:
            continue
        height, width = group.pair.image_shape
        channels, chunks = group.pair.n_channels, group.chunks
        row: dict[str, Any] = {
            "pairs": readable,
            "shape": [height, width, channels],
            "dtype": str(group.pair.reference.dtype),
            "pixels": readable * height * width * channels,
            "chunks": [max(c) for c in chunks[:3]],
            "tasks": len(chunks[0]) * len(chunks[1]) * len(chunks[2]),
        }
        if plan.pair.groups:
            row["decode_tasks"] = len(chunks[0])
        group_rows.append(row)
    attrs = plan.pair.attrs
    known_failed = dict(sorted(plan.failed.items()))
    warnings = _output_warnings(config, dict(plan.attrs))
    skipped = skipped_files(list(attrs.get(SKIPPED_FILES, [])), _typed_folders(args))
    result: dict[str, Any] = {
        "reference": str(args.reference),
        "generated": str(args.generated),
        "pairs": plan.pair.n_images,
        "failed_from_headers": [
            {"image": str(plan.pair.image[k]), "status": reason}
            for k, reason in known_failed.items()
        ],
        "unpaired_reference": list(attrs.get("unpaired_reference", [])),
        "unpaired_generated": list(attrs.get("unpaired_generated", [])),
        "skipped": skipped,
        "regions": list(plan.region_names),
        "size_groups": group_rows,
        "batches": len(plan.batches),
        "pixels": sum(row["pixels"] for row in group_rows),
        "tasks": sum(row["tasks"] for row in group_rows),
        "output": redact(config.output) if config.output else None,
        "warnings": warnings,
        "config": config.to_mapping(),
    }
    for warning in warnings:
        print(f"ssim-pipeline evaluate: warning: {terminal_text(warning)}", file=sys.stderr)
    if args.json:
        _print_json(result, default=str)
        return EXIT_OK
    lines = [
        "dry run: nothing decoded or computed",
        f"reference: {args.reference}",
        f"generated: {args.generated}",
        f"pairs found: {result['pairs']}"
        + (f" ({len(known_failed)} already failed from headers)" if known_failed else ""),
        f"unpaired: {len(result['unpaired_reference'])} reference, "
        f"{len(result['unpaired_generated'])} generated",
    ]
    if skipped:
        lines.append(f"skipped: {len(skipped)} files or folders")
    for item in result["failed_from_headers"]:
        lines.append(f"  will fail: {item['image']}: {item['status']}")
    for side in ("reference", "generated"):
        for name in result[f"unpaired_{side}"][:20]:
            lines.append(f"  unpaired {side}: {name}")
    for entry in skipped[:20]:
        lines.append(f"  skipped: {entry['path']} ({entry['reason']})")
    lines.append(f"regions: {', '.join(result['regions'])}")
    lines.append("size groups (pairs whose headers could be read):")
    for row in group_rows:
        h, w, c = row["shape"]
        images, ty, tx = row["chunks"]
        lines.append(
            f"  {row['pairs']:>6} pairs  {h}x{w}x{c} {row['dtype']:<8} chunks of {images} "
            f"image(s) x {ty}x{tx} px, {row['tasks']} tasks"
        )
    if not group_rows:
        lines.append("  none: no pair can be read")
    lines.append(
        f"estimated work: {result['pixels'] / 1e6:.1f} Mpixel per side, {result['tasks']} "
        f"kernel tasks in {result['batches']} commit batches"
    )
    lines.append(f"output: {redact(config.output)}")
    lines.extend(f"warning: {warning}" for warning in warnings)
    from pipeline.engine.settings import dump_config

    lines.append("effective configuration:")
    lines.extend("  " + line for line in dump_config(config).splitlines())
    print("\n".join(terminal_text(redact(line)) for line in lines))
    return EXIT_OK


# ---------------------------------------------------------------------------
# demo, report, ingest


def _demo(args: argparse.Namespace) -> int:
    from pipeline.cli.demo import make_demo_folders, warm_statistics_kernels
    from pipeline.report.build import write_report

    root = Path(args.out)
    if root.exists() and not root.is_dir():
        raise _UsageError(f"--out must be a folder, got a file: {root}")
    if not args.quiet and not args.json:
        print(f"building demo folders under {root} ...", file=sys.stderr)
    # On a first run the other core compiles the statistics kernels meanwhile.
    helper = warm_statistics_kernels()
    try:
        reference, generated = make_demo_folders(root)
        results = root / "results.zarr"
        report_dir = root / "report"
        # The embedded threaded scheduler, a 4x4 region grid for the report's heatmap.
        from pipeline.engine.settings import resolve_config

        config = resolve_config(
            None,
            regions="4x4",
            output=str(results),
            overwrite=results.exists(),
            scheduler="threads",
        )
        status = _run_and_summarize(
            reference,
            generated,
            config,
            quiet=args.quiet,
            as_json=args.json,
            extra={"report": str(report_dir / "report.html")},
            after=lambda: write_report(results, report_dir),
        )
    finally:
        # The run no longer needs it (it compiled what was missing itself): numba writes
        # a cache file whole and then renames it, so stopping it leaves no partial file.
        if helper.poll() is None:
            helper.terminate()
        helper.wait()
    if not args.quiet and not args.json:
        print(
            f"\nopen {report_dir / 'report.html'} in a browser; the demo's unpaired reference "
            "file is listed on purpose (it is reported, not a failure)"
        )
    return status


def _report(args: argparse.Namespace) -> int:
    from pipeline.report.build import write_report

    if args.out and is_remote(args.out):
        raise _UsageError(
            f"report --out must be a local folder (got {redact(args.out)}); the report is "
            "HTML and figures to open in a browser"
        )
    if is_remote(args.results):
        # Read where it is (object store or HTTP); the report goes to a local folder,
        # by default named after the store, in the working directory.
        where = location(args.results, what="RESULTS")
        stem = Path(where.name).stem or "results"
        out = Path(args.out) if args.out else Path(stem + "-report")
        options = _option_assignments(args)
        page = write_report(args.results, out, worst=args.worst, storage_options=options)
        print(f"report: {page}")
        return EXIT_OK
    results = Path(location(args.results, what="RESULTS").path)
    if not results.exists():
        raise _UsageError(f"results not found: {results}")
    out = Path(args.out) if args.out else results.with_name(results.stem + "-report")
    page = write_report(results, out, worst=args.worst)
    print(f"report: {page}")
    return EXIT_OK


def _ingest(args: argparse.Namespace) -> int:
    from pipeline.inputs.ingest import ingest_folder

    # --storage-option KEY=VALUE arrives as "storage_options.KEY=VALUE" (as --set would).
    storage_options = _option_assignments(args)
    bar = None if args.quiet else ProgressBar("ingest")
    try:
        result = ingest_folder(
            args.folder,
            args.out,
            overwrite=args.overwrite,
            on_batch=bar,
            storage_options=storage_options,
        )
    finally:
        if bar is not None:
            bar.close()
    for name, info in result.arrays.items():
        print(terminal_text(f"{args.out}/{name}: {info}"))
    # ingest_folder leaves out what discovery skipped without saying so: list it here,
    # under the folder as the user typed it (a second walk reads names only).
    from pipeline.inputs.pairing import find_images

    _, skipped = find_images(args.folder, storage_options=storage_options)
    for entry in skipped:
        where = entry.location or os.path.join(str(args.folder), entry.path)
        print(f"skipped: {terminal_text(where)} ({terminal_text(entry.reason)})", file=sys.stderr)
    if result.failed:
        for path, reason in result.failed.items():
            print(f"failed: {terminal_text(path)}: {terminal_text(reason)}", file=sys.stderr)
        print(
            f"{len(result.failed)} files could not be decoded (listed above; their slots "
            "are marked failed in the store)",
            file=sys.stderr,
        )
        return EXIT_FAILED_PAIRS
    return EXIT_OK
