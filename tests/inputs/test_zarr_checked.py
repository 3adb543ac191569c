"""pipeline.inputs.zarr_checked: Zarr reads that also say which chunks failed or were missing.

A read over several chunks (or shards) on Zarr's own read path is made again chunk by
chunk when it fails, so that only the images held by a bad chunk fail. How missing and
corrupt chunks fail their pairs in a whole run (``evaluate``, the CLI, ingest stores) is
in tests/end_to_end/test_missing_chunks.py and test_corrupt_chunks.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

import pipeline.inputs.zarr_checked as zarr_checked


def _write(path: Path, data: np.ndarray, options: dict) -> Path:
    zarr.create_array(path, data=data, **options)
    return path


def test_read_task_reports_zarr_path_failures_chunk_by_chunk(tmp_path, stacks):
    # One read over two shards: the broken one fails its images, the other is read.
    y = _write(tmp_path / "y.zarr", stacks[1], {"chunks": (1, 24, 32), "shards": (2, 24, 32)})
    (y / "c/0/0/0").write_bytes(b"garbage")
    out, problems = zarr_checked.read_checked(
        zarr.open_array(y, mode="r"), [(0, 4), (0, 24), (0, 32)]
    )
    assert {(p.key, p.box[0]) for p in problems} == {("c/0/0/0", (0, 1)), ("c/0/0/0", (1, 2))}
    np.testing.assert_array_equal(out[2:], stacks[1][2:])
    assert not out[:2].any()
