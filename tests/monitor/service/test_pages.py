"""Evidence pages over real HTTP on 127.0.0.1: who may see them, what they show, and that
what they show is escaped, equal to ``driftwarden results`` and drawn from the stored bins.

The data is a ``replay`` of a drifting synthetic stream whose model, one feature and one
category carry HTML in their names, with an alert rule on a log channel (incidents)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import orjson
import polars as pl
import pytest
from prometheus_client import CollectorRegistry

from driftwarden.monitor import config as configuration
from driftwarden.monitor import storage
from driftwarden.monitor.commands import synthetic
from driftwarden.monitor.commands.replay import replay
from driftwarden.monitor.service import charts
from driftwarden.monitor.service.api import Api, HttpSecurity
from driftwarden.monitor.service.endpoints import EndpointServer, Health
from driftwarden.monitor.service.pages import Pages
from driftwarden.monitor.service.ui import COOKIE

TOKEN = "pages-token-0123456789abcdef"
MODEL = "m<script>alert('model')</script>"
FEATURE = "inc<script>alert('feature')</script>"
CATEGORY = "cen<script>alert('category')</script>"
HOUR = 3_600_000
START = 1_795_046_400_000  # 2026-11-19T00:00:00Z
WINDOWS = 8
DRIFT_WINDOW = 6


@dataclass(frozen=True)
class Evidence:
    directory: Path
    config: Path
    url: str
    events: pl.DataFrame
    reference: pl.DataFrame
    labels: pl.DataFrame


def _rename(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.rename({"income": FEATURE}).with_columns(
        pl.when(pl.col("region") == "central")
        .then(pl.lit(CATEGORY))
        .otherwise(pl.col("region"))
        .alias("region")
    )


def _lines(frame: pl.DataFrame) -> bytes:
    numeric = [FEATURE if n == "income" else n for n in synthetic.NUMERIC]
    out = frame.select(
        pl.lit(MODEL).alias("model"),
        "model_version",
        "id",
        "ts",
        pl.struct(numeric + list(synthetic.CATEGORICAL)).alias("features"),
        "prediction",
        pl.struct(list(synthetic.GROUPS)).alias("groups"),
    )
    return out.write_ndjson().encode()


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    directory = tmp_path_factory.mktemp("pages")
    reference = _rename(synthetic.reference(20_000, seed=0))
    reference.write_parquet(directory / "reference.parquet")
    stream = synthetic.Stream(
        n=8_000, start=START, span=WINDOWS * HOUR, drift_from=START + DRIFT_WINDOW * HOUR, seed=3
    )
    events = _rename(synthetic.events(stream))
    (directory / "predictions.jsonl").write_bytes(_lines(events))
    labels = synthetic.label_events(events.with_columns(pl.lit(MODEL).alias("model")), early=0.0)
    labels.write_ndjson(directory / "labels.jsonl")
    url = f"sqlite:///{directory / 'db.sqlite'}"
    numeric = ", ".join(f'"{n}"' if n == FEATURE else n for n in (
        FEATURE if n == "income" else n for n in synthetic.NUMERIC))  # fmt: skip
    config = directory / "config.yaml"
    config.write_text(
        f'storage:\n  url: "{url}"\nmodels:\n  "{MODEL}":\n'
        "    task: binary_classification\n"
        f"    reference: {directory / 'reference.parquet'}\n"
        f"    features:\n      numeric: [{numeric}]\n      categorical: [region, channel]\n"
        "    groups: [sex]\n    decision_threshold: 0.5\n"
        "    window: {kind: time, size: 1h, allowed_lateness: 5m}\n"
        "alerts:\n  channels: {log: {type: log}}\n"
        "  rules: [{name: drift, match: [kind=data_drift], severity: warning, channels: [log]}]\n"
    )
    storage.upgrade(storage.create(url))
    replay(
        configuration.load(config),
        directory / "predictions.jsonl",
        directory / "out",
        labels=directory / "labels.jsonl",
        storage_url=url,
    )
    return Evidence(directory, config, url, events, reference, labels)


@pytest.fixture(scope="module")
def server(evidence: Evidence) -> Iterator[EndpointServer]:
    """The daemon's HTTP server bound off loopback (so with a token), pages on the database."""
    api = Api(security=HttpSecurity(api_token=TOKEN))
    server = EndpointServer("0.0.0.0", 0, CollectorRegistry(), Health(), api=api)
    server.ui.pages = Pages(storage.Store(storage.create(evidence.url)))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def base(server: EndpointServer) -> str:
    return f"http://127.0.0.1:{server.address[1]}"


