"""Evidence pages: what the daemon serves under ``/ui/`` and ``driftwarden report`` writes.

Each page reads stored windows, their result records, reference profiles and the alert
tables (``storage.evidence``), turns them into chart geometry (``charts``) and renders a
Jinja2 template with inline SVG: no JavaScript, nothing fetched, every value escaped.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from driftwarden.alerts.links import UI, incident_path, model_path, window_path
from driftwarden.core.records import ResultRecord
from driftwarden.core.times import Clock, format_time, wall_clock_ms
from driftwarden.detectors.performance_binary import BinaryPerformanceSummary
from driftwarden.monitor.service import charts
from driftwarden.monitor.storage import Store
from driftwarden.monitor.storage import evidence as stored
from driftwarden.monitor.storage.join_store import JoinStore
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
PREDICTION = "prediction"
"""The name the pages give the prediction column's distribution."""


@dataclass(frozen=True)
class Links:
    """Where pages point: the daemon's ``/ui/`` paths (``driftwarden.alerts.links``), or,
    in a report file, anchors inside it (``#`` and the id of the section)."""

    anchors: bool = False

    def fleet(self) -> str:
        return "#top" if self.anchors else f"{UI}/"

    def model(self, model: str) -> str:
        return f"#model-{_slug(model)}" if self.anchors else model_path(model)

    def window(self, model: str, index: int) -> str:
        return f"#window-{_slug(model)}-{index}" if self.anchors else window_path(model, index)

    def incident(self, incident_id: str) -> str:
        return f"#incident-{incident_id}" if self.anchors else incident_path(incident_id)


def _slug(model: str) -> str:
    """A model's name as an HTML id: a short digest (names may hold any character)."""
    return hashlib.sha256(model.encode()).hexdigest()[:12]


# -- what each page shows --------------------------------------------------------------------


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
    tp: int
    fp: int
    tn: int
    fn: int


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
    groups: list[GroupRates]
    missing_profile: bool
    importance: list[ResultRecord]
    impact: list[ResultRecord]


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


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["charts"] = charts
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
        self._environment = _environment()
        self._environment.globals["links"] = self.links
        self._profiles: dict[str, Profile | None] = {}
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
                    window_href="" if meta is None else self.links.window(entry.model, meta.index),
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

    def model(self, model: str, last: int = 500) -> str | None:
        with self.store.engine.connect() as connection:
            history = stored.history(connection, model, last, charts.MAX_COLUMNS)
            incidents = stored.incidents(connection, model)
        if not history.windows:
            return None
        view = self.model_view(history, incidents)
        return self.render("model.html", title=f"{model}: windows", view=view)

    def window(self, model: str, index: int) -> str | None:
        view = self.window_view(model, index)
        if view is None:
            return None
        return self.render("window.html", title=f"{model}: window {index}", view=view)

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
        for meta in _detailed(history, max_windows):
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
        self, history: stored.ModelHistory, incidents: Iterable[stored.Incident]
    ) -> ModelView:
        model = history.model
        indices = [w.index for w in history.windows]
        hrefs = {i: self.links.window(model, i) for i in indices}
        realized: dict[str, dict[int, float]] = defaultdict(dict)
        estimated: dict[str, dict[int, float]] = defaultdict(dict)
        thresholds: dict[str, float] = {}
        fairness: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
        fairness_thresholds: dict[str, dict[str, float]] = defaultdict(dict)
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
                attribute = record.group_attribute or "(all)"
                name = record.metric or record.detector
                fairness[attribute][name][record.window_index] = record.value
                if record.threshold is not None:
                    fairness_thresholds[attribute][name] = record.threshold
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
        fairness_charts = [
            charts.line_chart(
                f"fairness by {attribute}",
                "difference or ratio between groups",
                indices,
                dict(series),
                fairness_thresholds[attribute],
                marks,
                spans,
            )
            for attribute, series in sorted(fairness.items())
        ]
        heat = (
            charts.heat_map(indices, history.drift, hrefs, history.pool) if history.drift else None
        )
        return ModelView(
            model, history.windows, hrefs, heat, performance, fairness_charts, concept,
            incident_rows,
        )  # fmt: skip

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

    def window_view(self, model: str, index: int) -> WindowView | None:
        with self.store.engine.connect() as connection:
            window = stored.window(connection, model, index)
            if window is None:
                return None
            meta = window.meta
            labels = self._join.load_range(connection, model, meta.start, meta.end)
        summary = WindowSummary.from_bytes(window.summary)
        profile = self.profile(meta.reference_id)
        by_subject: dict[str, list[ResultRecord]] = defaultdict(list)
        quality_of: dict[str, list[ResultRecord]] = defaultdict(list)
        performance, fairness, quality, concept, importance, impact = [], [], [], [], [], []
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
        confusion = None
        if label_summary is not None and isinstance(
            label_summary.performance, BinaryPerformanceSummary
        ):
            p = label_summary.performance
            confusion = Confusion(int(p.tp), int(p.fp), int(p.tn), int(p.fn))
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
            model_href=self.links.model(model),
            previous_href=self.links.window(model, index - 1) if index > 0 else "",
            next_href=self.links.window(model, index + 1),
            features=features,
            performance=performance,
            fairness=fairness,
            quality=quality,
            concept=concept,
            confusion=confusion,
            groups=groups,
            missing_profile=profile is None,
            importance=sorted(importance, key=_most_important_first),
            impact=sorted(impact, key=lambda r: (r.feature is not None, -(r.value or 0.0))),
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

    def profile(self, reference_id: str) -> Profile | None:
        """The reference profile (cached: profiles never change once stored)."""
        if reference_id not in self._profiles:
            data = self.store.profile(reference_id)
            self._profiles[reference_id] = None if data is None else Profile.from_bytes(data)
        return self._profiles[reference_id]


def _detailed(history: stored.ModelHistory, limit: int | None) -> list[stored.WindowMeta]:
    """The windows a report draws pages of: all, or ``limit`` with drifting ones first."""
    if limit is None or len(history.windows) <= limit:
        return history.windows
    drifting = {start for start, _, _, drift in history.drift if drift}
    low, pool = history.windows[0].index, history.pool

    def drifted(window: stored.WindowMeta) -> bool:
        return low + (window.index - low) // pool * pool in drifting

    ranked = sorted(history.windows, key=lambda w: (drifted(w), w.index), reverse=True)
    return sorted(ranked[:limit], key=lambda w: w.index)


LOOKBACK_MS = 7 * 86_400_000
"""How far before an incident's first notification its opening drift streak is looked for."""


def _incident_windows(drifting: dict[int, list[ResultRecord]], started_at: int) -> list[int]:
    """The windows of an incident: those that drifted after its first notification, and the
    unbroken run of drifting windows that ended before it (the run that opened it)."""
    before = sorted(i for i, records in drifting.items() if records[0].window_end < started_at)
    after = sorted(i for i in drifting if i not in set(before))
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


def _labels(profile: Profile | None, panes: dict[int, bytes]) -> LabelSummary | None:
    if profile is None or not panes:
        return None
    summary = LabelSummary.empty(profile.outcomes, profile.task)
    for pane in sorted(panes):
        summary = summary.merge(LabelSummary.from_bytes(panes[pane]))
    return summary if summary.n_labeled > 0 else None


def _most_important_first(record: ResultRecord) -> tuple[bool, float]:
    """Flagged records first, then by the reference's importance, largest first."""
    return (not record.drift, -(record.reference_value or 0.0))
