"""Progress of a run as text, one bar per run, advanced after every committed batch.

:class:`ProgressBar` is an ``on_batch`` callback for :func:`pipeline.evaluate`
and :func:`pipeline.inputs.ingest.ingest_folder`: both call it in the calling process
after each batch is written, whatever the scheduler, so it works on clusters too.
The ``ssim-pipeline`` command (:mod:`pipeline.cli.main`) draws one on stderr.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """A text progress bar over commit batches, for ``evaluate(on_batch=...)``.

    On a terminal it redraws one line; elsewhere (logs, CI) it prints a line at
    every tenth of the run, so a job log shows progress without flooding.
    """

    def __init__(self, label: str, *, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.images = 0
        self.start = time.perf_counter()
        self._shown_tenth = -1
        self._drawn = False

    def __call__(self, done: int, total: int, images_in_batch: int) -> None:
        self.images += images_in_batch
        fraction = done / total if total else 1.0
        filled = round(self.width * fraction)
        elapsed = time.perf_counter() - self.start
        rate = self.images / elapsed if elapsed > 0 else 0.0
        text = (
            f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} batches, "
            f"{self.images} pairs, {elapsed:.1f} s ({rate:.1f} pairs/s)"
        )
        if self.stream.isatty():
            self.stream.write("\r" + text)
            self._drawn = True
            if done == total:
                self.stream.write("\n")
                self._drawn = False
        else:
            tenth = int(fraction * 10)
            if tenth != self._shown_tenth or done == total:
                self._shown_tenth = tenth
                self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a half-drawn line (an interrupted run)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
