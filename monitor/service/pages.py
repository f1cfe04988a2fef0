"""Evidence pages: what the daemon serves under ``/ui/`` and ``driftwarden report`` writes.

Each page reads stored windows, their result records, reference profiles and the alert
tables (``storage.evidence``), turns them into chart geometry (``charts``) and renders a
Jinja2 template with inline SVG: no JavaScript, nothing fetched, every value escaped.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from driftwarden.alerts.links import UI, incident_path, model_path, window_path
from driftwarden.core.records import ResultRecord
from driftwarden.core.times import Clock, format_time, wall_clock_ms
from driftwarden.detectors.fairness import FairnessSummary
from driftwarden.detectors.performance_binary import BinaryPerformanceSummary
from driftwarden.detectors.performance_multiclass import MulticlassPerformanceSummary
from driftwarden.detectors.performance_regression import (
    RegressionPerformanceSummary,
    regression_performance,
)
from driftwarden.monitor.service import charts
from driftwarden.monitor.storage import Store
from driftwarden.monitor.storage import evidence as stored
from driftwarden.monitor.storage.join_store import JoinStore
from driftwarden.monitor.windows.archive import unpack_header
from driftwarden.monitor.windows.outcomes import LabelSummary
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.summary import WindowSummary

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
"""The pages' Content-Security-Policy: inline styles and nothing else, from nowhere."""

DRIFT_KINDS = ("data_drift", "prediction_drift")
PERFORMANCE_KINDS = ("performance", "estimated_performance")
BUSINESS_KINDS = ("business_metric", "business_correlation")
PREDICTION = "prediction"
"""The name the pages give the prediction column's distribution."""
MAX_CACHED_WINDOWS = 20_000
"""Windows whose drift per feature the pages keep in memory (about 1 kB each at 100
features), the oldest read dropped first."""
HEAD_BYTES = 4096
"""Bytes of a stored summary read for its header (group counts): the header leads the
compressed stream, so a model page never inflates its windows' bins."""


@dataclass(frozen=True)
class Links:
    """Where pages point: the daemon's ``/ui/`` paths (``driftwarden.alerts.links``), or,
    in a report file, anchors inside it (``#`` and the id of the section)."""

    anchors: bool = False

    def fleet(self) -> str:
        return "#top" if self.anchors else f"{UI}/"

    def model(self, model: str, version: str | None = None) -> str:
        if self.anchors:
            return f"#model-{_slug(model)}"
        return model_path(model) + _version_query(version)

    def window(self, model: str, index: int, version: str | None = None) -> str:
        if self.anchors:
            return f"#window-{_slug(model)}-{index}"
        return window_path(model, index) + _version_query(version)

    def incident(self, incident_id: str) -> str:
        return f"#incident-{incident_id}" if self.anchors else incident_path(incident_id)


def _version_query(version: str | None) -> str:
    """The query naming one version of a model with split versions (none: the champion)."""
    return "" if version is None else f"?version={quote(version, safe='')}"


def _slug(model: str) -> str:
    """A model's name as an HTML id: a short digest (names may hold any character)."""
    return hashlib.sha256(model.encode()).hexdigest()[:12]


# -- what each page shows --------------------------------------------------------------------


@dataclass(frozen=True)
class WindowDrift:
    """One stored window's drift per feature, as a model page's heat map draws it: the
    statistic furthest toward its threshold over the threshold (NaN: no value) and whether
    any detector decided drift."""

    features: tuple[str, ...]
    ratios: np.ndarray
    drift: np.ndarray


@dataclass(frozen=True)
class FleetRow:
    model: str
    href: str
    window: stored.WindowMeta | None
    window_href: str
    age_ms: int | None
    stale: bool
    drifting: list[str]
    performance: list[ResultRecord]
    firing: int


@dataclass(frozen=True)
class IncidentRow:
    incident: stored.Incident
    href: str


@dataclass(frozen=True)
class FeatureView:
    """One feature (or the prediction) of a window: its chart, records and how far past its
    thresholds it is."""

    name: str
    kind: str
    chart: charts.BarChart | None
    records: list[ResultRecord]
    quality: list[ResultRecord]
    severity: float | None
    drift: bool