@pytest.fixture(scope="module")
def results(evidence: Evidence) -> list[dict]:
    """What ``driftwarden results`` prints for the model."""
    printed = subprocess.run(
        [sys.executable, "-m", "driftwarden.monitor.commands.cli", "results",
         "--config", str(evidence.config), "--model", MODEL],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return [orjson.loads(line) for line in printed.splitlines()]


@pytest.fixture(scope="module")
def incident_id(evidence: Evidence) -> str:
    from driftwarden.monitor.storage import evidence as stored

    with storage.create(evidence.url).connect() as connection:
        found = stored.incidents(connection, MODEL)
    assert found, "the drift rule raised no incident"
    return found[0].id


def _model_path() -> str:
    return f"/ui/models/{quote(MODEL, safe='')}"


def _paths(incident_id: str) -> list[str]:
    return [
        "/ui",
        "/ui/",
        _model_path(),
        f"{_model_path()}?last=3",
        f"{_model_path()}/windows/{DRIFT_WINDOW}",
        f"/ui/incidents/{incident_id}",
        "/ui/no/such/page",
    ]


def _get(base: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(base + path, timeout=30, **kwargs)  # type: ignore[arg-type]


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs in self.tags
            if name == tag and all(attrs.get(k.replace("_", "-")) == v for k, v in wanted.items())
        ]


# -- who may see the pages ----------------------------------------------------------------


def test_every_ui_path_answers_401_off_loopback_without_the_token(
    base: str, incident_id: str
) -> None:
    for path in _paths(incident_id):
        refused = _get(base, path)
        assert refused.status_code == 401, path
        assert "Bearer" in refused.headers["WWW-Authenticate"]
        assert "alert(" not in refused.text and "credit" not in refused.text
        assert _get(base, path, headers={"Authorization": "Bearer wrong"}).status_code == 403
        cookie = {"Cookie": f"{COOKIE}=forged"}
        assert _get(base, path, headers=cookie).status_code == 401, path


def test_the_token_opens_every_page(base: str, incident_id: str) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in _paths(incident_id)[:-1]:
        page = _get(base, path, headers=bearer)
        assert page.status_code == 200, path
        assert page.headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert _get(base, "/ui/no/such/page", headers=bearer).status_code == 404
    assert _get(base, f"{_model_path()}/windows/999", headers=bearer).status_code == 404


def test_a_window_by_its_end_time_redirects_to_its_page(base: str, results: list[dict]) -> None:
    """Alerts link ``…/windows?until=`` with the window end they judged (epoch seconds)."""
    _, end = _window_bounds(results, DRIFT_WINDOW)
    bearer = {"Authorization": f"Bearer {TOKEN}"}

    def where(until: str) -> httpx.Response:
        return _get(base, f"{_model_path()}/windows?until={until}", headers=bearer)

    cases = {
        f"{end / 1000:.3f}": DRIFT_WINDOW,
        f"{(end - 1) / 1000:.3f}": DRIFT_WINDOW - 1,
        f"{end / 1000 + 10**6:.3f}": WINDOWS - 1,
    }
    for until, index in cases.items():
        found = where(until)
        assert found.status_code == 302, until
        assert found.headers["Location"] == f"{_model_path()}/windows/{index}", until
    assert where(f"{START / 1000:.3f}").status_code == 404  # before the first window ended
    assert where("yesterday").status_code == 400
    assert _get(base, f"{_model_path()}/windows?until=1").status_code == 401


def test_a_session_cookie_is_given_for_the_token_and_opens_the_pages(base: str) -> None:
    wrong = httpx.post(f"{base}/ui/session", data={"token": "nope"}, timeout=30)
    assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
    given = httpx.post(f"{base}/ui/session", data={"token": TOKEN}, timeout=30)
    assert given.status_code == 303 and given.headers["Location"] == "/ui/"
    cookie = given.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    value = given.cookies[COOKIE]
    page = _get(base, "/ui/", headers={"Cookie": f"{COOKIE}={value}"})
    assert page.status_code == 200 and "Models" in page.text


# -- what the pages show --------------------------------------------------------------------


def _page(base: str, path: str) -> str:
    page = _get(base, path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200, path
    return page.text


def test_html_in_model_feature_and_category_names_is_escaped(base: str, incident_id: str) -> None:
    for path in _paths(incident_id)[:-1]:
        html = _page(base, path)
        assert "<script" not in html.lower(), path
        parsed = Elements(html)
        assert not [tag for tag, _ in parsed.tags if tag == "script"]
        text = "".join(parsed.text)
        assert MODEL in text, path
    window = Elements(_page(base, f"{_model_path()}/windows/{DRIFT_WINDOW}"))
    assert FEATURE in "".join(window.text)
    assert window.find("rect", data_series="window", data_low=CATEGORY)


def test_window_values_equal_driftwarden_results(base: str, results: list[dict]) -> None:
    stored = [r for r in results if r["window_index"] == DRIFT_WINDOW]
    page = Elements(_page(base, f"{_model_path()}/windows/{DRIFT_WINDOW}"))
    rows = page.find("tr")
    shown = {
        tuple(row[f"data-{name}"] for name in _KEY): row["data-value"]
        for row in rows
        if row.get("data-kind")
    }
    assert set(shown) == {_key(r) for r in stored}
    for record in stored:
        value = shown[_key(record)]
        if record["value"] is None:
            assert value == ""
        else:
            assert float(value) == record["value"]
    drifting = {r["feature"] for r in stored if r["kind"] == "data_drift" and r["drift"]}
    assert FEATURE in drifting
    charted = {attrs["data-feature"] for attrs in page.find("svg") if attrs.get("data-feature")}
    for name in drifting:
        assert f"{name} (value)" in charted or f"{name} (category)" in charted, name


def test_fleet_shows_the_last_windows_performance_as_stored(base: str, results: list[dict]) -> None:
    last = max(r["window_index"] for r in results)
    expected = {
        (r["kind"], _subject(r)): r["value"]
        for r in results
        if r["window_index"] == last
        and r["kind"] in ("performance", "estimated_performance")
        and r["value"] is not None
    }
    fleet = Elements(_page(base, "/ui/"))
    shown = {
        (a["data-kind"], a["data-metric"]): float(a["data-value"]) if a["data-value"] else None
        for a in fleet.find("div")
        if a.get("data-metric")
    }
    assert expected
    assert shown == expected


_KEY = ("kind", "detector", "feature", "metric", "group")


def _key(record: dict) -> tuple[str, ...]:
    fields = ("kind", "detector", "feature", "metric", "group_attribute")
    return tuple(record[name] or "" for name in fields)


def _subject(record: dict) -> str:
    if record["feature"] is not None:
        return record["feature"]
    name = record["metric"] or record["detector"]
    return f"{name}[{record['group_attribute']}]" if record["group_attribute"] else name


def _window_bounds(results: list[dict], index: int) -> tuple[int, int]:
    from driftwarden.core.times import parse_time

    record = next(r for r in results if r["window_index"] == index)
    return parse_time(record["window_start"]), parse_time(record["window_end"])


def test_histogram_bar_heights_equal_shares_of_the_raw_rows_in_their_bins(
    base: str, evidence: Evidence, results: list[dict]
) -> None:
    start, end = _window_bounds(results, DRIFT_WINDOW)
    rows = evidence.events.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    page = Elements(_page(base, f"{_model_path()}/windows/{DRIFT_WINDOW}"))
    html_bars = [a for a in page.tags if a[0] == "rect" and a[1].get("data-series")]
    assert html_bars
    for name in (FEATURE, "age"):
        for series, frame in (("window", rows), ("reference", evidence.reference)):
            values = frame[name].drop_nulls().to_numpy()
            bars = _feature_bars(page, name, series)
            assert len(bars) > 10, (name, series)
            heights = []
            for attrs in bars:
                low, high = float(attrs["data-low"]), float(attrs["data-high"])
                inside = np.count_nonzero((values >= low) & (values < high)) / len(values)
                assert float(attrs["data-share"]) == pytest.approx(inside, abs=1e-12), (
                    name, series, low, high)  # fmt: skip
                height, y = float(attrs["height"]), float(attrs["y"])
                assert y + height == pytest.approx(charts.PLOT_BOTTOM, abs=0.02)
                heights.append((inside, height))
            tallest = max(heights)
            scale = tallest[1] / tallest[0]
            for share, height in heights:
                assert height == pytest.approx(share * scale, abs=0.02)
            assert sum(s for s, _ in heights) == pytest.approx(1.0)


def _chart_dots(page: Elements, title: str) -> list[dict[str, str | None]]:
    """The points of the line chart titled ``title``."""
    inside = False
    found = []
    for tag, attrs in page.tags:
        if tag == "svg":
            inside = attrs.get("data-chart") == title
        elif inside and tag == "circle":
            found.append(attrs)
    return found


def test_model_page_draws_each_groups_selection_rate_and_the_fairness_records(
    base: str, evidence: Evidence, results: list[dict]
) -> None:
    from fairlearn.metrics import selection_rate

    page = Elements(_page(base, _model_path()))
    drawn = {
        (a["data-series"], int(a["data-window"])): float(a["data-value"])
        for a in _chart_dots(page, "selection rate by sex")
    }
    expected = {}
    for index in sorted({r["window_index"] for r in results}):
        start, end = _window_bounds(results, index)
        rows = evidence.events.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
        for group, part in rows.group_by("sex"):
            predicted = (part["prediction"].to_numpy() >= 0.5).astype(int)
            expected[str(group[0]), index] = selection_rate(predicted, predicted)
    assert len({group for group, _ in expected}) >= 2
    assert drawn.keys() == expected.keys()
    for key, rate in expected.items():
        assert drawn[key] == pytest.approx(rate, abs=1e-12), key
    fairness = [r for r in results if r["kind"] == "fairness" and r["value"] is not None]
    assert {r["metric"] for r in fairness} >= {"demographic_parity_difference", "disparate_impact"}
    text = "".join(page.text)
    for record in fairness:
        form = "difference" if record["direction"] == "above" else "ratio"
        dots = _chart_dots(page, f"fairness by sex: {form}s between groups")
        shown = {(a["data-series"], int(a["data-window"])): a["data-value"] for a in dots}
        assert float(shown[record["metric"], record["window_index"]]) == record["value"]
        if record["threshold"] is not None:
            assert f"{record['metric']} threshold {record['threshold']:.4g}" in text
    assert any(record["threshold"] is not None for record in fairness)


def _feature_bars(page: Elements, name: str, series: str) -> list[dict[str, str | None]]:
    """The bars of ``series`` inside the chart of feature ``name``."""
    inside = False
    found = []
    for tag, attrs in page.tags:
        if tag == "svg":
            inside = attrs.get("data-feature") == f"{name} (value)"
        elif inside and tag == "rect" and attrs.get("data-series") == series:
            found.append(attrs)
    return found


def test_pages_link_only_to_themselves(base: str, incident_id: str) -> None:
    for path in _paths(incident_id)[:-1]:
        html = _page(base, path)
        assert "http://" not in html and "https://" not in html, path
        for _, attrs in Elements(html).tags:
            for key in ("href", "src", "action"):
                if attrs.get(key):
                    assert attrs[key].startswith(("/ui/", "#", "data:")), (path, attrs[key])


def test_incident_page_lists_its_notifications_and_drifting_windows(
    base: str, incident_id: str
) -> None:
    page = Elements(_page(base, f"/ui/incidents/{incident_id}"))
    deliveries = [a for a in page.find("tr") if a.get("data-channel")]
    assert deliveries and all(a["data-channel"] == "log" for a in deliveries)
    windows = [a["href"] for a in page.find("a") if "/windows/" in (a.get("href") or "")]
    assert f"{_model_path()}/windows/{DRIFT_WINDOW}" in windows


# -- the report file ------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "driftwarden.monitor.commands.cli", *args],
        capture_output=True,
        check=False,
    )


def test_report_of_one_window_holds_its_page_with_the_same_values(
    evidence: Evidence, results: list[dict], tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    done = _cli("report", "--config", str(evidence.config), "--model", MODEL,
                "--window", str(DRIFT_WINDOW), "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    page = Elements(html)
    shown = {
        tuple(row[f"data-{name}"] for name in _KEY): row["data-value"]
        for row in page.find("tr")
        if row.get("data-kind")
    }
    stored = [r for r in results if r["window_index"] == DRIFT_WINDOW]
    assert set(shown) == {_key(r) for r in stored}
    for record in stored:
        assert shown[_key(record)] == ("" if record["value"] is None else repr(record["value"]))
    ids = {attrs["id"] for _, attrs in page.tags if attrs.get("id")}
    targets = {a["href"][1:] for a in page.find("a") if (a.get("href") or "").startswith("#")}
    assert any(target.startswith("window-") for target in targets & ids)


def test_report_refuses_an_unknown_window_and_mixed_ranges(
    evidence: Evidence, tmp_path: Path
) -> None:
    out = tmp_path / "none.html"
    missing = _cli("report", "--config", str(evidence.config), "--model", MODEL,
                   "--window", "9999", "--out", str(out))  # fmt: skip
    assert missing.returncode != 0 and b"no stored window" in missing.stderr
    assert not out.exists()
    mixed = _cli("report", "--config", str(evidence.config), "--model", MODEL, "--window", "1",
                 "--since", "2026-11-19T00:00:00Z", "--out", str(out))  # fmt: skip
    assert mixed.returncode != 0 and b"not both" in mixed.stderr


def test_replay_writes_a_report_of_the_whole_back_test(
    evidence: Evidence, results: list[dict]
) -> None:
    page = Elements((evidence.directory / "out" / "report.html").read_text())
    windows = {r["window_index"] for r in results}
    heat = {int(a["data-window"]) for a in page.find("rect") if a.get("data-level")}
    assert heat == windows
    ids = {attrs["id"] for _, attrs in page.tags if attrs.get("id")}
    drawn = {i for i in ids if i.startswith("window-")}
    assert len(drawn) == len(windows)


def test_the_confusion_matrix_counts_the_windows_labelled_predictions(
    base: str, evidence: Evidence, results: list[dict]
) -> None:
    from sklearn.metrics import confusion_matrix

    start, end = _window_bounds(results, DRIFT_WINDOW)
    window = evidence.events.filter((pl.col("ts") >= start) & (pl.col("ts") < end))
    joined = window.join(evidence.labels.select("id", pl.col("label").alias("y")), on="id")
    assert joined.height > 100
    predicted = (joined["prediction"].to_numpy() >= 0.5).astype(int)
    tn, fp, fn, tp = confusion_matrix(joined["y"].to_numpy(), predicted, labels=[0, 1]).ravel()
    html = _page(base, f"{_model_path()}/windows/{DRIFT_WINDOW}")
    assert _confusion_cells(html) == {
        ("positive", "positive"): tp, ("positive", "negative"): fn,
        ("negative", "positive"): fp, ("negative", "negative"): tn,
    }  # fmt: skip


def _confusion_cells(html: str) -> dict[tuple[str, str], int]:
    """The confusion matrix drawn: (actual, predicted) -> count."""
    found = re.findall(r'data-actual="([^"]*)" data-predicted="([^"]*)">(\d+)<', html)
    return {(actual, predicted): int(count) for actual, predicted, count in found}


# -- multiclass and regression windows ------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """A multiclass and a regression model replayed with labels: their pages and rows."""

    pages: Pages
    events: dict[str, pl.DataFrame]
    reference: dict[str, pl.DataFrame]
    directory: Path


CLASSES = ("cat", "dog", "<owl>")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    directory = tmp_path_factory.mktemp("outcomes")
    rng = np.random.default_rng(11)

    def rows(n: int, model: str, shift: float) -> pl.DataFrame:
        x = rng.normal(shift, 1.0, n)
        if model == "species":
            label = rng.choice(CLASSES, n)
            guess = np.where(rng.random(n) < 0.7 - shift / 4, label, rng.choice(CLASSES, n))
            return pl.DataFrame({"x": x, "prediction": guess, "label": label})
        label = 3.0 * x + rng.normal(0, 1, n) + np.where(rng.random(n) < 0.01, 0.0, 10.0)
        guess = 3.0 * x + 10.0 + rng.normal(0, 1 + shift, n)
        return pl.DataFrame({"x": x, "prediction": guess, "label": label})

    reference, events = {}, {}
    for model in ("species", "price"):
        reference[model] = rows(5000, model, 0.0)
        reference[model].write_parquet(directory / f"{model}.parquet")
        events[model] = pl.concat(
            rows(3000, model, 0.5 * window).with_columns(
                pl.lit(model).alias("model"),
                pl.format("{}-{}", pl.lit(f"{model}-{window}"), pl.int_range(3000)).alias("id"),
                (START + window * HOUR + pl.int_range(3000, dtype=pl.Int64) * (HOUR // 3000)).alias(
                    "ts"
                ),
            )
            for window in range(2)
        )
    lines = []  # both models' events and labels in time order (their columns differ in type)
    for frame in events.values():
        predictions = frame.select("model", "id", "ts", pl.struct("x").alias("features"),
                                   "prediction")  # fmt: skip
        answers = frame.select("model", "id", (pl.col("ts") + 60_000).alias("ts"), "label")
        for kind, part in (("predictions", predictions), ("labels", answers)):
            text = part.write_ndjson().splitlines()
            lines += zip(part["ts"].to_list(), [kind] * part.height, text, strict=True)
    for kind in ("predictions", "labels"):
        chosen = sorted((ts, line) for ts, k, line in lines if k == kind)
        (directory / f"{kind}.jsonl").write_text("".join(line + "\n" for _, line in chosen))
    url = f"sqlite:///{directory / 'db.sqlite'}"
    config = directory / "config.yaml"
    config.write_text(
        f'storage:\n  url: "{url}"\nmodels:\n'
        + "".join(
            f"  {model}:\n    task: {task}\n    reference: {directory / f'{model}.parquet'}\n"
            "    features: {numeric: [x]}\n"
            "    window: {kind: time, size: 1h, allowed_lateness: 5m}\n"
            for model, task in (("species", "multiclass_classification"), ("price", "regression"))
        )
    )
    storage.upgrade(storage.create(url))
    replay(
        configuration.load(config),
        directory / "predictions.jsonl",
        directory / "out",
        labels=directory / "labels.jsonl",
        storage_url=url,
    )
    pages = Pages(storage.Store(storage.create(url)))
    return Outcomes(pages, events, reference, directory)


def test_a_multiclass_window_draws_its_k_by_k_confusion_matrix(outcomes: Outcomes) -> None:
    from sklearn.metrics import confusion_matrix

    rows = outcomes.events["species"].filter(pl.col("ts") >= START + HOUR)
    expected = confusion_matrix(rows["label"], rows["prediction"], labels=list(CLASSES))
    html = outcomes.pages.window("species", 1)
    assert html is not None
    drawn = _confusion_cells(html.replace("&lt;owl&gt;", "<owl>"))
    assert drawn == {
        (actual, predicted): int(expected[i, j])
        for i, actual in enumerate(CLASSES)
        for j, predicted in enumerate(CLASSES)
    }
    assert "<owl>" not in html


def test_a_regression_window_shows_its_errors_beside_the_reference(outcomes: Outcomes) -> None:
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        r2_score,
        root_mean_squared_error,
    )

    def measures(frame: pl.DataFrame) -> dict[str, float]:
        y, guess = frame["label"].to_numpy(), frame["prediction"].to_numpy()
        nonzero = y != 0
        return {
            "mean label": float(y.mean()),
            "MAE": mean_absolute_error(y, guess),
            "RMSE": root_mean_squared_error(y, guess),
            "MAPE": mean_absolute_percentage_error(y[nonzero], guess[nonzero]),
            "R²": r2_score(y, guess),
        }

    rows = outcomes.events["price"].filter(pl.col("ts") >= START + HOUR)
    html = outcomes.pages.window("price", 1)
    assert html is not None
    page = Elements(html)
    drawn = {a["data-measure"]: a for a in page.find("tr") if a.get("data-measure")}
    window, reference = measures(rows), measures(outcomes.reference["price"])
    assert drawn.keys() == window.keys()
    for name in window:
        assert float(drawn[name]["data-window"]) == pytest.approx(window[name], rel=1e-9), name
        assert float(drawn[name]["data-reference"]) == pytest.approx(reference[name], rel=1e-9)
    assert f"Errors of the labelled rows ({rows.height})" in html
    assert 'class="confusion"' not in html


# -- the model page's heat map ----------------------------------------------------------------


def _ratio(record: dict) -> float | None:
    """Statistic over threshold, 1 at the threshold (inverse for tests whose p-value-like
    statistic drifts below it)."""
    value, threshold = record["value"], record["threshold"]
    if value is None or threshold is None:
        return None
    if record["direction"] == "above":
        return value / threshold if threshold > 0 else None
    return threshold / value if value > 0 else None


def _heat_cells(html: str) -> dict[tuple[int, str], int]:
    return {
        (int(a["data-window"]), a["data-feature"]): int(a["data-level"])
        for a in Elements(html).find("rect")
        if a.get("data-level")
    }


def test_heat_map_cells_show_each_features_worst_drift_record(
    base: str, results: list[dict]
) -> None:
    worst: dict[tuple[int, str], float | None] = {}
    for record in results:
        if record["kind"] in ("data_drift", "prediction_drift"):
            key = (record["window_index"], record["feature"] or "prediction")
            ratios = [r for r in (worst.get(key), _ratio(record)) if r is not None]
            worst[key] = max(ratios) if ratios else None
    assert len({feature for _, feature in worst}) > 5
    expected = {
        key: -1 if ratio is None else sum(ratio >= step for step in charts.LEVELS)
        for key, ratio in worst.items()
    }
    assert _heat_cells(_page(base, _model_path())) == expected


def test_a_rewritten_window_is_drawn_anew(evidence: Evidence, tmp_path: Path) -> None:
    """Pages keep each window's drift in memory while the window's row is unchanged; a
    window written again (as with its results) is read again."""
    import shutil
    import sqlite3

    copy = tmp_path / "db.sqlite"
    shutil.copy(evidence.directory / "db.sqlite", copy)
    pages = Pages(storage.Store(storage.create(f"sqlite:///{copy}")))
    before = _heat_cells(pages.model(MODEL) or "")
    assert before[0, "age"] < 3
    with sqlite3.connect(copy) as connection:
        connection.execute(
            "UPDATE results SET value = 3 * threshold, drift = 1 WHERE model = ? "
            "AND window_index = 0 AND feature = 'age' AND direction = 'above'",
            (MODEL,),
        )
        connection.commit()
        assert _heat_cells(pages.model(MODEL) or "") == before  # the window's row is as it was
        assert _heat_cells(Pages(pages.store).model(MODEL) or "")[0, "age"] == 5
        connection.execute(
            "UPDATE windows SET n_events = n_events + 1 WHERE model = ? AND window_index = 0",
            (MODEL,),
        )
        connection.commit()
    after = _heat_cells(pages.model(MODEL) or "")
    assert after[0, "age"] == 5
    assert {k: v for k, v in after.items() if k != (0, "age")} == {
        k: v for k, v in before.items() if k != (0, "age")
    }


def _drawn(html: str) -> dict[str, object]:
    """What a page draws, as values: bars, points, cells, record values, tables."""
    page = Elements(html)
    return {
        "bars": sorted(
            (a["data-series"], a["data-low"], a["data-high"], a["data-share"])
            for a in page.find("rect")
            if a.get("data-share")
        ),
        "points": sorted(
            (a["data-series"], a["data-window"], a["data-value"]) for a in page.find("circle")
        ),
        "heat": _heat_cells(html),
        "records": sorted(
            tuple(a[f"data-{name}"] for name in (*_KEY, "value", "threshold"))
            for a in page.find("tr")
            if a.get("data-kind")
        ),
        "confusion": _confusion_cells(html),
        "errors": sorted(
            (a["data-measure"], a["data-window"], a["data-reference"])
            for a in page.find("tr")
            if a.get("data-measure")
        ),
    }


def test_pages_from_postgresql_draw_what_they_draw_from_sqlite(
    evidence: Evidence, outcomes: Outcomes, postgres_url: str, tmp_path: Path
) -> None:
    storage.upgrade(storage.create(postgres_url))
    sources = [(evidence.config, evidence.directory)]
    sources.append((outcomes.directory / "config.yaml", outcomes.directory))
    for config, directory in sources:
        replay(
            configuration.load(config),
            directory / "predictions.jsonl",
            tmp_path / directory.name,
            labels=directory / "labels.jsonl",
            storage_url=postgres_url,
        )
    postgres = Pages(storage.Store(storage.create(postgres_url)))
    sqlite = Pages(storage.Store(storage.create(evidence.url)))
    pages = [(MODEL, None), (MODEL, DRIFT_WINDOW)]
    for model, window in pages:
        expected = sqlite.model(model) if window is None else sqlite.window(model, window)
        found = postgres.model(model) if window is None else postgres.window(model, window)
        assert expected and found
        assert _drawn(found) == _drawn(expected), (model, window)
    for model in ("species", "price"):
        expected, found = outcomes.pages.window(model, 1), postgres.window(model, 1)
        assert expected and found
        assert _drawn(found) == _drawn(expected), model
    assert _drawn(postgres.model(MODEL) or "")["points"]
    assert postgres.window_by(MODEL, 2**42) == WINDOWS - 1


def test_pooled_heat_map_columns_hold_the_worst_of_their_windows() -> None:
    """Past ``MAX_COLUMNS`` windows, a column pools consecutive windows: its cell is the
    largest ratio of the feature over them (no value only if none has one), drift if any."""
    from driftwarden.monitor.service.pages import WindowDrift, _pooled
    from driftwarden.monitor.storage.evidence import WindowMeta

    rng = np.random.default_rng(5)
    windows = [WindowMeta("m", i, i, i + 1, 1, "r", None) for i in range(3, 40) if i != 17]
    drift, rows = {}, []
    for meta in windows:
        names = [f for f in ("a", "b", "c") if rng.random() < 0.8]
        ratios = [None if rng.random() < 0.2 else float(rng.random() * 3) for _ in names]
        flags = [bool(r is not None and r > 1) for r in ratios]
        drift[meta.index] = WindowDrift(
            tuple(names), np.array([np.nan if r is None else r for r in ratios]),
            np.array(flags, dtype=bool),
        )  # fmt: skip
        rows += [(meta.index, n, r, f) for n, r, f in zip(names, ratios, flags, strict=True)]
    cells, pool = _pooled(windows, drift, 10)
    assert pool == 4  # 37 window indices, 3 to 39, in at most 10 columns
    expected = {}
    for index, name, ratio, flag in rows:
        key = (3 + (index - 3) // pool * pool, name)
        worst, drifted = expected.get(key, (None, False))
        ratios = [r for r in (worst, ratio) if r is not None]
        expected[key] = (max(ratios) if ratios else None, drifted or flag)
    assert {(start, name): (ratio, flag) for start, name, ratio, flag in cells} == expected


# -- a model with split versions ----------------------------------------------------------


@dataclass(frozen=True)
class SplitModel:
    config: Path
    pages: Pages


@pytest.fixture(scope="module")
def split_model(
    reference_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SplitModel]:
    """Versions A and B of the synthetic model in an A/B split, B drifting in ``income``
    from window 2, with labels; B named the champion."""
    directory = tmp_path_factory.mktemp("split-pages")
    stream = synthetic.Stream(n=6_000, start=START, span=4 * HOUR, seed=17)
    events = synthetic.events(stream)
    version = np.where(np.random.default_rng(5).random(events.height) < 0.5, "A", "B")
    events = events.with_columns(model_version=pl.Series(version))
    drifted = (pl.col("model_version") == "B") & (pl.col("ts") >= START + 2 * HOUR)
    events = events.with_columns(
        pl.when(drifted).then(pl.col("income") * 3).otherwise("income").alias("income")
    )
    labels = synthetic.label_events(events, early=0.0, delay=(60_000, 600_000))
    predictions, label_file = directory / "predictions.jsonl", directory / "labels.jsonl"
    predictions.write_bytes(b"\n".join(synthetic.prediction_lines(events)) + b"\n")
    label_file.write_bytes(b"\n".join(synthetic.label_lines(labels)) + b"\n")
    url = f"sqlite:///{directory / 'db.sqlite'}"
    config = directory / "config.yaml"
    config.write_text(
        synthetic.config_yaml(str(reference_file), url)
        + "    labels: {ttl: 2h, orphan_ttl: 30m, min_labeled: 100}\n"
        + '    versions: {split: true, champion: "B"}\n'
    )
    storage.upgrade(storage.create(url))
    loaded = configuration.load(config)
    replay(loaded, predictions, directory / "out", labels=label_file, storage_url=url)
    engine = storage.create(url)
    yield SplitModel(config, Pages(storage.Store(engine)))
    engine.dispose()


def _split_results(split: SplitModel, version: str) -> list[dict]:
    printed = _cli(
        "results", "--config", str(split.config), "--model", synthetic.MODEL, "--version", version
    )
    assert printed.returncode == 0, printed.stderr
    return [orjson.loads(line) for line in printed.stdout.splitlines()]


def test_a_split_models_page_shows_its_champion_and_links_every_version(
    split_model: SplitModel,
) -> None:
    html = split_model.pages.model(synthetic.MODEL)
    assert html is not None
    page = Elements(html)
    path = f"/ui/models/{quote(synthetic.MODEL, safe='')}"
    selector = {a["href"]: a.get("aria-current") for a in page.find("a") if "?version=" in (
        a["href"] or "") and "/windows/" not in (a["href"] or "")}  # fmt: skip
    assert selector == {f"{path}?version=A": None, f"{path}?version=B": "page"}
    windows = {a["href"] for a in page.find("a") if "/windows/" in (a["href"] or "")}
    assert windows and all(href.endswith("?version=B") for href in windows)
    assert split_model.pages.model(synthetic.MODEL, version="B") == html
    assert split_model.pages.model(synthetic.MODEL, version="A") != html
    assert split_model.pages.model(synthetic.MODEL, version="C") is None


@pytest.mark.parametrize("version", ["A", "B"])
def test_a_split_models_window_pages_show_each_versions_records(
    split_model: SplitModel, version: str
) -> None:
    results = _split_results(split_model, version)
    assert {r["model_version"] for r in results} == {version}
    for index in (1, 3):
        stored = [r for r in results if r["window_index"] == index]
        html = split_model.pages.window(synthetic.MODEL, index, version)
        assert html is not None
        rows = Elements(html).find("tr")
        shown = {
            tuple(row[f"data-{name}"] for name in _KEY): row["data-value"]
            for row in rows
            if row.get("data-kind")
        }
        assert set(shown) == {_key(r) for r in stored}
        for record in stored:
            value = shown[_key(record)]
            assert value == "" if record["value"] is None else float(value) == record["value"]
    drifting = {r["window_index"] for r in results if r["kind"] == "data_drift" and r["drift"]}
    assert (3 in drifting) == (version == "B")


def test_the_fleet_lists_a_split_model_once_with_its_champions_last_window(
    split_model: SplitModel,
) -> None:
    fleet = Elements(split_model.pages.fleet())
    path = f"/ui/models/{quote(synthetic.MODEL, safe='')}"
    models = [a["href"] for a in fleet.find("a") if a["href"] == path]
    assert len(models) == 1
    windows = [a["href"] for a in fleet.find("a") if "/windows/" in (a["href"] or "")]
    assert windows == [f"{path}/windows/3?version=B"]


def test_a_window_page_says_where_each_features_excess_errors_concentrate(
    outcomes: Outcomes,
) -> None:
    store = storage.Store(storage.create(f"sqlite:///{outcomes.directory / 'db.sqlite'}"))
    records = [
        r
        for r in store.results()
        if r.model == "species" and r.window_index == 1 and r.kind == "error_attribution"
    ]
    assert [r.feature for r in records] == ["x"]
    (record,) = records
    assert record.status == "ok"
    assert record.bucket is not None
    # The share, from the raw rows: deciles of the reference's x, errors beyond its rates.
    reference = outcomes.reference["species"]
    window = outcomes.events["species"].filter(pl.col("ts") >= START + HOUR)
    edges = np.quantile(reference["x"].to_numpy(), np.arange(1, 10) / 10, method="inverted_cdf")

    def per_bucket(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        codes = np.searchsorted(edges, frame["x"].to_numpy(), side="right")
        wrong = (frame["prediction"] != frame["label"]).to_numpy()
        return np.bincount(codes, minlength=10), np.bincount(codes, wrong, minlength=10)

    (n_ref, e_ref), (n_win, e_win) = per_bucket(reference), per_bucket(window)
    excess = e_win - n_win * e_ref / n_ref
    top = int(np.argmax(excess))
    assert record.value == pytest.approx(excess[top] / excess.clip(min=0).sum(), rel=1e-9)
    html = outcomes.pages.window("species", 1)
    assert html is not None
    where = f"in {record.bucket}" if record.bucket.startswith("[") else record.bucket
    share = round(100 * record.value)
    expected = f"errors concentrated where x {where}: {share} % of the excess"
    assert escape(expected) in html
