"""The argument grammar of the ``ssim-pipeline`` command: one parser, four subcommands.

:func:`build_parser` declares ``evaluate``, ``demo``, ``report`` and ``ingest``
with their options and help texts (the synopsis is in :mod:`pipeline.cli.main`, which
runs what is parsed). The options of ``evaluate`` that set a run setting are
generated from the fields of the settings model :class:`pipeline.engine.settings.RunConfig`
(type, choices and help text from each field), so a new setting gets its option
without anyone remembering to add it:

* a scalar field ``win_size`` is ``--win-size VALUE`` (an ``int`` field reads an
  integer, a ``Literal`` field offers its choices);
* a boolean field ``ms_ssim`` is ``--ms-ssim`` / ``--no-ms-ssim``;
* a tuple field (``maps``, ``ms_weights``, ``chunks``) takes a comma-separated list;
* everything, nested sections included (``cluster``, ``data_ranges``,
  ``label_names``, ``storage_options``), is reachable through ``--set KEY=VALUE`` with
  a dotted key and a YAML value (``--set cluster.workers=4``, ``--set
  data_ranges.float32=1.0``); ``--storage-option KEY=VALUE`` is ``--set
  storage_options.KEY=VALUE`` (also an option of ``ingest``).

Only what the model cannot say is kept here (:data:`_SPELLINGS`: ``--out`` for
``output``, metavars). A setting option is stored under the field's own name only
when it is given (``argparse.SUPPRESS`` default), so what the command line says
overrides the ``--config`` file and nothing else does. :func:`parse_command_line`
answers a mistyped option with the subcommand's usage and the closest valid option.

This module imports only the settings model (pydantic, no NumPy or Dask), so
``ssim-pipeline --help`` answers at once.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

__all__ = [
    "DEFAULT_DEMO_DIR",
    "SettingOption",
    "build_parser",
    "parse_command_line",
    "setting_flag",
    "setting_names",
    "setting_options",
]

DEFAULT_DEMO_DIR = "ssim-demo"


@dataclass(frozen=True)
class SettingOption:
    """How one :class:`RunConfig` field appears on the command line.

    ``flag`` is the option (default ``--kebab-name``); ``None`` leaves the field to
    ``--set`` only (mappings and sections). ``parse`` converts the text, ``choices``
    restrict it; ``aliases`` are extra spellings of the same option; ``boolean``
    makes it a ``--name`` / ``--no-name`` pair.
    """

    help: str
    flag: str | None = ""
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    aliases: tuple[str, ...] = ()
    boolean: bool = False


def _comma_list(parse: Callable[[str], Any], what: str) -> Callable[[str], tuple[Any, ...]]:
    def convert(text: str) -> tuple[Any, ...]:
        items = [item.strip() for item in text.split(",")]
        try:
            return tuple(parse(item) for item in items if item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {what} (got {text!r})"
            ) from None

    convert.__name__ = f"list of {what}"
    return convert


def _choice_list(choices: tuple[str, ...], what: str) -> Callable[[str], tuple[str, ...]]:
    def convert(text: str) -> tuple[str, ...]:
        names = _comma_list(str, what)(text)
        unknown = [name for name in names if name not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"expected {what} among {', '.join(choices)} (got {', '.join(unknown)})"
            )
        return names

    convert.__name__ = f"list of {what}"
    return convert


def _chunks(text: str) -> str | tuple[int, ...]:
    if text in ("auto", "input"):
        return text
    try:
        return _comma_list(int, "integers")(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'input' or IMAGES,Y,X such as 1,512,512 (got {text!r})"
        ) from None


# What the model cannot say: an option's spelling other than --kebab-name, a metavar,
# a parser for a value that is not one plain type. Everything else comes from the field.
_SPELLINGS: dict[str, dict[str, Any]] = {
    "win_size": {"metavar": "N"},
    "sigma": {"metavar": "S"},
    "k1": {"metavar": "K"},
    "k2": {"metavar": "K"},
    "data_range": {"metavar": "L"},
    "channel_axis": {"metavar": "AXIS"},
    "regions": {"metavar": "SPEC"},
    "labels": {"metavar": "ZARR", "parse": str},
    "ms_weights": {"metavar": "W,W,..."},
    "chunks": {"metavar": "SPEC", "parse": _chunks},
    "maps": {"metavar": "NAME,..."},
    "maps_output": {"metavar": "ZARR"},
    "output": {"flag": "--out", "metavar": "RESULTS"},
    "output_format": {"flag": "--format", "aliases": ("--output-format",)},
}


def _plain(annotation: Any) -> tuple[Any, bool]:
    """``annotation`` without ``Annotated`` and ``None``; and whether it was optional."""
    optional = False
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if typing.get_origin(annotation) in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation, optional


def _option_from_field(
    name: str, annotation: Any, description: str | None, default: Any = None
) -> SettingOption:
    """The command-line option of one settings field, from its type, description, default."""
    spelling = dict(_SPELLINGS.get(name, {}))
    kind, _ = _plain(annotation)
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    help_text = description or name.replace("_", " ")
    if isinstance(default, str | int | float) and not isinstance(default, bool):
        help_text += f" (default {default})"
    if kind is bool:
        return SettingOption(help_text, boolean=True, **spelling)
    if origin is Literal:
        parse = type(args[0]) if all(type(a) is type(args[0]) for a in args) else str
        spelling.setdefault("parse", parse)
        return SettingOption(help_text, choices=args, **spelling)
    if origin is tuple and args and args[-1] is Ellipsis:
        item, _ = _plain(args[0])
        if typing.get_origin(item) is Literal:
            choices = typing.get_args(item)
            spelling.setdefault("parse", _choice_list(choices, f"{name.replace('_', ' ')}"))
            help_text += f", among {','.join(choices)}"
        else:
            spelling.setdefault(
                "parse", _comma_list(item, "numbers" if item is float else "values")
            )
        return SettingOption(help_text, **spelling)
    if kind in (int, float, str):
        spelling.setdefault("parse", kind)
        spelling.setdefault("metavar", "N" if kind is int else None)
        return SettingOption(help_text, **spelling)
    if "parse" in spelling:  # a union the spelling table knows how to read (chunks)
        return SettingOption(help_text, **spelling)
    return SettingOption(f"{help_text} (--set only)", flag=None)


@functools.cache
def setting_options() -> dict[str, SettingOption]:
    """One row per RunConfig field, generated from the model (built on first use).

    Also importable as ``SETTING_OPTIONS`` (a module attribute made on first access).
    """
    from pipeline.engine.settings import RunConfig

    return {
        name: _option_from_field(name, field.annotation, field.description, field.default)
        for name, field in RunConfig.model_fields.items()
    }


@functools.cache
def _cluster_options() -> dict[str, SettingOption]:
    """Flat spellings of cluster fields, as RunConfig accepts them (the cluster section
    is otherwise set through --set cluster.KEY=VALUE)."""
    from pipeline.engine.settings import CLUSTER_SHORTHANDS, ClusterSettings

    helps = {
        name: f"{ClusterSettings.model_fields[target].description} (cluster.{target})"
        for name, target in CLUSTER_SHORTHANDS.items()
    }
    return {
        "scheduler": SettingOption(helps["scheduler"], metavar="SPEC", parse=str),
        "num_workers": SettingOption(
            helps["num_workers"], flag="--workers", metavar="N", parse=int
        ),
        "performance_report": SettingOption(helps["performance_report"], metavar="FILE", parse=str),
    }


def __getattr__(name: str) -> Any:
    # SETTING_OPTIONS: one row per RunConfig field (tests/cli/test_settings.py checks that
    # every field has one), generated on first use so that importing this module -- and
    # the top-level --help -- does not load the settings model.
    if name == "SETTING_OPTIONS":
        return setting_options()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def setting_names() -> tuple[str, ...]:
    """Where the setting options store their values: every field, and the cluster shorthands."""
    return (*setting_options(), *_cluster_options())


def setting_flag(name: str) -> str | None:
    """The option that sets the :class:`RunConfig` field ``name`` (None: ``--set`` only)."""
    option = setting_options().get(name) or _cluster_options().get(name)
    if option is None:
        return "--" + name.replace("_", "-")
    if option.flag is None:
        return None
    return option.flag or "--" + name.replace("_", "-")


def _add_setting(group: argparse._ArgumentGroup, name: str, option: SettingOption) -> None:
    flag = setting_flag(name)
    if flag is None:
        return
    names = [flag, *option.aliases]
    if option.boolean:
        group.add_argument(
            *names,
            dest=name,
            action=argparse.BooleanOptionalAction,
            default=argparse.SUPPRESS,
            help=option.help,
        )
        return
    group.add_argument(
        *names,
        dest=name,
        type=option.parse or str,
        choices=option.choices,
        metavar=option.metavar,
        default=argparse.SUPPRESS,
        help=option.help,
    )


def _add_settings(parser: argparse.ArgumentParser) -> None:
    settings = parser.add_argument_group(
        "settings", "each sets the run setting of the same name; they override --config"
    )
    for name, option in setting_options().items():
        _add_setting(settings, name, option)
    for name, option in _cluster_options().items():
        _add_setting(settings, name, option)
    settings.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting, the value read as YAML; the sections cluster.KEY, "
        "data_ranges.DTYPE and label_names.VALUE by a dotted key: --set cluster.workers=4 "
        "--set data_ranges.float32=1.0 --set ms_weights=[0.5,0.5]; applied after the "
        "options above (repeatable)",
    )
    _add_storage_option(settings)


class _StorageOption(argparse.Action):
    """``--storage-option KEY=VALUE``: the same as ``--set storage_options.KEY=VALUE``."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None
    ) -> None:
        text = str(values)
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            parser.error(f"{option} needs KEY=VALUE, such as {option} anon=true (got {text!r})")
        assignments = list(getattr(namespace, self.dest, None) or [])
        assignments.append(f"storage_options.{key.strip()}={value}")
        setattr(namespace, self.dest, assignments)


