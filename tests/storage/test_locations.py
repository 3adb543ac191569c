"""Locations: parsing, checks before work, filesystems, Zarr stores and redaction of credentials."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from s3_server import SECRET_KEY

from pipeline.storage.locations import (
    LocationError,
    MissingExtraError,
    check_exists,
    filesystem,
    is_remote,
    is_url,
    join,
    location,
    redact,
    redact_options,
    zarr_store,
)


def test_local_paths_and_file_urls_are_local(tmp_path: Path) -> None:
    assert location(tmp_path).local == tmp_path
    assert location(str(tmp_path)).local == tmp_path
    assert location(f"file://{tmp_path}").local == tmp_path
    assert not is_remote(f"file://{tmp_path}") and is_url(f"file://{tmp_path}")


@pytest.mark.parametrize(
    ("url", "scheme", "path"),
    [
        ("s3://bucket/a/b.zarr", "s3", "bucket/a/b.zarr"),
        ("s3://bucket/a/", "s3", "bucket/a"),
        ("gs://bucket/x", "gs", "bucket/x"),
        ("az://container/x", "az", "container/x"),
        ("https://example.org/x.zarr", "https", "https://example.org/x.zarr"),
    ],
)
def test_remote_urls_parse(url: str, scheme: str, path: str) -> None:
    where = location(url)
    assert (where.scheme, where.path, where.remote) == (scheme, path, True)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("ftp://host/x", "reference: unknown URL scheme 'ftp' in ftp://host/x"),
        ("s3://", r"reference: s3:// is malformed \(expected s3://bucket/path\)"),
        ("s3:/bucket/x.zarr", "reference: s3:/bucket/x.zarr is a malformed URL"),
        ("gs:bucket/x", "reference: gs:bucket/x is a malformed URL"),
        ("file://elsewhere/x", "names host 'elsewhere'"),
        ("", "reference: an empty path"),
    ],
)
def test_bad_locations_are_named(value: str, match: str) -> None:
    with pytest.raises(LocationError, match=match):
        location(value, what="reference")


def test_http_is_read_only() -> None:
    with pytest.raises(LocationError, match="is read-only"):
        location("https://example.org/x.zarr", writable=True, what="output")


def test_join() -> None:
    assert join(location("s3://b/root/"), "a", "b.png").url == "s3://b/root/a/b.png"
    assert join(location("/data"), "a").path == str(Path("/data", "a"))


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # import gcsfs now raises ImportError
    with pytest.raises(
        MissingExtraError, match=r"gcsfs package: pip install 'ssim-pipeline\[cloud\]'"
    ):
        filesystem(location("gs://bucket/x"))


def test_redact_removes_user_info_signed_queries_and_known_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    text = (
        f"https://user:pw@host/x?X-Amz-Signature=abc&X-Amz-Credential=def and {SECRET_KEY} "
        "and hunter2hunter2"
    )
    shown = redact(text, {"client_kwargs": {"aws_session_token": "hunter2hunter2"}})
    for secret in ("user:pw", "abc", "def", SECRET_KEY, "hunter2hunter2"):
        assert secret not in shown
    assert "https://***@host/x?X-Amz-Signature=***" in shown


def test_redact_options_hides_secret_values_keeps_the_rest() -> None:
    options = {"key": "AKIA", "secret": SECRET_KEY, "anon": False, "client_kwargs": {"token": "t"}}
    shown = redact_options(options)
    assert shown == {
        "key": "***",
        "secret": "***",
        "anon": False,
        "client_kwargs": {"token": "***"},
    }
    assert options["secret"] == SECRET_KEY  # a copy: the options themselves are unchanged


def test_check_exists_names_bucket_and_path(s3_bucket: str) -> None:
    with pytest.raises(FileNotFoundError, match="reference: bucket 'no-such-bucket-1' of s3://no"):
        check_exists(location("s3://no-such-bucket-1/x.zarr"), what="reference")
    with pytest.raises(
        FileNotFoundError, match=f"reference: no object or prefix at s3://{s3_bucket}/x"
    ):
        check_exists(location(f"s3://{s3_bucket}/x"), what="reference")
    check_exists(location(f"s3://{s3_bucket}"), what="reference")  # the bucket itself is there


def test_zarr_store_round_trip_and_pickles(s3_bucket: str) -> None:
    where = location(f"s3://{s3_bucket}/stack.zarr")
    data = np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8)
    written = zarr.create_array(
        zarr_store(where, read_only=False), shape=data.shape, chunks=(1, 4, 4), dtype=data.dtype
    )
    written[:] = data
    array = zarr.open_array(zarr_store(where, read_only=True), mode="r")
    # What Dask ships to a distributed worker: the array with its store and filesystem.
    copy = pickle.loads(pickle.dumps(array))
    np.testing.assert_array_equal(copy[:], data)
    with pytest.raises(LocationError, match="read-only"):
        zarr_store(location("https://example.org/x.zarr"), read_only=False)


def test_a_store_forgotten_by_fsspec_leaves_no_connection_open(s3_bucket: str) -> None:
    # Zarr's stores hold asynchronous filesystems, whose aiohttp sessions fsspec does not
    # close: once the filesystem is dropped, an open session warns at garbage collection.
    import gc
    import warnings

    import s3fs

    where = location(f"s3://{s3_bucket}/stack.zarr")
    written = zarr.create_array(
        zarr_store(where, read_only=False), shape=(4, 4), chunks=(2, 2), dtype="uint8"
    )
    written[:] = 7
    read = zarr.open_array(zarr_store(where, read_only=True), mode="r")
    assert int(read[:].sum()) == 7 * 16
    del written, read
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s3fs.S3FileSystem.clear_instance_cache()
        gc.collect()
    unclosed = [str(w.message) for w in caught if "Unclosed" in str(w.message)]
    assert unclosed == []
