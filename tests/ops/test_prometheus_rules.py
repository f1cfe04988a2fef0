"""The Prometheus configuration, recording and alerting rules, checked by promtool."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from support.ops import PROMETHEUS

RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.test.yml"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)


def test_rules_are_valid(promtool: str) -> None:
    done = _run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("tests", RULE_TESTS, ids=lambda path: path.name)
def test_rule_unit_tests_pass(promtool: str, tests) -> None:
    done = _run(promtool, "test", "rules", str(tests))
    assert done.returncode == 0, done.stdout + done.stderr


def test_scrape_configuration_is_valid(promtool: str) -> None:
    done = _run(promtool, "check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alerting_rule_has_a_unit_test() -> None:
    alerts = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts, "no alerting rules found"
    assert alerts <= tested, (
        f"alerting rules never seen firing in a test: {sorted(alerts - tested)}"
    )
    required = {
        "DriftwardenDown",  # stale daemon: not scraped
        "DriftwardenStalled",  # stale daemon: up, but not reading
        "DriftwardenConsumerLagGrowing",
        "DriftwardenDeadLettersRising",
        "DriftwardenFeatureDrift",
        "DriftwardenPerformanceDrop",
    }
    assert required <= alerts


def test_every_recording_rule_has_a_unit_test() -> None:
    recorded = {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    tested = {
        case["expr"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("promql_expr_test", [])
    }
    assert recorded <= tested, f"recording rules without a test: {sorted(recorded - tested)}"
