"""Paths of the repository's operations files, and the tools that check them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
PROMETHEUS = ROOT / "prometheus"
ALERTMANAGER_CONFIG = PROMETHEUS / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"
GRAFANA_GRANTS = ROOT / "deploy" / "grafana-reader.sql"
GRAFANA_ROLE_SCRIPT = ROOT / "deploy" / "postgres" / "10-grafana-reader.sh"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "docker-compose": "docker-compose",
    "psql": "postgresql-client",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}
"""The Debian package of each tool the operations tests run (``.ci/run`` installs them)."""


def tool(name: str, package: str | None = None) -> str:
    """The path of an executable, or skip (fail under DRIFTWARDEN_REQUIRE_OPS_TOOLS=1)."""
    package = package or PACKAGES[name]
    found = shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed (apt-get install -y --no-install-recommends {package})"
    if os.environ.get("DRIFTWARDEN_REQUIRE_OPS_TOOLS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARDS}


class PrometheusServer:
    """Debian's Prometheus on 127.0.0.1, scraping ``targets`` (job ``driftwarden``) every
    second with the repository's rules; a context manager."""

    def __init__(self, binary: str, targets: list[str], directory: Path) -> None:
        self.binary = binary
        self.targets = targets
        self.directory = directory
        self.url = ""
        self.started = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrometheusServer:
        from support.kafka import free_port, wait_for

        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in sorted((PROMETHEUS / "rules").glob("*.yml"))],
            "scrape_configs": [
                {"job_name": "driftwarden", "static_configs": [{"targets": self.targets}]}
            ],
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self._log = (self.directory / "prometheus.log").open("ab")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=self._log,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.started = time.time()
        wait_for(self._ready, 30, "Prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError((self.directory / "prometheus.log").read_text())
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, endpoint: str, **params: str) -> Any:
        """The ``data`` of ``/api/v1/<endpoint>``."""
        response = httpx.get(f"{self.url}/api/v1/{endpoint}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now."""
        return self.api("query", query=expr)["result"]

    def firing(self, name: str) -> list[dict[str, str]]:
        """The labels of each firing alert called ``name``."""
        alerts = self.api("alerts")["alerts"]
        return [
            a["labels"]
            for a in alerts
            if a["labels"]["alertname"] == name and a["state"] == "firing"
        ]

    def __exit__(self, *_: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._log.close()
