"""Paths of the repository's operations files, and the tools that check them."""

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


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARDS}
