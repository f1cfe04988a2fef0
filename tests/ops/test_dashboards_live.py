"""Every dashboard query returns data: Debian's Prometheus (1 s scrapes, this repository's
recording rules) scrapes a daemon fed by the demo stream (``run_demo``: local broker, synthetic
drifting model, SQLite), then each panel, annotation and variable query runs through
Prometheus's HTTP API with the template variables substituted by real label values; the
PostgreSQL panels run on the demo's results copied into PostgreSQL. ``promtool check metrics``
lints the daemon's real /metrics output. While the demo ingests, retention prunes a million
old rows from its database (the daemon must keep ingesting).

A query that returns nothing fails its own test case, named dashboard:panel:refId.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from support.dashboards import LABEL_VALUES, Link, Query, links, queries, substitute
from support.kafka import wait_for
from support.ops import PrometheusServer, load_dashboards

from driftwarden.alerts.tables import alert_outbox
from driftwarden.monitor import storage
from driftwarden.monitor.commands.local_broker import free_port
from driftwarden.monitor.config import RetentionConfig
from driftwarden.monitor.storage.retention import Retention

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

RATE_INTERVAL = "30s"  # Grafana's $__rate_interval at a 1 s scrape interval, generously
DEMO = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from driftwarden.monitor.commands.demo import run_demo
    sys.exit(run_demo(Path(sys.argv[1]), keep_running=True, port=int(sys.argv[2])))
    """
)


@dataclass
class Stack:
    daemon_url: str
    prometheus_url: str
    started: float
    database: Path
    values: dict[str, dict[str, str]]  # dashboard title -> variable -> value as on load
    options: dict[str, dict[str, list[str]]]  # dashboard title -> variable -> every value


