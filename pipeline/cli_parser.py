"""The argument grammar of the ``ssim-pipeline`` command: one parser, four subcommands.

:func:`build_parser` declares ``evaluate``, ``demo``, ``report`` and ``ingest``
with their options and help texts (the synopsis is in :mod:`pipeline.cli`, which
runs what is parsed). Choices come from the settings they set
(:data:`pipeline.presets.PROFILES`, :data:`pipeline.config.DEVICES`,
:data:`pipeline.config.OUTPUT_FORMATS`), so ``--help`` and the validation of a
configuration file never disagree.
"""

from __future__ import annotations

import argparse

import pipeline
from pipeline.config import DEVICES, OUTPUT_FORMATS
from pipeline.presets import PROFILES

__all__ = ["DEFAULT_DEMO_DIR", "build_parser"]

DEFAULT_DEMO_DIR = "ssim-demo"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ssim-pipeline`` (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="ssim-pipeline",
        description="Streaming SSIM evaluation for folders of images and Zarr stacks.",
        epilog="Exit status: 0 done, 1 finished with failed pairs (listed), 2 bad usage or input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {pipeline.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "evaluate",
        help="SSIM of every pair of two folders of images or Zarr stacks",
        description="SSIM of every pair of two folders of images (paired by relative path, "
        "then by stem) or two Zarr stacks; results stream into --out.",
    )
    run.add_argument("reference", metavar="REFERENCE", help="folder of images or Zarr array")
    run.add_argument("generated", metavar="GENERATED", help="folder of images or Zarr array")
    run.add_argument("--out", metavar="RESULTS", help="results path (.zarr, .nc or .csv)")
    run.add_argument("--config", metavar="FILE", help="YAML run configuration (see configs/)")
    run.add_argument("--profile", choices=tuple(PROFILES), help="compatibility profile")
    run.add_argument("--regions", metavar="SPEC", help="'all', a grid '4x4', '256px'")
    run.add_argument(
        "--scheduler",
        metavar="SPEC",
        help="threads (default), processes, synchronous, local, slurm, pbs, cuda, "
        "tcp://host:port or a scheduler file",
    )
    run.add_argument(
        "--performance-report",
        metavar="FILE",
        help="save Dask's HTML performance report (distributed schedulers)",
    )
    run.add_argument("--device", choices=DEVICES, help="cpu or gpu")
    run.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: suffix)")
    run.add_argument("--resume", action="store_true", help="finish an interrupted run")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run.add_argument("--save-maps", action="store_true", help="also store the SSIM maps")
    run.add_argument(
        "--dry-run", action="store_true", help="print the plan and the settings; compute nothing"
    )
    _add_output_flags(run)

    demo = commands.add_parser(
        "demo",
        help="run the main job on bundled photographs",
        description="Build reference/generated folders from scikit-image's bundled "
        "photographs with GAN-like damage, evaluate them on the embedded threaded "
        "scheduler and write the results and the report under --out.",
    )
    demo.add_argument("--out", metavar="DIR", default=DEFAULT_DEMO_DIR, help="demo folder")
    _add_output_flags(demo)

    report = commands.add_parser(
        "report", help="figures and an HTML page from results", description="Write the report."
    )
    report.add_argument("results", metavar="RESULTS", help="results store (.zarr) or .nc file")
    report.add_argument("--out", metavar="DIR", help="report folder (default: RESULTS-report)")
    report.add_argument("--worst", type=int, default=6, metavar="N", help="worst pairs shown")

    ingest = commands.add_parser(
        "ingest",
        help="folder of images -> Zarr stack",
        description="Decode a folder of images once into a Zarr stack (one array per "
        "size group, file names as a coordinate) for repeated evaluation.",
    )
    ingest.add_argument("folder", metavar="FOLDER", help="folder of images (recursive)")
    ingest.add_argument("--out", metavar="STACK", required=True, help="Zarr store to write")
    ingest.add_argument("--overwrite", action="store_true", help="replace an existing store")
    ingest.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    parser.add_argument("--json", action="store_true", help="JSON summary on stdout")
