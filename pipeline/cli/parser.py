"""The argument grammar of the ``ssim-pipeline`` command: one parser, four subcommands.

:func:`build_parser` declares ``evaluate``, ``demo``, ``report`` and ``ingest``
with their options and help texts (the synopsis is in :mod:`pipeline.cli.main`, which
runs what is parsed). The options of ``evaluate`` that set a run setting are
generated from the fields of :class:`pipeline.engine.run_config.RunConfig`, so a new
setting gets its option without anyone remembering to add it:

* a scalar field ``win_size`` is ``--win-size VALUE`` (choices and types from
  :data:`SETTING_OPTIONS`, the table kept beside the walk);
* a boolean field ``ms_ssim`` is ``--ms-ssim`` / ``--no-ms-ssim``;
* a tuple field (``maps``, ``ms_weights``) takes a comma-separated list;
* everything, nested sections included (``cluster``, ``data_ranges``,
  ``label_names``), is reachable through ``--set KEY=VALUE`` with a dotted key
  and a YAML value (``--set cluster.workers=4``, ``--set data_ranges.float32=1.0``).

A setting option is stored under the field's own name only when it is given
(``argparse.SUPPRESS`` default), so what the command line says overrides the
``--config`` file and nothing else does. :func:`parse_command_line` answers a
mistyped option with the subcommand's usage and the closest valid option.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

import pipeline
from pipeline.engine.run_config import DEVICES, MAP_CHOICES, NAN_POLICIES, OUTPUT_FORMATS, RunConfig
from pipeline.inputs.sources import MISSING_CHUNK_POLICIES
from pipeline.kernels import ENGINES
from pipeline.metrics.colour import COLOR_MODES
from pipeline.metrics.profiles import COVARIANCES, PROFILES, WINDOWS

__all__ = [
    "DEFAULT_DEMO_DIR",
    "SETTING_OPTIONS",
    "SettingOption",
    "build_parser",
    "parse_command_line",
    "setting_flag",
    "setting_names",
]

DEFAULT_DEMO_DIR = "ssim-demo"


@dataclass(frozen=True)
class SettingOption:
    """How one :class:`RunConfig` field appears on the command line.

    ``flag`` is the option (default ``--kebab-name``); ``None`` leaves the field to
    ``--set`` only (mappings and sections). ``parse`` converts the text, ``choices``
    restrict it; ``aliases`` are extra spellings of the same option.
    """

    help: str
    flag: str | None = ""
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    aliases: tuple[str, ...] = ()


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


def _maps(text: str) -> tuple[str, ...]:
    names = _comma_list(str, "map names")(text)
    unknown = [name for name in names if name not in MAP_CHOICES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"expected map names among {', '.join(MAP_CHOICES)} (got {', '.join(unknown)})"
        )
    return names


def _chunks(text: str) -> str | tuple[int, ...]:
    if text in ("auto", "input"):
        return text
    try:
        return _comma_list(int, "integers")(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'input' or IMAGES,Y,X such as 1,512,512 (got {text!r})"
        ) from None


# One row per RunConfig field: the help text and how the value is read. A field
# missing here still gets an option from its default's type (see _generic_option);
# tests/cli/test_settings.py checks that every field has a row.
SETTING_OPTIONS: dict[str, SettingOption] = {
    "profile": SettingOption("compatibility profile (default wang2004)", choices=tuple(PROFILES)),
    "window": SettingOption("window shape (overrides the profile)", choices=WINDOWS),
    "win_size": SettingOption("window side, odd (overrides the profile)", metavar="N", parse=int),
    "sigma": SettingOption(
        "Gaussian window's sigma (overrides the profile)", metavar="S", parse=float
    ),
    "k1": SettingOption("K1 constant (overrides the profile)", metavar="K", parse=float),
    "k2": SettingOption("K2 constant (overrides the profile)", metavar="K", parse=float),
    "covariance": SettingOption("variance estimator (overrides the profile)", choices=COVARIANCES),
    "data_range": SettingOption(
        "L, the data range (required for float images; integers default to their dtype)",
        metavar="L",
        parse=float,
    ),
    "data_ranges": SettingOption(
        "L per dtype: --set data_ranges.float32=1.0 (folders that mix dtypes)", flag=None
    ),
    "channel_axis": SettingOption(
        "axis of colour channels in array inputs", metavar="AXIS", parse=int
    ),
    "color_mode": SettingOption(
        "per-channel SSIM averaged, or SSIM of BT.601 luma", choices=COLOR_MODES
    ),
    "regions": SettingOption(
        "'all', a grid '4x4', a tile size '256px' or 'labels'", metavar="SPEC"
    ),
    "labels": SettingOption("label mask (Zarr path) for --regions labels", metavar="ZARR"),
    "label_names": SettingOption("names of labels: --set label_names.1=road", flag=None),
    "hist_bins": SettingOption("histogram bins over [-1, 1] (default 100)", metavar="N", parse=int),
    "nan_policy": SettingOption(
        "a NaN/Inf pixel fails its pair, or masks the windows touching it", choices=NAN_POLICIES
    ),
    "missing_chunks": SettingOption(
        "a missing Zarr chunk fails its pairs, or reads as the fill value",
        choices=MISSING_CHUNK_POLICIES,
    ),
    "max_image_pixels": SettingOption(
        "largest image file decoded, in pixels", metavar="N", parse=int
    ),
    "max_input_elements": SettingOption(
        "largest Zarr input accepted, in elements", metavar="N", parse=int
    ),
    "ms_ssim": SettingOption("also compute MS-SSIM per image"),
    "ms_weights": SettingOption(
        "MS-SSIM exponents, one per scale (needs --ms-ssim)",
        metavar="W,W,...",
        parse=_comma_list(float, "numbers"),
    ),
    "volume": SettingOption("evaluate the stack as one 3-D volume"),
    "chunks": SettingOption(
        "task chunks: auto, input, or IMAGES,Y,X", metavar="SPEC", parse=_chunks
    ),
    "chunk_pixels": SettingOption("target pixels read by one task", metavar="N", parse=int),
    "batch_images": SettingOption(
        "pairs committed per batch (default: planned)", metavar="N", parse=int
    ),
    "save_maps": SettingOption("also store the SSIM maps (Zarr)"),
    "maps": SettingOption(
        f"maps stored by --save-maps, among {','.join(MAP_CHOICES)}",
        metavar="NAME,...",
        parse=_maps,
    ),
    "maps_output": SettingOption("Zarr path of the stored maps", metavar="ZARR"),
    "output": SettingOption("results path (.zarr, .nc or .csv)", flag="--out", metavar="RESULTS"),
    "output_format": SettingOption(
        "output format (default: from the suffix)",
        flag="--format",
        choices=OUTPUT_FORMATS,
        aliases=("--output-format",),
    ),
    "zarr_format": SettingOption("Zarr format of the results", parse=int, choices=(2, 3)),
    "resume": SettingOption("finish an interrupted run into the same --out"),
    "overwrite": SettingOption("replace an existing --out"),
    "engine": SettingOption("kernel engine", choices=ENGINES),
    "device": SettingOption("cpu or gpu", choices=DEVICES),
    "cluster": SettingOption(
        "where the graph runs: --set cluster.KEY=VALUE (see also --scheduler)", flag=None
    ),
}

# Flat spellings of cluster fields, as RunConfig accepts them (the cluster section
# is otherwise set through --set cluster.KEY=VALUE).
_CLUSTER_OPTIONS: dict[str, SettingOption] = {
    "scheduler": SettingOption(
        "threads (default), processes, synchronous, local, slurm, pbs, cuda, "
        "tcp://host:port or a scheduler file (cluster.scheduler)",
        metavar="SPEC",
    ),
    "num_workers": SettingOption(
        "worker threads, processes or jobs (cluster.workers)",
        flag="--workers",
        metavar="N",
        parse=int,
    ),
    "performance_report": SettingOption(
        "save Dask's HTML performance report (distributed schedulers)", metavar="FILE"
    ),
}


def setting_names() -> tuple[str, ...]:
    """Where the setting options store their values: every field, and the cluster shorthands."""
    return (*(item.name for item in fields(RunConfig)), *_CLUSTER_OPTIONS)


def setting_flag(name: str) -> str | None:
    """The option that sets the :class:`RunConfig` field ``name`` (None: ``--set`` only)."""
    option = SETTING_OPTIONS.get(name) or _CLUSTER_OPTIONS.get(name)
    if option is None:
        return "--" + name.replace("_", "-")
    if option.flag is None:
        return None
    return option.flag or "--" + name.replace("_", "-")


def _generic_option(default: Any) -> SettingOption:
    """The option of a field without a row in SETTING_OPTIONS, from its default's type."""
    if isinstance(default, bool):
        return SettingOption("(no description yet)")
    if isinstance(default, int | float | str):
        return SettingOption("(no description yet)", parse=type(default))
    return SettingOption("(no description yet; use --set)", flag=None)


