"""The Grafana provisioning and dashboards, checked without Grafana: uids, schema, datasources,
variables, that every query names only metrics and labels the daemon exports, that SQL uses
Grafana's escaping formats, and that every data link leads to a dashboard and variables that
exist (``test_dashboards_live.py`` follows each link with real values)."""

from __future__ import annotations

import re

import pytest
import yaml
from support.dashboards import (
    POSTGRES_UID,
    PROMETHEUS_UID,
    formats_used,
    links,
    panels,
    queries,
    variables_used,
)
from support.ops import GRAFANA, load_dashboards

from driftwarden.monitor.config import TimeWindowConfig

SCHEMA_VERSION = 41  # Grafana 12's classic dashboard model
UIDS = {"fleet": "driftwarden-fleet", "model": "driftwarden-model", "daemon": "driftwarden-daemon"}

# The metric labels docs/metrics.md allows, plus what Prometheus adds or histograms carry.
LABELS = {"model", "detector", "feature", "metric", "kind", "attribute", "topic", "partition"}
LABELS |= {"reason", "channel", "outcome", "severity", "state", "rule", "direction"}
LABELS |= {"version", "python_version"}  # driftwarden_build_info
LABELS |= {"url"}  # driftwarden_pages_info
LABELS |= {"model_version", "stat"}  # driftwarden_version_*
LABELS |= {"segment"}  # driftwarden_segment_*
LABELS |= {"le", "job", "instance", "__name__"}
LABELS |= {"against"}  # driftwarden_business_correlation

