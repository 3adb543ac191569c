"""Inputs in an object store: the API and the command line read ``s3://`` URLs.

A real S3 server (moto's, on the loopback interface) holds Zarr stacks of bundled
photographs, a label mask and folders of PNG files; every run from the bucket must
give exactly the values of the same run on the local copies, and the secret key of
the environment must never show in the output, the results or the printed settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from PIL import Image
from s3_server import SECRET_KEY, S3Server, upload

import pipeline as sp
from pipeline.cli.main import main
from pipeline.testing import degrade, photograph

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path: Path, s3_bucket: str) -> dict[str, str]:
    """Local and remote copies of two stacks, a label mask and two image folders."""
    x = np.stack([photograph(name)[:128, :160] for name in ("camera", "moon", "coins")])
    y = np.stack(
        [
            degrade(image, "noise", strength=12, rng=np.random.default_rng(k))
            for k, image in enumerate(x)
        ]
    )
    labels = np.zeros((128, 160), np.uint8)
    labels[64:, :] = 1
    labels[:, 100:] = 2
    for name, array, chunks in (
        ("x.zarr", x, (1, 64, 80)),
        ("y.zarr", y, (1, 64, 80)),
        ("labels.zarr", labels, (64, 80)),
    ):
        zarr.create_array(
            tmp_path / name,
            shape=array.shape,
            chunks=chunks,
            dtype=array.dtype,
            config={"write_empty_chunks": True},
        )[:] = array
        upload(tmp_path / name, f"s3://{s3_bucket}/{name}")
    for side, stack in (("ref", x), ("gen", y)):
        for k, image in enumerate(stack):
            folder = tmp_path / side / ("grey" if k % 2 else "")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"im{k}.png")
        upload(tmp_path / side, f"s3://{s3_bucket}/{side}")
    return {"local": str(tmp_path), "remote": f"s3://{s3_bucket}", "bucket": s3_bucket}


def _same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert a.image.values.tolist() == b.image.values.tolist()
    assert a.status.values.tolist() == b.status.values.tolist()
    for name in ("ssim", "ssim_std", "contrast", "count"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_api_reads_zarr_labels_and_folders_from_s3_identically(
    data: dict[str, str], tmp_path: Path
) -> None:
    local, remote = data["local"], data["remote"]
    options = {"regions": "labels", "label_names": {0: "sky", 1: "ground", 2: "side"}}
    _same(
        sp.evaluate(
            f"{remote}/x.zarr", f"{remote}/y.zarr", labels=f"{remote}/labels.zarr", **options
        ),
        sp.evaluate(f"{local}/x.zarr", f"{local}/y.zarr", labels=f"{local}/labels.zarr", **options),
    )
    # A folder URL against a file:// URL: paired and scored as two local folders.
    from_urls = sp.evaluate(f"{remote}/ref", f"file://{local}/gen", regions="2x2")
    _same(from_urls, sp.evaluate(f"{local}/ref", f"{local}/gen", regions="2x2"))
    assert from_urls.image.values.tolist() == ["grey/im1.png", "im0.png", "im2.png"]
    results = tmp_path / "results.zarr"
    sp.evaluate(f"{remote}/x.zarr", f"{remote}/y.zarr", output=str(results))
    stored = xr.open_zarr(results, consolidated=False)
    assert SECRET_KEY not in json.dumps(dict(stored.attrs), default=str)
    assert stored.reference.values[0] == f"{remote}/x.zarr[0]"


def _cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *arguments],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), **(env or {})},
        timeout=300,
        check=False,
    )


def test_cli_from_s3_with_standard_credentials_never_prints_the_secret(
    data: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local, remote = data["local"], data["remote"]
    out = tmp_path / "cli.zarr"
    done = _cli("evaluate", f"{remote}/ref", f"{remote}/gen", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    _same(xr.open_zarr(out, consolidated=False), sp.evaluate(f"{local}/ref", f"{local}/gen"))
    # A secret given as a storage option is shown as *** in the printed settings
    # (in-process: the subprocess above already showed the command line's own start).
    code = main(
        [
            "evaluate",
            f"{remote}/x.zarr",
            f"{remote}/y.zarr",
            "--out",
            str(tmp_path / "dry.zarr"),
            "--storage-option",
            f"secret={SECRET_KEY}",
            "--storage-option",
            "key=AKIATESTSSIMPIPELINE",
            "--dry-run",
        ]
    )
    dry = capsys.readouterr()
    assert code == 0, dry.err
    assert "storage_options:" in dry.out and "secret: '***'" in dry.out
    texts = [done.stdout, done.stderr, dry.out, dry.err]
    texts.append(json.dumps(dict(xr.open_zarr(out, consolidated=False).attrs), default=str))
    assert not any(SECRET_KEY in text for text in texts)


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("ftp://host/x.zarr", "reference: unknown URL scheme 'ftp' in ftp://host/x.zarr"),
        ("s3:/{bucket}/x.zarr", "reference: s3:/{bucket}/x.zarr is a malformed URL"),
        ("s3://no-such-bucket-9/x.zarr", "bucket 'no-such-bucket-9' of s3://no-such-bucket-9"),
        ("s3://{bucket}/missing.zarr", "no object or prefix at s3://{bucket}/missing.zarr"),
    ],
)
def test_bad_urls_stop_the_run_before_work_naming_them(
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    reference: str,
    message: str,
) -> None:
    reference = reference.format(bucket=s3_bucket)
    out = tmp_path / "bad.zarr"
    code = main(["evaluate", reference, f"s3://{s3_bucket}/y.zarr", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message.format(bucket=s3_bucket) in err
    assert SECRET_KEY not in err
    assert not out.exists()


@pytest.fixture(scope="module")
def refusing_server() -> Iterator[S3Server]:
    """An S3 server that checks access keys, and knows none: every key is a wrong key."""
    pytest.importorskip("moto.server")
    server = S3Server(authenticate=True)
    yield server
    server.stop()


def test_a_wrong_key_is_a_clear_error_without_the_secret(
    refusing_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s3fs = pytest.importorskip("s3fs")
    for name, value in refusing_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    s3fs.S3FileSystem.clear_instance_cache()  # no filesystem of the other server
    code = main(
        ["evaluate", "s3://bucket/x.zarr", "s3://bucket/y.zarr", "--out", str(tmp_path / "r.zarr")]
    )
    s3fs.S3FileSystem.clear_instance_cache()
    err = capsys.readouterr().err
    assert code == 2
    assert "reference Zarr store: access to s3://bucket/x.zarr was refused" in err
    assert "check the credentials" in err
    assert SECRET_KEY not in err