@dataclass(frozen=True)
class GroupRates:
    attribute: str
    chart: charts.BarChart


@dataclass(frozen=True)
class Confusion:
    """The labelled rows of a classifier's window: ``counts[actual, predicted]``."""

    classes: tuple[str, ...]
    counts: list[list[int]]


@dataclass(frozen=True)
class ErrorRow:
    """One error measure of a regression model's labelled rows, beside the reference's."""

    name: str
    window: float | None
    reference: float | None


@dataclass(frozen=True)
class Errors:
    """What a regression model's window page shows instead of a confusion matrix."""

    n_labeled: int
    rows: list[ErrorRow]


@dataclass(frozen=True)
class WindowView:
    meta: stored.WindowMeta
    model_href: str
    previous_href: str
    next_href: str
    features: list[FeatureView]
    performance: list[ResultRecord]
    fairness: list[ResultRecord]
    quality: list[ResultRecord]
    concept: list[ResultRecord]
    confusion: Confusion | None
    errors: Errors | None
    groups: list[GroupRates]
    missing_profile: bool
    importance: list[ResultRecord]
    impact: list[ResultRecord]
    error_attribution: list[ResultRecord]
    error_buckets: list[str]
    """Where the window's excess errors concentrate, a sentence per feature with a bucket,
    largest share first (from ``error_attribution``)."""
    model: str = ""
    """The model (``meta.model`` is a version's key when its versions are split)."""
    comparison: list[ResultRecord] = field(default_factory=list)
    """A challenger's ``version_comparison`` records."""
    business: list[ResultRecord] = field(default_factory=list)
    """``business_metric`` and ``business_correlation`` records."""


@dataclass(frozen=True)
class ModelView:
    model: str
    windows: list[stored.WindowMeta]
    window_hrefs: dict[int, str]
    heat_map: charts.HeatMap | None
    performance: list[charts.LineChart]
    fairness: list[charts.LineChart]
    concept: list[ResultRecord]
    incidents: list[IncidentRow]
    versions: list[VersionLink] = field(default_factory=list)


@dataclass(frozen=True)
class VersionLink:
    """One version of a model with split versions, in its page's version selector."""

    version: str | None
    href: str
    selected: bool


@dataclass(frozen=True)
class IncidentView:
    incident: stored.Incident
    model_href: str
    windows: list[tuple[int, str, list[ResultRecord]]]


@dataclass
class ModelReport:
    """What a report file holds of one model: its model page, window pages and incidents."""

    model: ModelView
    windows: list[WindowView] = field(default_factory=list)
    incidents: list[IncidentView] = field(default_factory=list)


# -- rendering --------------------------------------------------------------------------------


@functools.cache
def _environment(links: Links) -> Environment:
    """The templates, compiled once per process and kind of links (they are the templates'
    global: imported macros see no render context)."""
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["charts"] = charts
    environment.globals["links"] = links
    environment.filters["time"] = lambda ms: "—" if ms is None else format_time(ms)
    environment.filters["number"] = _number
    environment.filters["exact"] = lambda v: "" if v is None else repr(float(v))
    environment.filters["age"] = _age
    environment.filters["percent"] = lambda v: "—" if v is None else f"{v * 100:.2f}%"
    return environment


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4g}"