def _add_storage_option(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--storage-option",
        dest="assignments",
        action=_StorageOption,
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the filesystem of inputs given as URLs (s3://, gs://, az://, "
        "https://), the value read as YAML: --storage-option anon=true --storage-option "
        "endpoint_url=http://127.0.0.1:9000 (repeatable); standard credentials (AWS_* "
        "variables, AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*) need none",
    )


class _DeferredParser(argparse.ArgumentParser):
    """A subcommand's parser that adds some arguments only when it is used.

    The settings options of ``evaluate`` need the settings model (pydantic); they are
    added when ``evaluate`` parses or prints its help, so that ``ssim-pipeline
    --help`` and the other subcommands start without it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[Callable[[argparse.ArgumentParser], None]] = []

    def defer(self, add: Callable[[argparse.ArgumentParser], None]) -> None:
        """Call ``add(self)`` before this parser is first used."""
        self._deferred.append(add)

    def complete(self) -> None:
        """Add what was deferred (once)."""
        while self._deferred:
            self._deferred.pop(0)(self)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self.complete()
        return super().parse_known_args(*args, **kwargs)

    def format_help(self) -> str:
        self.complete()
        return super().format_help()

    def format_usage(self) -> str:
        self.complete()
        return super().format_usage()


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("nargs", 0)
        kwargs.setdefault("default", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        import pipeline

        parser._print_message(f"{parser.prog} {pipeline.__version__}\n", sys.stdout)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ssim-pipeline`` (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="ssim-pipeline",
        description="Streaming SSIM evaluation for folders of images and Zarr stacks.",
        epilog="Exit status: 0 done, 1 finished with failed pairs (listed), 2 bad usage or input.",
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="show the program's version number and exit"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_DeferredParser
    )

    # allow_abbrev=False: the options are generated from the settings, so an
    # abbreviation that works today could become ambiguous when a setting is added.
    run = commands.add_parser(
        "evaluate",
        help="SSIM of every pair of two folders of images, Zarr stacks or image files",
        description="SSIM of every pair of two folders of images (paired by relative path, "
        "then by stem), two Zarr stacks, or two image files (one pair); results stream "
        "into --out.",
        allow_abbrev=False,
    )
    run.add_argument(
        "reference",
        metavar="REFERENCE",
        help="folder of images, Zarr array or image file: a path or a URL (s3://, gs://, "
        "az://, https://, file://)",
    )
    run.add_argument(
        "generated",
        metavar="GENERATED",
        nargs="+",
        help="as REFERENCE: folder, Zarr array or image file; several GENERATED are several "
        "models evaluated against the same REFERENCE in one run (each reference decoded "
        "once; the results gain a model dimension, named after each folder or store)",
    )
    run.add_argument("--config", metavar="FILE", help="YAML run configuration (see configs/)")
    run.add_argument(
        "--dry-run", action="store_true", help="print the plan and the settings; compute nothing"
    )
    _add_output_flags(run)
    run.defer(_add_settings)

    demo = commands.add_parser(
        "demo",
        help="run the main job on bundled photographs",
        description="Build reference/generated folders from scikit-image's bundled "
        "photographs with GAN-like damage, evaluate them on the embedded threaded "
        "scheduler and write the results and the report under --out.",
        allow_abbrev=False,
    )
    demo.add_argument("--out", metavar="DIR", default=DEFAULT_DEMO_DIR, help="demo folder")
    _add_output_flags(demo)

    report = commands.add_parser(
        "report",
        help="figures and an HTML page from results",
        description="Write the report.",
        allow_abbrev=False,
    )
    report.add_argument("results", metavar="RESULTS", help="results store (.zarr) or .nc file")
    report.add_argument("--out", metavar="DIR", help="report folder (default: RESULTS-report)")
    report.add_argument("--worst", type=int, default=6, metavar="N", help="worst pairs shown")
    _add_storage_option(report)

    ingest = commands.add_parser(
        "ingest",
        help="folder of images -> Zarr stack",
        description="Decode a folder of images once into a Zarr stack (one array per "
        "size group, file names as a coordinate) for repeated evaluation.",
        allow_abbrev=False,
    )
    ingest.add_argument(
        "folder", metavar="FOLDER", help="folder of images (recursive), a path or a URL"
    )
    ingest.add_argument("--out", metavar="STACK", required=True, help="Zarr store to write")
    ingest.add_argument("--overwrite", action="store_true", help="replace an existing store")
    ingest.add_argument("--quiet", action="store_true", help="no progress output")
    _add_storage_option(ingest)
    return parser


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    parser.add_argument("--json", action="store_true", help="JSON summary on stdout")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _suggest(token: str, options: Sequence[str]) -> str:
    name = token.split("=", 1)[0]
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def parse_command_line(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is reported by its subcommand with a suggestion.

    argparse alone reports options it does not know from the top-level parser, with
    the top-level usage and no hint; here the subcommand's parser reports them, with
    its own usage and the closest valid option (``difflib``).

    Raises
    ------
    SystemExit
        As argparse does, after printing the usage and the message on stderr.
    """
    args, extras = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if not extras:
        return args
    sub = _subcommands(parser).get(getattr(args, "command", None) or "")
    reporter = sub if sub is not None else parser
    if isinstance(reporter, _DeferredParser):
        reporter.complete()
    options = [s for action in reporter._actions for s in action.option_strings]
    unknown = [token for token in extras if token.startswith("-")]
    if unknown:
        reporter.error(f"unrecognized option {unknown[0]}{_suggest(unknown[0], options)}")
    reporter.error(f"unrecognized arguments: {' '.join(extras)}")
