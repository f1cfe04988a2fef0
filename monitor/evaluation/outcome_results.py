"""A closed window's realized and estimated performance, its fairness and its business
metrics, from the label summary of its panes and the scores of its predictions."""

from __future__ import annotations

from typing import Any

import numpy as np

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.detectors import (
    CBPE,
    CBPE_METRICS,
    PERFORMANCE_METRICS,
    FairnessSummary,
    fairness_metrics,
)
from driftwarden.detectors.metric_results import direction_of
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.evaluation.business_results import business_records
from driftwarden.monitor.evaluation.error_results import error_records
from driftwarden.monitor.evaluation.window_results import gate
from driftwarden.monitor.windows.outcomes import LabelSummary, task_performance
from driftwarden.monitor.windows.profile import Profile
from driftwarden.monitor.windows.summary import WindowSummary


def outcome_records(
    profile: Profile,
    config: ModelConfig,
    window: WindowInfo,
    summary: WindowSummary,
    labels: LabelSummary,
) -> list[ResultRecord]:
    """Realized and estimated performance and fairness of one window."""
    records = realized_records(profile, config, window, labels, summary.n_events)
    enough = summary.n_events >= config.window.min_samples
    records += estimated_records(profile, config, window, summary)
    for attribute, selection, labeled in zip(
        profile.groups, summary.selection, labels.fairness, strict=False
    ):
        results = fairness_metrics(
            combine_fairness(selection, labeled),
            config.fairness.thresholds,
            min_group_size=config.fairness.min_group_size,
            n_window=summary.n_events,
        )
        records += [
            ResultRecord.of(
                window,
                "fairness",
                "fairness",
                gate(result, enough),
                metric=metric,
                group_attribute=attribute,
            )
            for metric, result in results.items()
        ]
    records += business_records(config, window, labels.business, summary.n_events)
    return records + error_records(profile, config, window, labels)


def realized_records(
    profile: Profile,
    config: ModelConfig,
    window: WindowInfo,
    labels: LabelSummary,
    n_window: int,
) -> list[ResultRecord]:
    """Realized performance of one window of ``n_window`` events, from its labels."""
    task = profile.task
    thresholds = thresholds_for(profile, config, PERFORMANCE_METRICS[task])
    realized = task_performance(
        task,
        labels.performance,
        thresholds,
        min_labeled=config.labels.min_labeled,
        n_window=n_window,
    )
    return [
        ResultRecord.of(window, "performance", "realized", result, metric=metric)
        for metric, result in realized.items()
    ]


def estimated_records(
    profile: Profile, config: ModelConfig, window: WindowInfo, summary: WindowSummary
) -> list[ResultRecord]:
    """Estimated performance (CBPE) of one window, from its scores alone (none when
    disabled or for tasks CBPE does not estimate)."""
    outcomes = profile.outcomes
    if not config.performance.estimated or outcomes.cbpe is None or summary.scores is None:
        return []
    thresholds = thresholds_for(profile, config, PERFORMANCE_METRICS[profile.task])
    estimated = CBPE.from_state(outcomes.cbpe).estimate(
        summary.scores,
        {m: t for m, t in thresholds.items() if m in CBPE_METRICS},
        min_samples=config.window.min_samples,
        n_window=summary.n_events,
    )
    return [
        ResultRecord.of(window, "estimated_performance", "cbpe", result, metric=metric)
        for metric, result in estimated.items()
    ]


def combine_fairness(selection: FairnessSummary, labeled: FairnessSummary) -> FairnessSummary:
    """Group sizes and selections from the predictions, confusion counts from the labels."""
    groups = tuple(sorted(set(selection.groups) | set(labeled.groups)))
    index = {group: i for i, group in enumerate(groups)}

    def spread(summary: FairnessSummary, name: str) -> np.ndarray:
        out = np.zeros(len(groups), dtype=np.int64)
        out[[index[g] for g in summary.groups]] = getattr(summary, name)
        return out

    return FairnessSummary(
        groups=groups,
        n=spread(selection, "n"),
        selected=spread(selection, "selected"),
        tp=spread(labeled, "tp"),
        fp=spread(labeled, "fp"),
        tn=spread(labeled, "tn"),
        fn=spread(labeled, "fn"),
    )


def thresholds_for(profile: Any, config: ModelConfig, metrics: tuple[str, ...]) -> dict[str, float]:
    """Performance thresholds: configured ones (per-class recalls included), else the
    reference's value moved by ``tolerance`` in the metric's bad direction."""
    out: dict[str, float] = {}
    reference = profile.outcomes.reference_performance
    configured = config.performance.thresholds
    per_class = [metric for metric in configured if metric.startswith("recall_")]
    for metric in (*metrics, *per_class):
        if metric in configured:
            out[metric] = configured[metric]
        elif metric in reference:
            step = config.performance.tolerance
            out[metric] = (
                reference[metric] - step
                if direction_of(metric) == "below"
                else (reference[metric] + step)
            )
    return out