def _age(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "—"
    seconds = milliseconds / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


class Pages:
    """Renders the evidence pages from the daemon's database."""

    def __init__(self, store: Store, links: Links | None = None, clock: Clock = wall_clock_ms):
        self.store = store
        self.links = links or Links()
        self.clock = clock
        self._environment = _environment(self.links)
        self._profiles: dict[str, Profile | None] = {}
        self._attributes: dict[str, tuple[str, ...]] = {}
        self._drift: dict[tuple[str, int], tuple[stored.WindowMeta, WindowDrift]] = {}
        self._lock = threading.Lock()  # the server renders pages on several threads
        self._join = JoinStore(store.engine.dialect.name)

    def render(self, template: str, **values: Any) -> str:
        return self._environment.get_template(template).render(**values)

    # -- pages ----------------------------------------------------------------------------

    def fleet(self) -> str:
        with self.store.engine.connect() as connection:
            entries = stored.fleet(connection)
            incidents = stored.incidents(connection)[:50]
        now = self.clock()
        rows = []
        for entry in entries:
            meta = entry.last
            age = None if meta is None else now - meta.end
            length = 0 if meta is None else meta.end - meta.start
            rows.append(
                FleetRow(
                    model=entry.model,
                    href=self.links.model(entry.model),
                    window=meta,
                    window_href=(
                        ""
                        if meta is None
                        else self.links.window(entry.model, meta.index, entry.version)
                    ),
                    age_ms=age,
                    stale=age is not None and length > 0 and age > 2 * length,
                    drifting=sorted(
                        {r.subject for r in entry.records if r.kind in DRIFT_KINDS and r.drift}
                    ),
                    performance=[
                        r
                        for r in entry.records
                        if r.kind in PERFORMANCE_KINDS and r.value is not None
                    ],
                    firing=entry.firing,
                )
            )
        return self.render(
            "fleet.html",
            title="driftwarden: models",
            rows=rows,
            incidents=[IncidentRow(i, self.links.incident(i.id)) for i in incidents],
        )

    def model(self, model: str, last: int = 500, version: str | None = None) -> str | None:
        """A model's page; for a model with split versions, one version's (by default its
        champion's) with links to the others'."""
        with self.store.engine.connect() as connection:
            lane = _lane(connection, model, version)
            if lane is None:
                return None
            key, shown, versions = lane
            history = stored.history(connection, key, last)
            incidents = stored.incidents(connection, model)
        if not history.windows:
            return None
        links = [
            VersionLink(v, self.links.model(model, v), v == shown)
            for v in sorted(versions, key=lambda v: (v is None, v or ""))
        ]
        view = self.model_view(history, incidents, model, shown, links)
        title = f"{model}: windows" if not versions else f"{model} version {shown}: windows"
        return self.render("model.html", title=title, view=view)

    def window(self, model: str, index: int, version: str | None = None) -> str | None:
        view = self.window_view(model, index, version)
        if view is None:
            return None
        return self.render("window.html", title=f"{model}: window {index}", view=view)

    def window_by(self, model: str, end: int) -> int | None:
        """The index of the model's last window that ended by ``end`` (epoch ms): the window
        an alert judged, found from the time its metrics carry."""
        with self.store.engine.connect() as connection:
            lane = _lane(connection, model, None)  # split versions: the champion's
            return None if lane is None else stored.last_window_by(connection, lane[0], end)

    def incident(self, incident_id: str) -> str | None:
        view = self.incident_view(incident_id)
        if view is None:
            return None
        return self.render("incident.html", title=f"incident {incident_id[:12]}", view=view)

    def report(
        self, histories: Iterable[stored.ModelHistory], max_windows: int | None = None
    ) -> str:
        """One self-contained file: per model, the model over its history's windows, its
        window pages, and the incidents that overlap them (render with
        ``Links(anchors=True)``). With ``max_windows``, only that many window pages per
        model: the latest windows with drift first, then the latest others."""
        reports = [
            self._model_report(history, max_windows) for history in histories if history.windows
        ]
        names = ", ".join(report.model.model for report in reports) or "no windows"
        return self.render(
            "report.html",
            title=f"driftwarden report: {names}",
            reports=reports,
            written=format_time(self.clock()),
        )

    def _model_report(self, history: stored.ModelHistory, max_windows: int | None) -> ModelReport:
        with self.store.engine.connect() as connection:
            incidents = stored.incidents(connection, history.model)
        first, last = history.windows[0], history.windows[-1]
        incidents = [
            i
            for i in incidents
            if i.started_at < last.end + (last.end - last.start)
            and (i.ended_at is None or i.ended_at >= first.start)
        ]
        report = ModelReport(self.model_view(history, incidents))
        drift = self.window_drift(history)
        drifting = {index for index, window in drift.items() if window.drift.any()}
        for meta in _detailed(history.windows, drifting, max_windows):
            view = self.window_view(history.model, meta.index)
            if view is not None:
                report.windows.append(view)
        for incident in incidents:
            view = self.incident_view(incident.id)
            if view is not None:
                report.incidents.append(view)
        return report

    # -- views ----------------------------------------------------------------------------

    def model_view(
        self,
        history: stored.ModelHistory,
        incidents: Iterable[stored.Incident],
        model: str | None = None,
        version: str | None = None,
        versions: list[VersionLink] | None = None,
    ) -> ModelView:
        """The model page of ``history`` (windows stored under ``history.model``: for a
        version of a model with split versions, ``model`` and ``version`` name it)."""
        model = model or history.model
        indices = [w.index for w in history.windows]
        hrefs = {i: self.links.window(model, i, version) for i in indices}
        realized: dict[str, dict[int, float]] = defaultdict(dict)
        estimated: dict[str, dict[int, float]] = defaultdict(dict)
        thresholds: dict[str, float] = {}
        # per (attribute, "difference" or "ratio"): metric -> window -> value, and thresholds
        fairness: dict[tuple[str, str], dict[str, dict[int, float]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        fairness_thresholds: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        concept: list[ResultRecord] = []
        for record in history.records:
            if record.kind in PERFORMANCE_KINDS and record.metric:
                if record.group_attribute is None and record.value is not None:
                    target = realized if record.kind == "performance" else estimated
                    target[record.metric][record.window_index] = record.value
                    if record.threshold is not None and (
                        record.kind == "performance" or record.metric not in thresholds
                    ):
                        thresholds[record.metric] = record.threshold
            elif record.kind == "fairness" and record.value is not None:
                chart = (
                    record.group_attribute or "(all)",
                    "difference" if record.direction == "above" else "ratio",
                )
                name = record.metric or record.detector
                fairness[chart][name][record.window_index] = record.value
                if record.threshold is not None:
                    fairness_thresholds[chart][name] = record.threshold
            elif record.kind == "concept_drift" and record.drift:
                concept.append(record)
        marks = {r.window_index: f"concept drift: {r.subject} ({r.detector})" for r in concept}
        incident_rows = [IncidentRow(i, self.links.incident(i.id)) for i in incidents]
        spans = list(self._spans(history.windows, incident_rows))
        performance = [
            charts.line_chart(
                f"{metric}: realized and estimated",
                metric,
                indices,
                {
                    name: points
                    for name, points in (
                        (f"{metric} (realized)", realized.get(metric, {})),
                        (f"{metric} (estimated)", estimated.get(metric, {})),
                    )
                    if points
                },
                {metric: thresholds[metric]} if metric in thresholds else {},
                marks,
                spans,
            )
            for metric in sorted(set(realized) | set(estimated))
        ]
        fairness_charts = _fairness_charts(
            self._selection_rates(history), fairness, fairness_thresholds, indices, marks, spans
        )
        cells, pool = _pooled(history.windows, self.window_drift(history), charts.MAX_COLUMNS)
        heat = charts.heat_map(indices, cells, hrefs, pool) if cells else None
        return ModelView(
            model, history.windows, hrefs, heat, performance, fairness_charts, concept,
            incident_rows, versions or [],
        )  # fmt: skip

    def window_drift(self, history: stored.ModelHistory) -> dict[int, WindowDrift]:
        """Each window's drift per feature. Kept in memory per window while its stored row
        is unchanged (its results are written with it), so a model page reads only the
        drift of windows closed since it was last drawn."""
        model = history.model
        with self._lock:
            missing = [
                meta
                for meta in history.windows
                if self._drift.get((model, meta.index), (None,))[0] != meta
            ]
        if missing:
            with self.store.engine.connect() as connection:
                cells = stored.drift_cells(connection, model, missing[0].index, missing[-1].index)
            found: dict[int, list[tuple[str, float | None, bool]]] = defaultdict(list)
            for index, feature, ratio, drift in cells:
                found[index].append((feature, ratio, drift))
            read = {meta.index: _window_drift(found.get(meta.index, [])) for meta in missing}
            with self._lock:
                for meta in missing:
                    self._drift.pop((model, meta.index), None)  # re-inserted as the newest
                    self._drift[model, meta.index] = (meta, read[meta.index])
                while len(self._drift) > MAX_CACHED_WINDOWS:
                    self._drift.pop(next(iter(self._drift)))
        with self._lock:
            kept = {meta.index: self._drift.get((model, meta.index)) for meta in history.windows}
        return {index: entry[1] for index, entry in kept.items() if entry is not None}

    def _selection_rates(
        self, history: stored.ModelHistory
    ) -> dict[str, dict[str, dict[int, float]]]:
        """Per group attribute, group and window: the share of the group's predictions that
        are positive, from the headers of the windows' stored summaries."""
        indices = [w.index for w in history.windows]
        with self.store.engine.connect() as connection:
            heads = stored.summary_heads(connection, history.model, indices, HEAD_BYTES)
            headers = {index: unpack_header(head) for index, head in heads.items()}
            longer = [index for index, header in headers.items() if header is None]
            if longer:  # a header past HEAD_BYTES (many groups): read those summaries whole
                for index, data in stored.summary_heads(
                    connection, history.model, longer, None
                ).items():
                    headers[index] = unpack_header(data)
        rates: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
        for meta in history.windows:
            header, attributes = headers.get(meta.index), self.group_attributes(meta.reference_id)
            if header is None:
                continue
            for attribute, state in zip(attributes, header["selection"], strict=False):
                selection = FairnessSummary.from_state(state)
                for group, n, selected in zip(
                    selection.groups, selection.n, selection.selected, strict=True
                ):
                    if n > 0:
                        rates[attribute][group][meta.index] = float(selected / n)
        return {attribute: dict(groups) for attribute, groups in rates.items()}

    def _spans(
        self, windows: list[stored.WindowMeta], incidents: list[IncidentRow]
    ) -> Iterable[tuple[int, int, str, str]]:
        ends = np.array([w.end for w in windows])
        for row in incidents:
            start, end = row.incident.started_at, row.incident.ended_at
            first = int(np.searchsorted(ends, start, side="left"))
            last = len(windows) - 1 if end is None else int(np.searchsorted(ends, end, "left"))
            first, last = min(first, len(windows) - 1), min(last, len(windows) - 1)
            label = f"incident {row.incident.id[:8]}: {', '.join(row.incident.rules)}"
            yield windows[first].index, windows[max(first, last)].index, label, row.href

    def window_view(self, model: str, index: int, version: str | None = None) -> WindowView | None:
        """One window's page; for a model with split versions, one version's window (by
        default its champion's)."""
        with self.store.engine.connect() as connection:
            lane = _lane(connection, model, version)
            if lane is None:
                return None
            key, version, _ = lane
            window = stored.window(connection, key, index)
            if window is None:
                return None
            meta = window.meta
            labels = self._join.load_range(connection, key, meta.start, meta.end)
        summary = WindowSummary.from_bytes(window.summary)
        profile = self.profile(meta.reference_id)
        by_subject: dict[str, list[ResultRecord]] = defaultdict(list)
        quality_of: dict[str, list[ResultRecord]] = defaultdict(list)
        performance, fairness, quality, concept, importance, impact = [], [], [], [], [], []
        comparison = []
        error_buckets = []
        business = []
        for record in window.records:
            if record.kind in DRIFT_KINDS:
                by_subject[record.feature or PREDICTION].append(record)
            elif record.kind == "data_quality" and record.feature:
                quality_of[record.feature].append(record)
            elif record.kind == "data_quality":
                quality.append(record)
            elif record.kind in PERFORMANCE_KINDS:
                performance.append(record)
            elif record.kind == "fairness":
                fairness.append(record)
            elif record.kind == "concept_drift":
                concept.append(record)
            elif record.kind == "feature_importance":
                importance.append(record)
            elif record.kind == "drift_impact":
                impact.append(record)
            elif record.kind == "version_comparison":
                comparison.append(record)
            elif record.kind == "error_attribution":
                error_buckets.append(record)
            elif record.kind in BUSINESS_KINDS:
                business.append(record)
        drawings = {} if profile is None else _distributions(profile, summary)
        names = list(dict.fromkeys([*drawings, *by_subject, *quality_of]))
        features = []
        for name in names:
            records = by_subject.get(name, [])
            ratios = [
                r
                for r in (charts.severity(x.value, x.threshold, x.direction) for x in records)
                if r is not None
            ]
            features.append(
                FeatureView(
                    name=name,
                    kind=drawings[name][0] if name in drawings else "",
                    chart=drawings[name][1] if name in drawings else None,
                    records=records,
                    quality=quality_of.get(name, []),
                    severity=max(ratios) if ratios else None,
                    drift=any(r.drift for r in records),
                )
            )
        share = {r.feature: r.value or 0.0 for r in impact if r.feature is not None}
        features.sort(
            key=lambda f: (
                not f.drift,
                -share.get(f.name, 0.0),
                -(f.severity if f.severity is not None else -1),
            )
        )
        label_summary = _labels(profile, labels)
        labelled = None if label_summary is None else label_summary.performance
        errors = None
        if profile is not None and isinstance(labelled, RegressionPerformanceSummary):
            errors = _errors(labelled, profile)
        groups = []
        if profile is not None:
            for attribute, selection in zip(profile.groups, summary.selection, strict=False):
                if len(selection.groups):
                    rates = np.divide(
                        selection.selected, selection.n, out=np.zeros(len(selection.n)),
                        where=selection.n > 0,
                    )  # fmt: skip
                    chart = charts.rate_bars(attribute, selection.groups, rates)
                    groups.append(GroupRates(attribute, chart))
        return WindowView(
            meta=meta,
            model_href=self.links.model(model, version),
            previous_href=self.links.window(model, index - 1, version) if index > 0 else "",
            next_href=self.links.window(model, index + 1, version),
            features=features,
            performance=performance,
            fairness=fairness,
            quality=quality,
            concept=concept,
            confusion=_confusion(labelled),
            errors=errors,
            groups=groups,
            missing_profile=profile is None,
            importance=sorted(importance, key=_most_important_first),
            impact=sorted(impact, key=lambda r: (r.feature is not None, -(r.value or 0.0))),
            model=model,
            comparison=comparison,
            business=business,
            error_attribution=error_buckets,
            error_buckets=[
                error_sentence(r)
                for r in sorted(error_buckets, key=lambda r: -(r.value or 0.0))
                if r.value is not None
            ],
        )

    def incident_view(self, incident_id: str) -> IncidentView | None:
        with self.store.engine.connect() as connection:
            incident = stored.incident(connection, incident_id)
            if incident is None:
                return None
            # open: anchored on its alerts' latest window; else on its first notification
            anchor = (
                incident.started_at if incident.evidence_end is None else incident.evidence_end + 1
            )
            until = incident.ended_at
            drifting = stored.drifting_windows(
                connection, incident.model, anchor - LOOKBACK_MS, until
            )
        windows = [
            (index, self.links.window(incident.model, index), drifting[index])
            for index in _incident_windows(drifting, anchor)
        ]
        return IncidentView(incident, self.links.model(incident.model), windows)

    def group_attributes(self, reference_id: str) -> tuple[str, ...]:
        """The group attributes of a reference, in the order summaries hold them: from the
        profile's header (a model page needs no fine bins), cached."""
        if reference_id not in self._attributes:
            profile = self._profiles.get(reference_id)
            if profile is not None:
                self._attributes[reference_id] = tuple(profile.groups)
            else:
                data = self.store.profile(reference_id)
                header = None if data is None else unpack_header(data)
                self._attributes[reference_id] = tuple(header["groups"]) if header else ()
        return self._attributes[reference_id]

    def profile(self, reference_id: str) -> Profile | None:
        """The reference profile (cached: profiles never change once stored)."""
        if reference_id not in self._profiles:
            data = self.store.profile(reference_id)
            self._profiles[reference_id] = None if data is None else Profile.from_bytes(data)
        return self._profiles[reference_id]


def _lane(
    connection: Any, model: str, version: str | None
) -> tuple[str, str | None, list[str | None]] | None:
    """Where the windows of ``model`` (of ``version`` when its versions are split: by
    default its champion) are stored, the version shown and the model's versions;
    ``None`` when there is no such version."""
    versions = stored.versions(connection, model)
    if not versions:
        return None if version is not None else (model, None, [])
    if version is None:
        leading = stored.champion(connection, model)
        version = leading if leading in versions else min(versions, key=lambda v: v or "")
    if version not in versions:
        return None
    return versions[version], version, list(versions)


def _fairness_charts(
    rates: dict[str, dict[str, dict[int, float]]],
    fairness: dict[tuple[str, str], dict[str, dict[int, float]]],
    thresholds: dict[tuple[str, str], dict[str, float]],
    indices: list[int],
    marks: dict[int, str],
    spans: list[tuple[int, int, str, str]],
) -> list[charts.LineChart]:
    """Per group attribute: each group's selection rate per window, then the fairness
    metrics between groups with their thresholds (differences and ratios apart)."""
    drawn = []
    for attribute in sorted(set(rates) | {attribute for attribute, _ in fairness}):
        if attribute in rates:
            drawn.append(
                charts.line_chart(
                    f"selection rate by {attribute}",
                    "selection rate",
                    indices,
                    rates[attribute],
                    {},
                    marks,
                    spans,
                )
            )
        for form in ("difference", "ratio"):
            if (attribute, form) in fairness:
                drawn.append(
                    charts.line_chart(
                        f"fairness by {attribute}: {form}s between groups",
                        f"{form} between groups",
                        indices,
                        dict(fairness[attribute, form]),
                        thresholds.get((attribute, form), {}),
                        marks,
                        spans,
                    )
                )
    return drawn


def _detailed(
    windows: list[stored.WindowMeta], drifting: set[int], limit: int | None
) -> list[stored.WindowMeta]:
    """The windows a report draws pages of: all, or ``limit`` with drifting ones first."""
    if limit is None or len(windows) <= limit:
        return windows
    ranked = sorted(windows, key=lambda w: (w.index in drifting, w.index), reverse=True)
    return sorted(ranked[:limit], key=lambda w: w.index)


def _window_drift(rows: list[tuple[str, float | None, bool]]) -> WindowDrift:
    """A window's ``(feature, ratio, drift)`` rows as arrays."""
    return WindowDrift(
        tuple(feature for feature, _, _ in rows),
        np.array([np.nan if ratio is None else ratio for _, ratio, _ in rows], dtype=float),
        np.array([drift for _, _, drift in rows], dtype=bool),
    )


def _pooled(
    windows: list[stored.WindowMeta], drift: dict[int, WindowDrift], columns: int
) -> tuple[list[tuple[int, str, float | None, bool]], int]:
    """The heat map's cells when consecutive windows pool into at most ``columns``: per
    group of ``pool`` window indices and feature, ``(the group's first index, feature, the
    largest ratio or None, any drift)``; and ``pool``."""
    low, high = windows[0].index, windows[-1].index
    pool = max(1, -(-(high - low + 1) // columns))
    names: dict[str, int] = {}
    groups, features, ratios, flags = [], [], [], []
    for meta in windows:
        window = drift.get(meta.index)
        if window is None or not window.features:
            continue
        groups.append(np.full(len(window.features), (meta.index - low) // pool))
        features.append(np.array([names.setdefault(f, len(names)) for f in window.features]))
        ratios.append(window.ratios)
        flags.append(window.drift)
    if not names:
        return [], pool
    at = (np.concatenate(groups), np.concatenate(features))
    shape = (int(at[0].max()) + 1, len(names))
    worst = np.full(shape, -np.inf)
    np.fmax.at(worst, at, np.concatenate(ratios))
    drifted = np.zeros(shape, dtype=bool)
    np.logical_or.at(drifted, at, np.concatenate(flags))
    present = np.zeros(shape, dtype=bool)
    present[at] = True
    ordered = list(names)
    return [
        (
            low + int(g) * pool,
            ordered[f],
            None if worst[g, f] == -np.inf else float(worst[g, f]),
            bool(drifted[g, f]),
        )
        for g, f in zip(*np.nonzero(present), strict=True)
    ], pool


LOOKBACK_MS = 7 * 86_400_000
"""How far before an incident's first notification its opening drift streak is looked for."""


def _incident_windows(drifting: dict[int, list[ResultRecord]], started_at: int) -> list[int]:
    """The windows of an incident: those that drifted after its first notification, and the
    unbroken run of drifting windows that ended before it (the run that opened it)."""
    before = sorted(i for i, records in drifting.items() if records[0].window_end < started_at)
    after = sorted(set(drifting) - set(before))
    run: list[int] = []
    for index in reversed(before):
        if run and index != run[-1] - 1:
            break
        run.append(index)
    return [*reversed(run), *after]


def _distributions(
    profile: Profile, summary: WindowSummary
) -> dict[str, tuple[str, charts.BarChart]]:
    """Each feature's chart (and the prediction's), by name."""
    drawn: dict[str, tuple[str, charts.BarChart]] = {}
    reference, window = profile.numeric_reference.counts, summary.numeric.counts
    for f, name in enumerate(profile.numeric):
        chart = charts.numeric_histogram(name, profile.edges[f], reference[f], window[f])
        drawn[name] = ("numeric", chart)
    reference, window = profile.categorical_reference.counts, summary.categorical.counts
    width = profile.vocabulary_width
    for c, name in enumerate(profile.categorical):
        top = profile.vocabularies[c].top
        columns = [*range(len(top)), width, width + 1]
        chart = charts.categorical_bars(name, top, reference[c, columns], window[c, columns])
        drawn[name] = ("categorical", chart)
    if profile.prediction_reference is not None and summary.prediction_numeric is not None:
        chart = charts.numeric_histogram(
            PREDICTION,
            profile.prediction_edges[0],
            profile.prediction_reference.counts[0],
            summary.prediction_numeric.counts[0],
        )
        drawn[PREDICTION] = ("numeric", chart)
    elif (
        profile.prediction_categorical_reference is not None
        and summary.prediction_categorical is not None
        and profile.prediction_vocabulary is not None
    ):
        top = profile.prediction_vocabulary.top
        counts_r = profile.prediction_categorical_reference.counts[0]
        counts_w = summary.prediction_categorical.counts[0]
        columns = [*range(len(top)), len(counts_r) - 2, len(counts_r) - 1]
        chart = charts.categorical_bars(PREDICTION, top, counts_r[columns], counts_w[columns])
        drawn[PREDICTION] = ("categorical", chart)
    return drawn


def _confusion(performance: object) -> Confusion | None:
    """The confusion matrix of a classifier's labelled rows (positive class first)."""
    if isinstance(performance, BinaryPerformanceSummary):
        p = performance
        counts = [[int(p.tp), int(p.fn)], [int(p.fp), int(p.tn)]]
        return Confusion(("positive", "negative"), counts)
    if isinstance(performance, MulticlassPerformanceSummary):
        return Confusion(performance.classes, performance.confusion.tolist())
    return None


def _errors(performance: RegressionPerformanceSummary, profile: Profile) -> Errors:
    """Mean label, MAE, RMSE, MAPE and R² of the labelled rows, at any count (the records
    wait for ``labels.min_labeled``), beside the reference's."""
    measured = regression_performance(performance, {}, min_labeled=1)
    reference = profile.outcomes.reference_performance
    n = performance.n
    rows = [
        ErrorRow(
            "mean label",
            performance.shift + performance.y / n if n else None,
            profile.outcomes.label_shift if reference else None,
        )
    ]
    rows += [
        ErrorRow(name.upper() if name != "r2" else "R²", measured[name].value, reference.get(name))
        for name in ("mae", "rmse", "mape", "r2")
    ]
    return Errors(n, rows)


def _labels(profile: Profile | None, panes: dict[int, bytes]) -> LabelSummary | None:
    if profile is None or not panes:
        return None
    summaries = {pane: LabelSummary.from_bytes(data) for pane, data in panes.items()}
    summary = LabelSummary.of_panes(profile.outcomes, profile.task, summaries)
    return summary if summary.n_labeled > 0 else None


def _most_important_first(record: ResultRecord) -> tuple[bool, float]:
    """Flagged records first, then by the reference's importance, largest first."""
    return (not record.drift, -(record.reference_value or 0.0))


def error_sentence(record: ResultRecord) -> str:
    """An ``error_attribution`` record as people read it: "errors concentrated where
    income >= 84000: 41 % of the excess (reference rate there 0.094)"."""
    bucket = record.bucket or ""
    where = f"in {bucket}" if bucket.startswith("[") else bucket
    share = round(100 * (record.value or 0.0))
    text = f"errors concentrated where {record.feature} {where}: {share} % of the excess"
    if record.reference_value is not None:
        text += f" (reference rate there {record.reference_value:.3g})"
    return text
