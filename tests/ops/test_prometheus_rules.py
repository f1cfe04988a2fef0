"""The Prometheus configuration, recording and alerting rules, checked by promtool; every
alerting rule links a runbook page that exists."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from support.ops import PROMETHEUS, RUNBOOKS

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


RUNBOOK_URL = "{{ $externalLabels.docs_url }}/runbooks/%s/"
RUNBOOK_SECTIONS = ("## What it means", "## First checks", "## Likely causes", "## Resolve")


def _alerting_rules() -> dict[str, dict]:
    return {
        rule["alert"]: rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_every_alerting_rule_links_a_runbook_page_that_exists() -> None:
    """``runbook_url`` is ``{docs_url}/runbooks/<AlertName>/``: the page built from
    docs/runbooks/<AlertName>.md, under the external label docs_url of prometheus.yml."""
    rules = _alerting_rules()
    assert rules
    for name, rule in rules.items():
        url = rule["annotations"].get("runbook_url")
        assert url == RUNBOOK_URL % name, f"{name}: runbook_url {url!r}"
        page = RUNBOOKS / f"{name}.md"
        assert page.is_file(), f"{name}: no runbook {page}"
        text = page.read_text()
        assert text.startswith(f"# {name}\n"), page
        for section in RUNBOOK_SECTIONS:
            assert f"\n{section}\n" in text, f"{page.name}: no section {section!r}"
        assert "```" in text, f"{page.name}: no command or query to run"
    pages = {path.stem for path in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == set(rules), f"runbooks without a rule: {sorted(pages - set(rules))}"
    index = (RUNBOOKS / "README.md").read_text()
    assert all(f"[{name}.md]({name}.md)" in index for name in rules)


def test_prometheus_sets_the_docs_url_the_runbook_links_use() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    docs_url = config["global"]["external_labels"]["docs_url"]
    assert docs_url.startswith("https://") and not docs_url.endswith("/")


def test_the_rule_tests_render_the_runbook_links() -> None:
    """The unit tests expect each firing alert's rendered runbook_url (so promtool checks
    the template), under an external docs_url of their own."""
    alert_tests = PROMETHEUS / "tests" / "driftwarden-alerts.test.yml"
    for test in yaml.safe_load(alert_tests.read_text())["tests"]:
        docs_url = test["external_labels"]["docs_url"]
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                expected = f"{docs_url}/runbooks/{case['alertname']}/"
                assert alert["exp_annotations"]["runbook_url"] == expected


EVIDENCE_URL = (
    '{{ with query "max by (url) (driftwarden_pages_info{url=~\\"https?://.+\\"})" }}'
    "{{ with first . }}{{ .Labels.url }}/ui/models/"
    '{{ reReplaceAll "[+]" "%20" ($labels.model | urlquery) }}{{ end }}{{ end }}'
)


WINDOW_URL = (
    '{{ with query "max by (url) (driftwarden_pages_info{url=~\\"https?://.+\\"})" }}'
    "{{ with first . }}{{ .Labels.url }}/ui/models/"
    '{{ reReplaceAll "[+]" "%20" ($labels.model | urlquery) }}/windows?until='
    '{{ with query (printf "max(driftwarden_window_end_timestamp_seconds{model=%q})" '
    '$labels.model) }}{{ with first . }}{{ printf "%.3f" .Value }}{{ end }}{{ end }}'
    "{{ end }}{{ end }}"
)
PER_WINDOW = {"DriftwardenFeatureDrift", "DriftwardenPredictionDrift"}
PER_WINDOW |= {"DriftwardenMultivariateDrift", "DriftwardenDriftImpact"}


def test_every_rule_about_one_model_links_its_evidence_page() -> None:
    """``evidence_url`` is the model's page at the address the daemon exports as
    ``driftwarden_pages_info{url}`` (``http.external_url``); the unit tests expect it
    rendered, percent-encoded, and empty without an address."""
    rules = _alerting_rules()
    per_model = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        if group["name"] == "driftwarden.models"
        for rule in group["rules"]
    }
    assert "DriftwardenFeatureDrift" in per_model and "DriftwardenPerformanceDrop" in per_model
    for name, rule in rules.items():
        assert rule["annotations"].get("evidence_url") == (
            EVIDENCE_URL if name in per_model else None
        ), name
        assert rule["annotations"].get("window_url") == (
            WINDOW_URL if name in PER_WINDOW else None
        ), name
    alert_tests = PROMETHEUS / "tests" / "driftwarden-alerts.test.yml"
    rendered = {
        alert["exp_annotations"].get("evidence_url")
        for test in yaml.safe_load(alert_tests.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] in per_model
        for alert in case.get("exp_alerts") or []
    }
    assert "" in rendered  # no address exported: no link
    assert "https://dw.example.test/ui/models/pricing%20v2%2Beu" in rendered
    windows = {
        alert["exp_annotations"]["window_url"]
        for test in yaml.safe_load(alert_tests.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] in PER_WINDOW
        for alert in case.get("exp_alerts") or []
    }
    assert "https://dw.example.test/ui/models/pricing%20v2%2Beu/windows?until=1795082400.500" in (
        windows
    )
