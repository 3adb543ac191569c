"""Inputs from an S3 server on the loopback interface against the same inputs on local disk.

moto's S3 server (the one the tests use, ``tests/s3_server.py``) is started on
127.0.0.1; the same data is written to a temporary folder and uploaded to a bucket:

* a Zarr pair ``(images, 4096, 4096)`` uint8 with ``(1, 1024, 1024)`` chunks
  (random pixels: each stored chunk is ~1 MB, zstd cannot shrink them);
* a folder pair of ``--pairs`` 512x512 RGB PNG files (crops of scikit-image's
  photographs, the generated side with noise).

In one process, with the same threaded Dask scheduler, each is timed from S3 and
from disk:

* **read**: the source's pixels only (``open_pair``'s stacks at the planned chunks,
  with their read status: every byte fetched, every chunk decoded, no SSIM);
* **evaluate**: ``pipeline.evaluate`` into an in-memory Dataset (SSIM included);
* **server ceiling**: the Zarr pair's chunk objects fetched by one concurrent ``fs.cat``
  and nothing else -- what the server itself delivers, which bounds every reader.

Printed: Mpix/s (Zarr) or pairs/s (folders), the ratio S3/local, and the requests
in flight per Dask task -- Zarr's ``async.concurrency`` for the chunks of a block,
the objects of a decode task for ``fs.cat`` -- times the Dask threads. Also printed:
the CPU seconds of the moto server process during the S3 runs, since moto is a
single Python process and may itself be the bottleneck.

    python benchmarks/bench_object_store.py [--images 2] [--pairs 100] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's pipeline, not an installed one)
import dask
import numpy as np
import zarr
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_server import S3Server, upload

import pipeline as sp
from pipeline.inputs.opening import open_pair
from pipeline.testing import PHOTOGRAPHS, photograph


def _server_cpu(server: S3Server) -> float:
    """CPU seconds (user + system) the moto server process has used so far."""
    with open(f"/proc/{server.process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _write_zarr(root: Path, images: int, side: int, chunk: int) -> None:
    rng = np.random.default_rng(0)
    for name in ("x.zarr", "y.zarr"):
        array = zarr.create_array(
            root / name, shape=(images, side, side), chunks=(1, chunk, chunk), dtype="uint8"
        )
        for k in range(images):
            array[k] = rng.integers(0, 256, (side, side), dtype=np.uint8)


def _write_folders(root: Path, pairs: int, size: int) -> None:
    rng = np.random.default_rng(1)
    photos = [photograph(name) for name in PHOTOGRAPHS]
    photos = [p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=2) for p in photos]
    for side in ("ref", "gen"):
        (root / side).mkdir(parents=True, exist_ok=True)
    for k in range(pairs):
        photo = photos[k % len(photos)]
        y0 = rng.integers(0, max(1, photo.shape[0] - size // 2))
        x0 = rng.integers(0, max(1, photo.shape[1] - size // 2))
        crop = Image.fromarray(photo[y0 : y0 + size // 2, x0 : x0 + size // 2])
        x = np.asarray(crop.resize((size, size)))
        y = np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8)
        Image.fromarray(x).save(root / "ref" / f"im{k:04d}.png")
        Image.fromarray(y).save(root / "gen" / f"im{k:04d}.png")


def _read(reference: str, generated: str) -> None:
    """Every pixel of both sides read and decoded (with the read status), no SSIM."""
    pair = open_pair(reference, generated)
    parts = pair.groups or (pair,)
    work = []
    for part in parts:
        chunks = part.reference.chunks
        if part.direct[0] is not None:
            # A Zarr pair: read at the chunks the engine plans (whole source chunks).
            chunks = ((1,) * part.n_images, (4096,), (4096,), (1,))
            part = part.planned(chunks)
            x, y = part.chunked(chunks)
        else:
            x, y = part.reference, part.generated
        work += [x.max(), y.max()]
        if part.read_status is not None:
            work.append(part.read_status)
    dask.compute(*work)


def _fetch_all(urls: list[str]) -> None:
    """Every object's bytes in one concurrent ``fs.cat`` (no decoding): the server's ceiling."""
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.cat(urls)


def _best(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="images of the Zarr pair")
    parser.add_argument("--pairs", type=int, default=100, help="pairs of PNG files")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, best kept")
    args = parser.parse_args()
    side, chunk, size = 4096, 1024, 512

    server = S3Server()
    os.environ.update(server.environment())
    bucket = server.new_bucket()
    workers = dask.config.get("num_workers", None) or os.cpu_count()
    concurrency = zarr.config.get("async.concurrency")
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            _write_zarr(root, args.images, side, chunk)
            _write_folders(root, args.pairs, size)
            for name in ("x.zarr", "y.zarr", "ref", "gen"):
                upload(root / name, f"s3://{bucket}/{name}")
            chunk_bytes = (root / "x.zarr" / "c" / "0" / "0" / "0").stat().st_size
            sources = {
                "local": {
                    "zarr": (str(root / "x.zarr"), str(root / "y.zarr")),
                    "png": (str(root / "ref"), str(root / "gen")),
                },
                "s3": {
                    "zarr": (f"s3://{bucket}/x.zarr", f"s3://{bucket}/y.zarr"),
                    "png": (f"s3://{bucket}/ref", f"s3://{bucket}/gen"),
                },
            }
            pixels = 2 * args.images * side * side
            # One warm-up run each: kernels compiled, filesystems and connections made.
            for kind in ("zarr", "png"):
                for where in ("local", "s3"):
                    sp.evaluate(*sources[where][kind])
            print(
                f"Dask threads: {workers}; Zarr chunk {chunk}x{chunk} uint8, stored "
                f"{chunk_bytes / 1e6:.2f} MB; zarr async.concurrency={concurrency}"
            )
            print(
                f"requests in flight: Zarr <= {concurrency} chunks per read task x {workers} "
                f"threads; folders: every object of a decode task (both sides) in one "
                f"fs.cat, x {workers} threads"
            )
            rows = []
            objects = [
                f"s3://{bucket}/{name}/{path.relative_to(root / name).as_posix()}"
                for name in ("x.zarr", "y.zarr")
                for path in sorted((root / name / "c").rglob("*"))
                if path.is_file()
            ]
            ceiling = pixels / 1e6 / _best(lambda: _fetch_all(objects), args.repeat)
            for kind, unit, amount in (
                ("zarr", "Mpix/s", pixels / 1e6),
                ("png", "pairs/s", args.pairs),
            ):
                for stage, run in (("read", _read), ("evaluate", sp.evaluate)):
                    speeds = {}
                    server_share = 0.0
                    for where in ("local", "s3"):
                        before = _server_cpu(server)
                        seconds = _best(
                            lambda f=run, inputs=sources[where][kind]: f(*inputs), args.repeat
                        )
                        if where == "s3":
                            cpu = (_server_cpu(server) - before) / args.repeat
                            server_share = cpu / seconds
                        speeds[where] = amount / seconds
                    rows.append((kind, stage, unit, speeds["local"], speeds["s3"], server_share))
            print(
                f"{'input':6} {'stage':9} {'unit':8} {'local':>9} {'s3':>9} {'s3/local':>9} "
                f"{'moto CPU':>9}"
            )
            for kind, stage, unit, local, remote, share in rows:
                print(
                    f"{kind:6} {stage:9} {unit:8} {local:9.1f} {remote:9.1f} "
                    f"{remote / local:9.2f} {share:8.0%}"
                )
            zarr_read = next(r[4] for r in rows if r[0] == "zarr" and r[1] == "read")
            print(
                f"server ceiling: every Zarr chunk object fetched by one concurrent fs.cat "
                f"(no decoding, no Dask): {ceiling:.1f} Mpix/s; the Zarr read from S3 reaches "
                f"{zarr_read / ceiling:.2f} of it"
            )
            print(
                "moto CPU: the server's CPU seconds per wall second of the S3 run (100 % = "
                "one core busy: moto, a single Python process, is then the limit)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