def _add_setting(
    group: argparse._ArgumentGroup, name: str, option: SettingOption, default: Any
) -> None:
    flag = setting_flag(name)
    if flag is None:
        return
    names = [flag, *option.aliases]
    if isinstance(default, bool):
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
    for item in fields(RunConfig):
        default = item.default if item.default is not MISSING else None
        option = SETTING_OPTIONS.get(item.name) or _generic_option(default)
        _add_setting(settings, item.name, option, default)
    for name, option in _CLUSTER_OPTIONS.items():
        _add_setting(settings, name, option, None)
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ssim-pipeline`` (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="ssim-pipeline",
        description="Streaming SSIM evaluation for folders of images and Zarr stacks.",
        epilog="Exit status: 0 done, 1 finished with failed pairs (listed), 2 bad usage or input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {pipeline.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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
        "reference", metavar="REFERENCE", help="folder of images, Zarr array or image file"
    )
    run.add_argument(
        "generated", metavar="GENERATED", help="folder of images, Zarr array or image file"
    )
    run.add_argument("--config", metavar="FILE", help="YAML run configuration (see configs/)")
    run.add_argument(
        "--dry-run", action="store_true", help="print the plan and the settings; compute nothing"
    )
    _add_output_flags(run)
    _add_settings(run)

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

    ingest = commands.add_parser(
        "ingest",
        help="folder of images -> Zarr stack",
        description="Decode a folder of images once into a Zarr stack (one array per "
        "size group, file names as a coordinate) for repeated evaluation.",
        allow_abbrev=False,
    )
    ingest.add_argument("folder", metavar="FOLDER", help="folder of images (recursive)")
    ingest.add_argument("--out", metavar="STACK", required=True, help="Zarr store to write")
    ingest.add_argument("--overwrite", action="store_true", help="replace an existing store")
    ingest.add_argument("--quiet", action="store_true", help="no progress output")
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
    options = [s for action in reporter._actions for s in action.option_strings]
    unknown = [token for token in extras if token.startswith("-")]
    if unknown:
        reporter.error(f"unrecognized option {unknown[0]}{_suggest(unknown[0], options)}")
    reporter.error(f"unrecognized arguments: {' '.join(extras)}")
