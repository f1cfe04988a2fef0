"""docker-compose.yml, .env.example, the Dockerfile, LICENSE and the compose stack's daemon
configuration.

No Docker engine runs here: Debian's ``docker-compose`` validates the file offline, and
the Dockerfile is checked for what the issue asks (slim, non-root, health check on /livez,
base image pinned by digest).
"""

from __future__ import annotations

import hashlib
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
    assert {"alertmanager", "alert-sink", "grafana-grants"} <= set(services)
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


DIGEST = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


def test_compose_images_are_pinned_by_digest(docker_compose: str) -> None:
    """Every image pulled (not the one built here) names its tag and its digest."""
    done = _compose(docker_compose, "--profile", "demo", "config", env=SECRETS)
    services = yaml.safe_load(done.stdout)["services"]
    pulled = {name: s["image"] for name, s in services.items() if "build" not in s}
    assert {"kafka", "postgres", "prometheus", "alertmanager", "grafana"} <= set(pulled)
    for name, image in pulled.items():
        assert DIGEST.match(image), f"{name}: {image} is not pinned by digest"
    assert services["grafana-grants"]["image"] == services["postgres"]["image"]


def test_prometheus_alertmanager_and_grafana_are_health_checked(docker_compose: str) -> None:
    done = _compose(docker_compose, "config", env=SECRETS)
    services = yaml.safe_load(done.stdout)["services"]
    for name, endpoint in (
        ("prometheus", "http://127.0.0.1:9090/-/ready"),
        ("alertmanager", "http://127.0.0.1:9093/-/ready"),
        ("grafana", "http://127.0.0.1:3000/api/health"),
    ):
        check = services[name]["healthcheck"]
        assert endpoint in " ".join(check["test"]), name
        assert check["retries"] >= 3, name
    waits = services["grafana"]["depends_on"]
    assert waits["prometheus"]["condition"] == "service_healthy"
    assert waits["grafana-grants"]["condition"] == "service_completed_successfully"
    assert services["grafana-grants"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_env_example_lists_every_variable_compose_needs_with_a_comment() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    needed = set(re.findall(r"\$\{(\w+)(?::?[-?][^}]*)?\}", compose))
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed = {}
    for number, line in enumerate(lines):
        match = re.match(r"^(\w+)=(.*)$", line)
        if match:
            listed[match.group(1)] = match.group(2)
            assert lines[number - 1].startswith("#"), f"{match.group(1)} has no comment"
    assert set(listed) == needed == set(SECRETS)
    assert all(value == "" for value in listed.values()), "no secret belongs in the example"


def test_compose_starts_with_the_example_filled_in(docker_compose: str, tmp_path) -> None:
    """.env.example, each value filled with what its comment says to run, is all compose
    needs (compose reads a project's .env; here it is given with --env-file)."""
    commands = {}
    lines = (ROOT / ".env.example").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\w+=$", line):
            command = lines[number - 1].removeprefix("# ")
            assert command.startswith("openssl rand -hex "), line
            commands[line[:-1]] = subprocess.run(
                command.split(), capture_output=True, text=True, check=True
            ).stdout.strip()
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in commands.items()))
    done = _compose(docker_compose, "--env-file", str(env_file), "config", "-q", env={})
    assert done.returncode == 0, done.stderr


def test_license_is_the_apache_2_text_pyproject_names() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"$', pyproject, re.M)
    text = (ROOT / "LICENSE").read_bytes()
    # the SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt, byte for byte
    assert hashlib.sha256(text).hexdigest() == (
        "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
    )
    assert b"Apache License\n                           Version 2.0, January 2004" in text


def _stages(text: str) -> list[str]:
    """The base image of each stage, build arguments' defaults substituted."""
    defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    return [
        re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
        for image in re.findall(r"^FROM\s+(\S+)", text, re.M)
    ]


def test_dockerfile_is_slim_non_root_and_health_checked() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = _stages(text)
    assert len(stages) == 2 and all("slim" in image for image in stages), stages
    assert all(DIGEST.match(image) for image in stages), stages
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
