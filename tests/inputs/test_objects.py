"""Image objects in an object store: listing, concurrent fetches, failures per object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from s3_server import upload

from pipeline.inputs.files import ImageDecodeError
from pipeline.inputs.objects import fetch_heads, fetch_objects, list_objects
from pipeline.storage.locations import location


def test_listing_fetching_and_a_missing_object(s3_bucket: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.png").write_bytes(b"first")
    (tmp_path / "sub" / "b.png").write_bytes(b"second object")
    upload(tmp_path, f"s3://{s3_bucket}/folder")
    entries = list_objects(location(f"s3://{s3_bucket}/folder"), None)
    assert [(e.relative, e.stamp.size) for e in entries] == [("a.png", 5), ("sub/b.png", 13)]
    assert all(e.stamp.mtime_ns > 0 for e in entries)
    urls = [f"s3://{s3_bucket}/folder/a.png", f"s3://{s3_bucket}/gone.png"]
    found = fetch_objects([urls[0], f"s3://{s3_bucket}/folder/sub/b.png", urls[1]], None)
    assert found[:2] == [b"first", b"second object"]
    failure = found[2]
    assert isinstance(failure, ImageDecodeError) and failure.transient
    assert str(failure).startswith(f"s3://{s3_bucket}/gone.png: object not found")
    heads = fetch_heads(urls[:1], None, size=3)
    assert heads == [b"fir"]


def test_header_beyond_the_first_bytes_is_fetched_whole(s3_bucket: str, tmp_path: Path) -> None:
    from pipeline.inputs.images import inspect_objects
    from pipeline.inputs.objects import HEAD_BYTES

    # A JPEG whose ICC profile (APP2 markers before the frame header) is larger than
    # HEAD_BYTES: its size is only known past the bytes fetched for headers.
    image = Image.fromarray(np.zeros((8, 12, 3), np.uint8))
    path = tmp_path / "big_exif.jpg"
    image.save(path, icc_profile=b"x" * (2 * HEAD_BYTES))
    url = f"s3://{s3_bucket}/big_exif.jpg"
    upload(path, url)
    stamp = list_objects(location(f"s3://{s3_bucket}"), None)[0].stamp
    (header,) = inspect_objects([url], [stamp])
    assert not isinstance(header, ImageDecodeError), header
    assert header.shape == (8, 12, 3)


def test_fetch_failure_of_the_whole_call_fails_every_object() -> None:
    pytest.importorskip("s3fs")
    found = fetch_objects(["s3://bucket/a.png"], {"endpoint_url": "http://127.0.0.1:9"})
    assert isinstance(found[0], ImageDecodeError) and found[0].transient
    assert "s3://bucket/a.png: " in str(found[0])
