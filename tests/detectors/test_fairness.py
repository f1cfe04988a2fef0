"""Fairness from per-group counts against Fairlearn; small groups, groups without positives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score

from driftwarden.detectors.fairness import (
    FAIRNESS_METRICS,
    FairnessSummary,
    fairness_metrics,
    group_stats,
)
from driftwarden.detectors.intervals import wilson_interval


def _rows(seed: int, n: int = 20_000, groups: int = 5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    names = np.array([f"g{i}" for i in range(groups)])
    group = names[rng.choice(groups, n, p=rng.dirichlet(np.full(groups, 5.0)))]
    bias = rng.uniform(-0.15, 0.15, groups)[np.searchsorted(names, group)]
    y = rng.random(n) < 0.4
    pred = rng.random(n) < np.clip(0.3 + 0.4 * y + bias, 0, 1)
    return group, y, pred


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_fairlearn(seed) -> None:
    group, y, pred = _rows(seed, 5000)
    results = fairness_metrics(FairnessSummary.from_arrays(group, pred, y), {})
    kw = {"sensitive_features": group}
    expected = {
        "demographic_parity_difference": demographic_parity_difference(y, pred, **kw),
        "demographic_parity_ratio": demographic_parity_ratio(y, pred, **kw),
        "equal_opportunity_difference": equal_opportunity_difference(y, pred, **kw),
        "equalized_odds_difference": equalized_odds_difference(y, pred, **kw),
        "disparate_impact": demographic_parity_ratio(y, pred, **kw),
    }
    assert set(results) == set(FAIRNESS_METRICS)
    for metric, value in expected.items():
        assert results[metric].value == pytest.approx(value, abs=1e-12), metric
        assert results[metric].status == "ok" and results[metric].error_bound == 0.0


def test_group_stats_equal_metric_frame() -> None:
    group, y, pred = _rows(3, 5000)
    frame = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "accuracy": accuracy_score,
            "count": lambda t, p: len(t),
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=group,
    ).by_group
    stats = {g.group: g for g in group_stats(FairnessSummary.from_arrays(group, pred, y))}
    assert sorted(stats) == sorted(frame.index)
    for name, row in frame.iterrows():
        g = stats[name]
        assert g.n == row["count"] and g.decides
        for metric in ("selection_rate", "tpr", "fpr", "accuracy"):
            rate = getattr(g, metric)
            assert rate.value == pytest.approx(row[metric], abs=1e-12)
            low, high = wilson_interval(rate.successes, rate.trials)
            assert (rate.low, rate.high) == (float(low), float(high))
            assert rate.low <= rate.value <= rate.high


def test_four_fifths_rule_is_the_default_threshold() -> None:
    group, y, pred = _rows(4)
    r = fairness_metrics(FairnessSummary.from_arrays(group, pred, y))["disparate_impact"]
    assert (r.threshold, r.direction) == (0.8, "below")
    assert r.drift == (r.value < 0.8)
    other = fairness_metrics(
        FairnessSummary.from_arrays(group, pred, y), {"demographic_parity_difference": 0.01}
    )
    assert other["disparate_impact"].threshold is None
    assert other["demographic_parity_difference"].drift


def test_reference_group_for_disparate_impact() -> None:
    group = np.array(["a"] * 200 + ["b"] * 200 + ["c"] * 200)
    pred = np.r_[
        np.ones(100), np.zeros(100), np.ones(50), np.zeros(150), np.ones(150), np.zeros(50)
    ]
    summary = FairnessSummary.from_arrays(group, pred)
    assert fairness_metrics(summary)["disparate_impact"].value == pytest.approx(0.25 / 0.75)
    assert fairness_metrics(summary, reference_group="a")[
        "disparate_impact"
    ].value == pytest.approx(0.5)
    assert fairness_metrics(summary, reference_group="zzz")["disparate_impact"].status == (
        "insufficient_data"
    )


def test_small_group_is_reported_but_never_decides() -> None:
    group, y, pred = _rows(5, 5000, groups=3)
    group = np.r_[group, ["tiny"] * 20]
    pred = np.r_[pred, np.ones(20, bool)]
    y = np.r_[y, np.zeros(20, bool)]
    summary = FairnessSummary.from_arrays(group, pred, y)
    stats = {g.group: g for g in group_stats(summary)}
    assert not stats["tiny"].decides and stats["tiny"].selection_rate.value == 1.0
    results = fairness_metrics(summary, {})
    big = group != "tiny"
    expected = demographic_parity_difference(y[big], pred[big], sensitive_features=group[big])
    assert results["demographic_parity_difference"].value == pytest.approx(expected, abs=1e-12)
    lowered = fairness_metrics(summary, {}, min_group_size=10)
    assert lowered["demographic_parity_difference"].value == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=group), abs=1e-12
    )


def test_group_without_positives_is_left_out_of_the_tpr_gap() -> None:
    group, y, pred = _rows(6, 6000, groups=3)
    y[group == "g2"] = False
    summary = FairnessSummary.from_arrays(group, pred, y)
    stats = {g.group: g for g in group_stats(summary)}
    assert stats["g2"].tpr.value is None and stats["g2"].tpr.trials == 0
    results = fairness_metrics(summary, {})
    keep = group != "g2"
    # Fairlearn counts the TPR of a group without positives as 0; we leave the group out.
    ours = results["equal_opportunity_difference"].value
    theirs = equal_opportunity_difference(y[keep], pred[keep], sensitive_features=group[keep])
    assert ours == pytest.approx(theirs, abs=1e-12)
    fairlearn_all = equal_opportunity_difference(y, pred, sensitive_features=group)
    assert fairlearn_all > ours
    assert results["equalized_odds_difference"].status == "ok"


def test_too_few_groups_or_no_labels() -> None:
    one = FairnessSummary.from_arrays(["a"] * 500, np.ones(500), np.ones(500))
    assert all(r.status == "insufficient_data" for r in fairness_metrics(one).values())
    unlabeled = FairnessSummary.from_arrays(
        ["a"] * 300 + ["b"] * 300, np.r_[np.ones(300), np.zeros(300)]
    )
    results = fairness_metrics(unlabeled)
    assert results["demographic_parity_difference"].value == 1.0
    assert results["equal_opportunity_difference"].status == "insufficient_data"
    assert results["disparate_impact"].value == 0.0 and results["disparate_impact"].drift
    nobody = FairnessSummary.from_arrays(["a"] * 300 + ["b"] * 300, np.zeros(600))
    assert fairness_metrics(nobody)["demographic_parity_ratio"].status == "undefined"
    empty = fairness_metrics(FairnessSummary.empty())
    assert all(r.status == "insufficient_data" and r.n_window == 0 for r in empty.values())


def test_partial_labels() -> None:
    group, y, pred = _rows(7, 4000, groups=2)
    labeled = np.random.default_rng(7).random(4000) < 0.5
    summary = FairnessSummary.from_arrays(group, pred, np.where(labeled, y, np.nan), labeled)
    assert summary.n.sum() == 4000 and summary.n_labeled.sum() == labeled.sum()
    results = fairness_metrics(summary, {})
    expected = equalized_odds_difference(
        y[labeled], pred[labeled], sensitive_features=group[labeled]
    )
    assert results["equalized_odds_difference"].value == pytest.approx(expected, abs=1e-12)
    assert results["equalized_odds_difference"].n_labeled == labeled.sum()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cut=st.integers(0, 2000))
def test_panes_merge_to_the_window_even_with_new_groups(seed, cut) -> None:
    group, y, pred = _rows(seed, 2000, groups=4)
    group[:cut][group[:cut] == "g3"] = "g0"  # g3 appears only in the second pane
    whole = FairnessSummary.from_arrays(group, pred, y)
    merged = FairnessSummary.from_arrays(group[:cut], pred[:cut], y[:cut]).merge(
        FairnessSummary.from_arrays(group[cut:], pred[cut:], y[cut:])
    )
    assert merged.to_state() == whole.to_state()
    assert FairnessSummary.empty().merge(whole).to_state() == whole.to_state()
    state = json.loads(json.dumps(whole.to_state()))
    assert FairnessSummary.from_state(state).to_state() == whole.to_state()


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="y_pred"):
        FairnessSummary.from_arrays(["a", "b"], [0, 2])
    with pytest.raises(ValueError, match="shape"):
        FairnessSummary.from_arrays(["a", "b"], [0, 1], [1])
    with pytest.raises(ValueError, match="min_group_size"):
        fairness_metrics(FairnessSummary.empty(), min_group_size=-1)
    with pytest.raises(ValueError, match="accuracy"):
        fairness_metrics(FairnessSummary.empty(), {"accuracy": 0.5})
