"""Real faults for the fault tests: the PostgreSQL server stopped and restarted, a local S3
that keeps the test broker's log across its restarts, and the daemon's health endpoints."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from driftwarden.monitor.commands.local_broker import free_port
from support.kafka import wait_for


def _cluster() -> list[str]:
    version = sorted(path.name for path in Path("/etc/postgresql").iterdir())[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def _postgres_ready() -> bool:
    probe = ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]
    return subprocess.run(probe, check=False).returncode == 0


def postgres(action: str) -> None:
    """``stop``, ``start`` or ``restart`` the local PostgreSQL server (and wait for it)."""
    subprocess.run([*_cluster(), action], check=True, capture_output=True)
    if action != "stop":
        wait_for(_postgres_ready, 60, "PostgreSQL to accept connections")


@contextlib.contextmanager
def postgres_down() -> Iterator[None]:
    """The server stopped for the block, started again after it whatever happens."""
    postgres("stop")
    try:
        yield
    finally:
        postgres("start")


@contextlib.contextmanager
def local_s3() -> Iterator[dict[str, str]]:
    """``moto``'s S3 server on 127.0.0.1 with a ``tansu`` bucket; yields the environment the
    broker needs to keep its log there (``s3://tansu/``)."""
    import boto3

    port = free_port()
    server = subprocess.Popen(
        [shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    environment = {
        "AWS_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ALLOW_HTTP": "true",
    }
    try:
        wait_for(lambda: _answers(endpoint), 30, "the local S3 server")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="eu-west-1",
        )
        client.create_bucket(
            Bucket="tansu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield environment
    finally:
        server.terminate()
        server.wait(10)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


def health_url(config: Path) -> str:
    """The base URL of the daemon a configuration file describes."""
    http = yaml.safe_load(config.read_text())["http"]
    return f"http://127.0.0.1:{http['port']}"


def status(url: str, path: str) -> int | None:
    """The status ``path`` answers with, or ``None`` when nothing answers."""
    try:
        return httpx.get(f"{url}{path}", timeout=2).status_code
    except httpx.HTTPError:
        return None


def watch_ready(url: str, seen: list[int | None], stop: list[bool], every: float = 0.1) -> None:
    """Record every change of ``/readyz`` until ``stop[0]`` (run it on a thread)."""
    while not stop[0]:
        answer = status(url, "/readyz")
        if not seen or seen[-1] != answer:
            seen.append(answer)
        time.sleep(every)
