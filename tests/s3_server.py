"""A real S3-compatible server for the tests: moto's standalone server on the loopback interface.

:class:`S3Server` starts ``python -m moto.server`` as a child process on a free
port of 127.0.0.1 and waits until it answers; :meth:`S3Server.environment` gives the
standard ``AWS_*`` variables (any key and secret are accepted; ``AWS_ENDPOINT_URL``
points every S3 client at the server). Each test gets a bucket of its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

# Fake credentials: moto accepts any. The secret is long and odd, so that a test can
# search every output for it.
ACCESS_KEY = "AKIATESTSSIMPIPELINE"
SECRET_KEY = "s3cr3t-Do-Not-Print-7f3a9c1e5b"
REGION = "us-east-1"
_START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Server:
    """One moto server process (stopped by :meth:`stop`).

    ``authenticate=True`` makes the server check every request's access key (moto's
    ``INITIAL_NO_AUTH_ACTION_COUNT=0``): no key is known to it, so each request is
    refused as a wrong key would be.
    """

    def __init__(self, *, authenticate: bool = False) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        environment = dict(os.environ)
        if authenticate:
            environment["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("moto server did not answer within 60 s") from None
                time.sleep(0.1)

    def environment(self) -> dict[str, str]:
        """The standard variables that point S3 clients (boto, s3fs, obstore) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # obstore (object_store) refuses plain HTTP unless told.
            "AWS_ALLOW_HTTP": "true",
        }

    def client(self):  # type: ignore[no-untyped-def]
        """A boto3 S3 client for setting up buckets and objects."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self) -> str:
        name = f"ssim-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The session's S3 server (skipped only where moto[server] is not installed)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed (the test extra)")
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket; the ``AWS_*`` environment points at the server for this test."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    _forget_filesystems()
    yield s3_server.new_bucket()
    _forget_filesystems()


def _forget_filesystems() -> None:
    # fsspec caches filesystem instances (and their listings) per options: a cached one
    # would keep the previous test's credentials or endpoint.
    with contextlib.suppress(ImportError):
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


def upload(local: os.PathLike[str] | str, url: str) -> None:
    """Copy a local file, or a folder recursively, to ``url`` (the test's bucket)."""
    from pipeline.storage.locations import filesystem, location

    where = location(url)
    fs = filesystem(where)
    if os.path.isdir(local):
        fs.put(str(local), where.path, recursive=True)
    else:
        fs.put_file(str(local), where.path)
    fs.invalidate_cache()