COUNTERS = {
    "driftwarden_events",
    "driftwarden_events_ignored",
    "driftwarden_dead_letters",
    "driftwarden_windows_closed",
    "driftwarden_labels_joined",
    "driftwarden_predictions_expired",
    "driftwarden_orphan_labels",
    "driftwarden_concept_drift_detections",
    "driftwarden_notifications",
    "driftwarden_pruned_rows",
    "driftwarden_duplicates",
}
GAUGES = {
    "driftwarden_detector_value",
    "driftwarden_detector_threshold",
    "driftwarden_detector_drift",
    "driftwarden_data_quality_ratio",
    "driftwarden_window_end_timestamp_seconds",
    "driftwarden_consumer_lag_messages",
    "driftwarden_unconfigured_features",
    "driftwarden_ready",
    "driftwarden_performance",
    "driftwarden_label_coverage_ratio",
    "driftwarden_pending_predictions",
    "driftwarden_fairness",
    "driftwarden_alerts",
    "driftwarden_outbox_pending",
    "driftwarden_outbox_oldest_pending_seconds",
    "driftwarden_retention_last_success_timestamp_seconds",
    "driftwarden_build_info",
    "driftwarden_reconstruction_error",
    "driftwarden_reconstruction_error_threshold",
    "driftwarden_multivariate_drift",
    "driftwarden_pages_info",
    "driftwarden_version_performance",
    "driftwarden_version_drifted_features",
    "driftwarden_version_comparison",
    "driftwarden_version_comparison_worse",
    "driftwarden_version_agreement",
    "driftwarden_version_unpaired_predictions",
    "driftwarden_version_prediction_distance",
    "driftwarden_version_prediction_distance_drift",
    "driftwarden_feature_importance",
    "driftwarden_feature_importance_drift",
    "driftwarden_drift_impact",
    "driftwarden_drift_impact_threshold",
    "driftwarden_drift_impact_contribution",
    "driftwarden_error_concentration",
    "driftwarden_segment_drifted_features",
    "driftwarden_segment_window_events",
    "driftwarden_segment_estimated_performance",
    "driftwarden_segment_performance",
    "driftwarden_business_metric",
    "driftwarden_business_correlation",
}
HISTOGRAMS = {
    "driftwarden_window_close_duration_seconds",
    "driftwarden_checkpoint_duration_seconds",
    "driftwarden_label_delay_seconds",
    "driftwarden_notification_delivery_seconds",
}
KNOWN = GAUGES | {f"{name}_total" for name in COUNTERS}
KNOWN |= {f"{name}_{suffix}" for name in HISTOGRAMS for suffix in ("bucket", "sum", "count")}
KNOWN |= {"up", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"}

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_KEYWORDS |= {"unless", "offset", "bool", "inf", "nan"}
TOKEN = re.compile(r"(?<![\w.$])[a-zA-Z_:][\w:]*")
MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def _recorded() -> set[str]:
    return {
        rule["record"]
        for path in (GRAFANA.parent / "prometheus" / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


@pytest.fixture(scope="module")
def boards():
    return load_dashboards()


def test_dashboards_have_stable_uids_and_the_current_schema(boards) -> None:
    assert {name: board["uid"] for name, board in boards.items()} == UIDS
    for board in boards.values():
        assert board["schemaVersion"] == SCHEMA_VERSION
        assert board["id"] is None, "exported ids break provisioning on another Grafana"
        assert "driftwarden" in board["tags"]
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), f"{board['title']}: panel ids repeat"


def test_provisioning_names_the_uids_the_dashboards_use(boards) -> None:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/driftwarden.yml").read_text())
    provisioned = {source["uid"]: source["type"] for source in sources["datasources"]}
    assert provisioned == {
        PROMETHEUS_UID: "prometheus",
        POSTGRES_UID: "grafana-postgresql-datasource",
    }
    for query in queries():
        assert query.datasource in {"prometheus", "postgres"}, query.id
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/driftwarden.yml").read_text())
    assert [p["type"] for p in providers["providers"]] == ["file"]


def test_template_variables_come_from_label_values(boards) -> None:
    names = {
        board["uid"]: {v["name"] for v in board["templating"]["list"]} for board in boards.values()
    }
    assert {"model", "feature", "attribute", "detector"} <= names["driftwarden-model"]
    for board in boards.values():
        for variable in board["templating"]["list"]:
            assert variable["definition"].startswith("label_values("), variable["name"]
            assert variable["datasource"]["uid"] == PROMETHEUS_UID


def test_every_variable_used_is_defined(boards) -> None:
    builtin = {"__rate_interval", "__interval", "__range", "__unixEpochFrom", "__unixEpochTo"}
    defined = {
        board["title"]: {v["name"] for v in board["templating"]["list"]} | builtin
        for board in boards.values()
    }
    for query in queries():
        used = variables_used(query.text)
        assert used <= defined[query.dashboard], (
            f"{query.id}: undefined {used - defined[query.dashboard]}"
        )
    for board in boards.values():
        for panel in panels(board):
            repeat = panel.get("repeat")
            assert repeat is None or repeat in defined[board["title"]]


@pytest.mark.parametrize(
    "query", [q for q in queries() if q.datasource == "prometheus"], ids=lambda q: q.id
)
def test_queries_use_only_exported_metrics_and_labels(query) -> None:
    labels = set(MATCHER_LABEL.findall(query.text))
    for group in GROUPING.findall(query.text):
        labels |= {name.strip() for name in group.split(",") if name.strip()}
    if query.ref == "variable":
        labels.add(query.text.rstrip(") ").rsplit(",", 1)[-1].strip())
    assert labels <= LABELS, f"{query.id}: labels outside docs/metrics.md: {labels - LABELS}"
    text = (
        query.text.replace("label_values(", "(").rsplit(",", 1)[0]
        if query.ref == "variable"
        else query.text
    )
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", text)
    names = {
        name
        for name in TOKEN.findall(text)
        if name.lower() not in PROMQL_KEYWORDS and not _is_function(text, name)
    }
    unknown = names - KNOWN - _recorded()
    assert not unknown, f"{query.id}: unknown metrics {unknown} in {query.text}"


def _is_function(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\s*\(", text) is not None


def test_the_panels_the_issue_asks_for_exist(boards) -> None:
    text = {name: str(board) for name, board in boards.items()}
    fleet, model, daemon = text["fleet"], text["model"], text["daemon"]
    for needle in ("Models monitored", "Features drifting", "Alerts firing by severity"):
        assert needle in fleet
    for metric in ("events", "consumer_lag", "dead_letters"):
        assert metric in fleet
    model_board = boards["model"]
    kinds = {panel["type"] for panel in panels(model_board)}
    assert "state-timeline" in kinds or "heatmap" in kinds
    assert any(p.get("repeat") == "detector" for p in panels(model_board))
    annotations = [a for a in model_board["annotations"]["list"] if not a.get("builtIn")]
    assert any("driftwarden_concept_drift_detections_total" in a["expr"] for a in annotations)
    for metric in (
        'feature="prediction"',
        "driftwarden_performance",
        "driftwarden_label_coverage_ratio",
        "driftwarden_fairness",
        "driftwarden_data_quality_ratio",
        "FROM results",
        "driftwarden_version_comparison",
        "champion_version AS champion",
        "driftwarden_feature_importance{",
        "driftwarden_drift_impact{",
        "driftwarden_segment_drifted_features{",
        "driftwarden_segment_estimated_performance{",
        "driftwarden_segment_performance{",
    ):
        assert metric in model, metric
    variables = {v["name"] for v in model_board["templating"]["list"]}
    assert {"model_version", "segment"} <= variables
    segment_panels = [p for p in panels(model_board) if "segment_" in str(p.get("targets"))]
    assert segment_panels and all(p["id"] >= 300 for p in segment_panels)
    for metric in (
        "driftwarden_events_total",
        "driftwarden_window_close_duration_seconds_bucket",
        "driftwarden_consumer_lag_messages",
        "driftwarden_labels_joined_total",
        "driftwarden_pending_predictions",
        "driftwarden_outbox_pending",
        'outcome!=\\"sent\\"',
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "driftwarden_pruned_rows_total",
    ):
        assert metric.replace("\\", "") in daemon.replace("\\", ""), metric


def test_sql_uses_grafanas_escaping_formats() -> None:
    """A model name is quoted by Grafana (``${model:sqlstring}`` doubles its quotes), never
    pasted between quotes by hand (``'$model'``)."""
    sql = [q for q in queries() if q.datasource == "postgres"]
    assert sql
    for query in sql:
        assert not re.search(r"'\$\{?\w", query.text), f"{query.id}: a variable between quotes"
        for name, form in formats_used(query.text):
            if not name.startswith("__"):  # $__unixEpochFrom() and friends are macros
                assert form == "sqlstring", f"{query.id}: ${name} without :sqlstring"


def test_data_links_lead_to_dashboards_and_variables_that_exist(boards) -> None:
    by_uid = {board["uid"]: board for board in boards.values()}
    found = [link for link in links() if not link.url.startswith(PAGES)]
    assert found
    for link in found:
        assert link.target_uid in by_uid, f"{link.id}: no dashboard {link.target_uid}"
        target = by_uid[link.target_uid]
        variables = {v["name"]: v for v in target["templating"]["list"]}
        keys = [key for key, _ in link.parameters]
        assert len(keys) == len(set(keys)), f"{link.id}: a parameter twice"
        for key in keys:
            assert key in {"__url_time_range", "from", "to"} or key.startswith("var-"), key
            if key.startswith("var-"):
                assert key.removeprefix("var-") in variables, f"{link.id}: no variable {key}"
        assert "__url_time_range" in keys or {"from", "to"} <= set(keys), (
            f"{link.id}: the link drops the time range"
        )
        for name, variable in variables.items():  # what has no default must be set
            if not variable.get("includeAll") and variable.get("hide") != 2:
                assert f"var-{name}" in keys, f"{link.id}: leaves {name} unset"
        for field in re.findall(r"\$\{__data\.fields\.(\w+)", link.url):
            assert any(re.search(rf"\b{field}\b", q.text) for q in link.queries), (
                f"{link.id}: no query of the panel returns {field}"
            )


def test_the_fleet_leads_to_each_model_and_the_model_to_each_window() -> None:
    found = [link for link in links() if not link.url.startswith(PAGES)]
    model_values = {"${__field.labels.model}", "${__data.fields.model}"}
    fleet = {
        link.panel
        for link in found
        if link.dashboard == "driftwarden / Fleet"
        and link.target_uid == "driftwarden-model"
        and dict(link.parameters).get("var-model") in model_values
        and "__url_time_range" in dict(link.parameters)
    }
    assert {
        "Features drifting per model",
        "Features drifting over time",
        "Models: data age, last window and drift",
        "Latest performance by model",
    } <= fleet
    windows = [
        link
        for link in found
        if link.dashboard == "driftwarden / Model"
        and not link.url.startswith(PAGES)
        and dict(link.parameters).get("from")
    ]
    assert {link.panel for link in windows} == {"Windows", "Drift decisions of recent windows"}
    for link in windows:
        parameters = dict(link.parameters)
        assert parameters["from"] == "${__data.fields.window_start_ms.numeric}"
        assert parameters["to"] == "${__data.fields.window_end_ms.numeric}"
        assert parameters["var-model"] == "${model}"
    board = load_dashboards()["model"]
    table = next(p for p in panels(board) if p["title"] == "Windows")
    assert "/ui/" in table["description"] and "evidence page" in table["description"]


PAGES = "${pages}/ui/"


def test_the_model_dashboard_links_to_the_evidence_pages(boards) -> None:
    board = boards["model"]
    variable = next(v for v in board["templating"]["list"] if v["name"] == "pages")
    assert variable["definition"] == "label_values(driftwarden_pages_info, url)"
    assert variable["hide"] == 2 and variable["regex"] == "/^https?:.+/"
    model_page = "${pages}/ui/models/${model:percentencode}"
    assert any(link.get("url") == model_page for link in board["links"])
    window_page = f"{model_page}/windows/${{__data.fields.window_index}}"
    found = [
        link for link in links() if link.url.startswith(PAGES) and link.dashboard == board["title"]
    ]
    assert {link.panel for link in found} == {"Windows", "Drift decisions of recent windows"}
    for link in found:
        assert link.url == window_page and link.field == "window_index", link.id
        assert any(re.search(r"\bwindow_index\b", q.text) for q in link.queries), link.id


def test_the_fleet_dashboard_links_each_model_to_its_evidence_pages(boards) -> None:
    board = boards["fleet"]
    variable = next(v for v in board["templating"]["list"] if v["name"] == "pages")
    assert variable["definition"] == "label_values(driftwarden_pages_info, url)"
    assert variable["hide"] == 2 and variable["regex"] == "/^https?:.+/"
    assert any(link.get("url") == PAGES for link in board["links"])
    found = [
        link for link in links() if link.url.startswith(PAGES) and link.dashboard == board["title"]
    ]
    model_panels = {
        "Features drifting per model",
        "Features drifting over time",
        "Models: data age, last window and drift",
        "Latest performance by model",
    }
    assert {link.panel for link in found} == model_panels
    for link in found:
        if link.field is None:  # a series: the model is its label
            assert link.url == "${pages}/ui/models/${__field.labels.model:percentencode}", link.id
        else:  # a table row: the model is its column
            assert link.field == "model", link.id
            assert link.url == "${pages}/ui/models/${__data.fields.model:percentencode}", link.id
            assert any(re.search(r"\bmodel\b", q.text) for q in link.queries), link.id
    for panel in panels(board):
        if panel["title"] in model_panels:
            assert "evidence page" in panel["description"], panel["title"]


def test_data_age_turns_red_past_twice_the_default_window_size(boards) -> None:
    table = next(p for p in panels(boards["fleet"]) if p["id"] == 10)
    age = next(t for t in table["targets"] if "time() -" in t["expr"])
    assert "driftwarden_window_end_timestamp_seconds" in age["expr"]
    rename = table["transformations"][-1]["options"]["renameByName"]
    assert rename[f"Value #{age['refId']}"] == "data age"
    override = next(
        o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "data age"
    )
    properties = {prop["id"]: prop["value"] for prop in override["properties"]}
    assert properties["unit"] == "s"
    red = next(s["value"] for s in properties["thresholds"]["steps"] if s["color"] == "red")
    assert red == 2 * TimeWindowConfig().size.total_seconds()
    assert properties["custom.cellOptions"]["type"] == "color-background"


def test_alert_incidents_are_annotations_from_the_outbox(boards) -> None:
    annotation = next(
        a for a in boards["model"]["annotations"]["list"] if a["name"] == "Alert incidents"
    )
    assert annotation["datasource"]["uid"] == POSTGRES_UID and annotation["enable"]
    sql = annotation["target"]["rawSql"]
    assert "FROM alert_outbox" in sql and "${model:sqlstring}" in sql
    for column in ('AS "time"', "AS timeend", "AS text", "AS tags"):
        assert column in sql, column


def test_retention_and_build_panels(boards) -> None:
    text = {
        p["title"]: " ".join(t.get("expr", "") for t in p.get("targets", []))
        for p in panels(boards["daemon"])
    }
    assert "driftwarden_pruned_rows_total" in text["Rows pruned per second, by kind"]
    assert (
        "driftwarden_retention_last_success_timestamp_seconds"
        in text["Since the last retention pass"]
    )
    assert "driftwarden_build_info" in text["Build"]
