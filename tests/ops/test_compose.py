"""docker-compose.yml, the Dockerfile and the compose stack's daemon configuration.

No Docker engine runs here: Debian's ``docker-compose`` validates the file offline, and
the Dockerfile is checked for what the issue asks (slim, non-root, health check on /livez).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from support.ops import ROOT

from driftwarden.alerts import AlertsConfig
from driftwarden.monitor import config as configuration
from driftwarden.monitor.service.api import HttpSecurity

SECRETS = {
    "POSTGRES_PASSWORD": "compose-test-password",
    "DRIFTWARDEN_TOKEN": "compose-test-token-0123456789abcdef",
    "GRAFANA_ADMIN_PASSWORD": "compose-test-admin",
    "GRAFANA_DB_PASSWORD": "compose-test-reader",
}


def _compose(docker_compose: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [docker_compose, "-f", str(ROOT / "docker-compose.yml"), *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "demo"]], ids=["default", "demo"])
def test_compose_file_is_valid(docker_compose: str, profile: list[str]) -> None:
    done = _compose(docker_compose, *profile, "config", "-q", env=SECRETS)
    assert done.returncode == 0, done.stderr


def test_compose_services_and_profiles(docker_compose: str) -> None:
    done = _compose(docker_compose, "--profile", "demo", "config", env=SECRETS)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"kafka", "postgres", "driftwarden", "prometheus", "grafana", "demo-producer"} <= set(
        services
    )
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["demo-producer"]["profiles"] == ["demo"]
    daemon = services["driftwarden"]
    assert daemon["build"]["context"] == str(ROOT)
    for name in ("prometheus", "grafana"):
        mounts = " ".join(str(v) for v in services[name]["volumes"])
        assert ("provisioning" in mounts) if name == "grafana" else ("prometheus" in mounts)
    for service in services.values():  # published only on loopback
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip')}:"
            assert published.startswith("127.0.0.1:"), port


@pytest.mark.slow
def test_compose_needs_its_secrets_from_the_environment(docker_compose: str) -> None:
    for missing in SECRETS:
        env = {k: v for k, v in SECRETS.items() if k != missing}
        done = _compose(docker_compose, "config", "-q", env=env)
        assert done.returncode != 0 and missing in done.stderr, missing
    text = (ROOT / "docker-compose.yml").read_text()
    for value in SECRETS.values():
        assert value not in text


def test_dockerfile_is_slim_non_root_and_health_checked() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert all("slim" in image for image in stages), stages
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    healthcheck = re.search(r"^HEALTHCHECK\b.*?(?<!\\)$", text, re.M | re.S)
    assert healthcheck and "/livez" in text
    assert re.search(r"^ENTRYPOINT \[\"driftwarden\"\]", text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", ".env"} <= set(ignored)


def test_compose_daemon_configuration_is_valid() -> None:
    path = ROOT / "deploy" / "driftwarden.yaml"
    loaded = configuration.load(path, environ=SECRETS)
    assert loaded.storage.url.startswith("postgresql+psycopg://")
    assert SECRETS["POSTGRES_PASSWORD"] in loaded.storage.url
    assert SECRETS["POSTGRES_PASSWORD"] not in path.read_text()
    assert loaded.http.host == "0.0.0.0" and loaded.http.token_env == "DRIFTWARDEN_TOKEN"
    assert HttpSecurity.from_config(loaded.http, SECRETS).api_token == SECRETS["DRIFTWARDEN_TOKEN"]
    AlertsConfig.model_validate(loaded.alerts)


def test_demo_stream_writes_the_reference(tmp_path) -> None:
    target = tmp_path / "reference" / "credit-default.parquet"
    script = ROOT / "deploy" / "demo_stream.py"
    for _ in range(2):  # the second run keeps the file
        done = subprocess.run(
            [sys.executable, str(script), "reference", str(target)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    import polars as pl

    assert pl.read_parquet(target).height == 50_000
