"""Fixtures of the operations tests: the repository's ops files and the tools that check them.

``promtool``, ``prometheus`` and ``docker-compose`` come from Debian's packages (``.ci/run``
installs them). Where one is missing the test is skipped with the reason, unless
``DRIFTWARDEN_REQUIRE_OPS_TOOLS=1`` (set by ``.ci/run``) turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
PROMETHEUS = ROOT / "prometheus"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def tool(name: str, package: str) -> str:
    """The path of an executable, or skip (fail under DRIFTWARDEN_REQUIRE_OPS_TOOLS=1)."""
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed (apt-get install -y --no-install-recommends {package})"
    if os.environ.get("DRIFTWARDEN_REQUIRE_OPS_TOOLS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return tool("prometheus", "prometheus")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return tool("docker-compose", "docker-compose")


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARDS}