def _stop(process: subprocess.Popen[bytes], signum: int, timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@dataclass(frozen=True)
class Demo:
    url: str  # the daemon's HTTP server
    database: Path  # its SQLite database
    log: Path  # the demo's output: "running; metrics at ..." once its day is done

    @property
    def done(self) -> bool:
        return "running; metrics at" in self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def demo_port() -> int:
    """The demo daemon's HTTP port, known before it starts so Prometheus can wait for it."""
    return free_port()


@pytest.fixture(scope="module")
def demo(
    demo_port: int, prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    """``run_demo(keep_running=True)`` in a subprocess, once Prometheus scrapes its port: a
    series first scraped after the demo's deliveries would show no rate."""
    out = tmp_path_factory.mktemp("demo")
    port = demo_port
    log = (out / "demo.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-c", DEMO, str(out), str(port)],
        stdout=log,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def serving() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the demo exited: {(out / 'demo.log').read_text()}")
            try:
                return httpx.get(f"{url}/metrics", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(serving, 90, "the demo daemon's /metrics")
        yield Demo(url, out / "demo.db", out / "demo.log")
    finally:
        _stop(process, signal.SIGINT, 60)  # the demo stops its broker on the way out
        log.close()


@pytest.fixture(scope="module")
def prometheus(
    demo_port: int, prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Debian's Prometheus scraping the demo daemon every second, with the repository's rules."""
    targets = [f"127.0.0.1:{demo_port}"]
    directory = tmp_path_factory.mktemp("prometheus")
    with PrometheusServer(prometheus_binary, targets, directory) as server:
        yield server


@pytest.fixture(scope="module")
def stack(demo: Demo, prometheus: PrometheusServer) -> Stack:
    """Prometheus once every dashboard query has data, or else once the demo's day is done
    (its windows closed, labels joined, webhooks delivered)."""
    url = prometheus.url
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if demo.done:
            _wait_for_scrapes_after(url, time.time(), 3)  # and rule evaluations after them
            break
        time.sleep(5)
        values, options = _variable_values(url)
        candidate = Stack(demo.url, url, prometheus.started, demo.database, values, options)
        if all(_query_has_data(candidate, query) for query in PROMETHEUS_QUERIES):
            break
    else:
        raise AssertionError(f"the demo did not finish its day within 240 s: {demo.log}")
    return Stack(demo.url, url, prometheus.started, demo.database, *_variable_values(url))


def _wait_for_scrapes_after(url: str, moment: float, scrapes: int) -> None:
    """Until Prometheus (scraping every second) has scraped the daemon ``scrapes`` times after
    ``moment``."""

    def scraped() -> bool:
        query = {"query": 'timestamp(up{job="driftwarden"})'}
        found = httpx.get(f"{url}/api/v1/query", params=query, timeout=5).json()["data"]
        return any(float(item["value"][1]) >= moment + scrapes for item in found["result"])

    wait_for(scraped, 60, f"{scrapes} scrapes after the end of the demo's day")


MILLION = 1_000_000


def test_daemon_keeps_ingesting_while_a_million_rows_are_pruned(
    demo: Demo, request: pytest.FixtureRequest
) -> None:
    """Retention deletes a million old result rows from the demo's SQLite database, in batches,
    while the demo daemon ingests its stream: intake keeps progressing, /livez keeps answering,
    no checkpoint waits 2.5 s or more."""
    with contextlib.suppress(pytest.skip.Exception):  # Prometheus scrapes from the start
        request.getfixturevalue("prometheus")
    daemon_url = demo.url
    url = f"sqlite:///{demo.database}"
    engine = storage.create(url)
    try:
        pruned_before = _sample(_scrape(daemon_url), "pruned_results")
        _fill_old_results(engine, MILLION)
        before = _scrape(daemon_url)
        retention = Retention(engine, RetentionConfig(), CollectorRegistry(), _wall_clock_ms)
        pruned: dict[str, int] = {}
        pruning = threading.Thread(target=lambda: pruned.update(retention.prune_once()))
        started = time.monotonic()
        pruning.start()
        samples: list[tuple[float, float, bool]] = []
        while pruning.is_alive():
            text = _scrape(daemon_url)
            live = httpx.get(f"{daemon_url}/livez", timeout=10).status_code == 200
            samples.append((time.monotonic() - started, _sample(text, "events_total"), live))
            time.sleep(0.25)
        pruning.join()
        after = _scrape(daemon_url)
        # The demo daemon runs its own retention passes too: both share the million.
        by_daemon = _sample(after, "pruned_results") - pruned_before
        assert pruned["results"] + by_daemon == MILLION
        with engine.connect() as connection:
            left = connection.exec_driver_sql(
                "SELECT count(*) FROM results WHERE model = 'retired-model'"
            ).scalar()
        assert left == 0
        assert all(live for _, _, live in samples), samples
        assert len({events for _, events, _ in samples}) >= 3, (
            f"ingestion did not progress while pruning: {samples}"
        )
        checkpoints = _sample(after, "checkpoint_count") - _sample(before, "checkpoint_count")
        quick = _sample(after, "checkpoint_fast") - _sample(before, "checkpoint_fast")
        assert checkpoints > 0 and quick == checkpoints, (
            f"{checkpoints - quick} of {checkpoints} checkpoints waited 2.5 s or more"
        )
        print(f"pruned {MILLION:,} rows in {time.monotonic() - started:.1f} s while ingesting")
    finally:
        engine.dispose()


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _fill_old_results(engine: sa.Engine, count: int, chunk: int = 50_000) -> None:
    """``count`` results of a retired model whose windows ended a year and more ago, written in
    short transactions (the daemon writes to the same SQLite file meanwhile)."""
    old = _wall_clock_ms() - 400 * 86_400_000
    for start in range(0, count, chunk):
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                "INSERT INTO results (model, model_version, segment, window_index, kind, "
                "detector, feature, metric, group_attribute, reference_id, window_start, "
                "window_end, value, direction, drift, status) "
                "SELECT 'retired-model', '', '', i / 100, 'data_drift', 'psi', "
                "'f' || (i % 100), '', '', 'ref', ? + (i / 100) * 60000, "
                "? + (i / 100) * 60000 + 60000, 0.1, 'above', 0, 'ok' FROM n",
                (start, min(start + chunk, count) - 1, old, old),
            )


def _scrape(daemon_url: str) -> str:
    return httpx.get(f"{daemon_url}/metrics", timeout=10).text


def _sample(text: str, what: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {
        "events_total": ("driftwarden_events_total", {"kind": "prediction"}),
        "checkpoint_count": ("driftwarden_checkpoint_duration_seconds_count", {}),
        "checkpoint_fast": ("driftwarden_checkpoint_duration_seconds_bucket", {"le": "2.5"}),
        "pruned_results": ("driftwarden_pruned_rows_total", {"kind": "results"}),
    }
    name, labels = wanted[what]
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def _api(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=30)
    body = response.json()
    assert body.get("status") == "success", body
    return body["data"]


def _instant(url: str, expr: str) -> list[dict[str, Any]]:
    return _api(url, "query", query=expr)["result"]


def _variable_values(url: str) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, list]]]:
    """Each dashboard's variables as Grafana sets them on load (resolved in order: "All" where
    that is the default, else the first value), and every value each one offers."""
    values: dict[str, dict[str, str]] = {}
    options: dict[str, dict[str, list[str]]] = {}
    for query in queries():
        if query.ref != "variable":
            continue
        chosen = values.setdefault(query.dashboard, {})
        name = query.panel.removeprefix("variable ")
        found = sorted(_label_values(url, substitute(query.text, chosen)))
        options.setdefault(query.dashboard, {})[name] = found
        default = found[0] if found else f"no-value-of-{name}"
        chosen[name] = query.all_value if query.all_value is not None else default
    return values, options


def _label_values(url: str, definition: str) -> list[str]:
    match = LABEL_VALUES.match(definition.strip())
    assert match, definition
    selector, label = match.groups()
    params = {"match[]": selector} if selector else {}
    return _api(url, f"label/{label}/values", **params)


def _substitute(stack: Stack, query: Query, **overrides: str) -> str:
    builtin = {"__rate_interval": RATE_INTERVAL, "__interval": "15s", "__range": "1h"}
    chosen = {**builtin, **stack.values.get(query.dashboard, {}), **overrides}
    return substitute(query.text, chosen)


def _has_data(stack: Stack, query: Query, expr: str) -> bool:
    if query.instant:
        points = [s["value"][1] for s in _instant(stack.prometheus_url, expr)]
    else:
        series = _api(
            stack.prometheus_url,
            "query_range",
            query=expr,
            start=stack.started,
            end=time.time(),
            step=2,
        )["result"]
        points = [value for s in series for _, value in s["values"]]
    return any(not math.isnan(float(point)) for point in points)


PROMETHEUS_QUERIES = [q for q in queries() if q.datasource == "prometheus"]
POSTGRES_QUERIES = [q for q in queries() if q.datasource == "postgres"]


def _query_has_data(stack: Stack, query: Query) -> bool:
    return not _empty(stack, query)


def _empty(stack: Stack, query: Query) -> str:
    """Why ``query`` shows nothing ("" when it shows data)."""
    where = f"{query.dashboard} / {query.panel} [{query.ref}]"
    if query.ref == "variable":
        chosen = stack.values[query.dashboard]
        found = _label_values(stack.prometheus_url, substitute(query.text, chosen))
        return "" if found else f"{where}: no values for {query.text}"
    if query.repeat is None:
        expr = _substitute(stack, query)
        return "" if _has_data(stack, query, expr) else f"{where} shows no data: {expr}"
    # a repeated panel: one copy per value of its variable, each must show data
    repeats = stack.options[query.dashboard][query.repeat]
    if not repeats:
        return f"{where}: the repeat variable {query.repeat} has no values"
    empty = [
        value
        for value in repeats
        if not _has_data(stack, query, _substitute(stack, query, **{query.repeat: value}))
    ]
    return f"{where} shows no data for {query.repeat} in {empty}: {query.text}" if empty else ""


@pytest.mark.parametrize("query", PROMETHEUS_QUERIES, ids=lambda q: q.id)
def test_prometheus_query_returns_data(stack: Stack, query: Query) -> None:
    problem = _empty(stack, query)
    assert not problem, problem


@pytest.fixture(scope="module")
def history(stack: Stack, postgres_server: str) -> Iterator[str]:
    """The demo's results and notifications, copied into a PostgreSQL schema of their own."""
    schema = f"ops_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres_server}?options=-csearch_path%3D{schema}"
    source = storage.create(f"sqlite:///{stack.database}")
    target = storage.create(url)
    try:
        storage.upgrade(target)
        records = list(storage.Store(source).results())
        assert records, "the demo stored no results"
        storage.Store(target).commit(storage.Commit(results=records))
        with source.connect() as reading:
            notifications = [dict(row) for row in reading.execute(alert_outbox.select()).mappings()]
        assert any(n["status"] == "firing" for n in notifications), "the demo notified nothing"
        with target.begin() as writing:
            writing.execute(alert_outbox.insert(), notifications)
        yield url
    finally:
        source.dispose()
        target.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _sql_rows(stack: Stack, history: str, query: Query) -> tuple[str, list[dict[str, Any]]]:
    """The rows of a PostgreSQL query over the last three days, as Grafana would run it."""
    now = datetime.now(UTC)
    sql = _substitute(stack, query)
    sql = sql.replace("$__unixEpochFrom()", str(int((now - timedelta(days=3)).timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(now.timestamp())))
    engine = sa.create_engine(history)
    try:
        with engine.connect() as connection:
            return sql, [dict(row) for row in connection.exec_driver_sql(sql).mappings()]
    finally:
        engine.dispose()


@pytest.mark.parametrize("query", POSTGRES_QUERIES, ids=lambda q: q.id)
def test_postgres_query_returns_data(stack: Stack, history: str, query: Query) -> None:
    sql, rows = _sql_rows(stack, history, query)
    values = [value for row in rows for value in list(row.values())[1:] if value is not None]
    assert values, f"{query.dashboard} / {query.panel} [{query.ref}] shows no data: {sql}"


LINK_VALUE = re.compile(r"^\$\{(?:__field\.labels|__data\.fields)\.(\w+)(\.numeric)?\}$")


@pytest.mark.parametrize(
    "link", [link for link in links() if link.url.startswith("/d/")], ids=lambda link: link.id
)
def test_data_link_leads_to_a_dashboard_that_has_what_it_sets(
    stack: Stack, history: str, link: Link
) -> None:
    """Follow a data link with the values its panel really shows: its target dashboard
    exists, every variable it sets exists there and offers the value set, and a window's
    link sets the window's own range."""
    targets = {board["uid"]: board["title"] for board in load_dashboards().values()}
    assert link.target_uid in targets, f"{link.id}: no dashboard {link.target_uid}"
    target = targets[link.target_uid]
    for key, expression in link.parameters:
        if key.startswith("var-"):
            name = key.removeprefix("var-")
            assert name in stack.options[target], f"{link.id}: {target} has no variable {name}"
            values = _link_values(stack, history, link, expression)
            assert values, f"{link.id}: {expression} has no value in {link.panel}"
            offered = set(stack.options[target][name])
            assert set(values) <= offered, f"{link.id}: {set(values) - offered} not in {name}"
    ranges = dict(link.parameters)
    if "from" in ranges:
        starts = _link_values(stack, history, link, ranges["from"])
        ends = _link_values(stack, history, link, ranges["to"])
        assert starts and len(starts) == len(ends), link.id
        hour = 3_600_000
        for start, end in zip(starts, ends, strict=True):
            assert end - start == hour, f"{link.id}: {start}..{end} is not one demo window"
            assert start % hour == 0, f"{link.id}: {start} is not a window's start"


def _link_values(stack: Stack, history: str, link: Link, expression: str) -> list[Any]:
    """What ``expression`` becomes on each row or series the link's panel shows."""
    if expression.startswith("${") and expression[2:-1] in stack.values[link.dashboard]:
        return [stack.values[link.dashboard][expression[2:-1]]]  # a dashboard variable
    match = LINK_VALUE.match(expression)
    assert match, f"{link.id}: cannot evaluate {expression}"
    column, numeric = match.groups()
    found: list[Any] = []
    for query in link.queries:
        if query.datasource == "postgres":
            _, rows = _sql_rows(stack, history, query)
            found += [row[column] for row in rows if row.get(column) is not None]
        else:
            expr = _substitute(stack, query)
            found += [s["metric"][column] for s in _instant(stack.prometheus_url, expr)]
    return [int(value) for value in found] if numeric else found


def test_daemon_metrics_pass_promtool_check_metrics(stack: Stack, promtool: str) -> None:
    exposition = httpx.get(f"{stack.daemon_url}/metrics", timeout=10).text
    assert "driftwarden_events_total" in exposition
    done = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
