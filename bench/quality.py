"""Performance and fairness from summaries against scikit-learn and Fairlearn on raw rows.

Run by hand (not a test)::

    .venv/bin/python bench/quality.py              # 1,000,000 rows, 5 groups
    .venv/bin/python bench/quality.py --rows 200000

One seeded window of a binary classifier (labels, positive-class
probabilities, a group attribute with 5 values as strings). Ours: build the
mergeable summaries from the rows (``BinaryPerformanceSummary``,
``FairnessSummary``) and compute every metric from them. Theirs: the same
metrics from the raw rows with scikit-learn (accuracy, precision, recall, F1,
ROC AUC, average precision, log loss, Brier) and Fairlearn (``MetricFrame``
by group with selection rate, TPR, FPR, accuracy and count; demographic
parity difference and ratio, equal opportunity and equalized odds
differences). Times are CPU seconds (``time.process_time``), best of
``--repeats``. Also shown: the summary path alone (metrics from summaries
already built, as when a window closes), and regression and multiclass.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
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
from sklearn import metrics as skm

from driftwarden.detectors.fairness import FairnessSummary, fairness_metrics, group_stats
from driftwarden.detectors.performance_binary import BinaryPerformanceSummary, binary_performance
from driftwarden.detectors.performance_multiclass import (
    MulticlassPerformanceSummary,
    multiclass_performance,
)
from driftwarden.detectors.performance_regression import (
    RegressionPerformanceSummary,
    regression_performance,
)


def best(repeats: int, work: Callable[[], object]) -> tuple[float, object]:
    """Fastest CPU time of ``repeats`` runs, and the last result."""
    fastest, result = np.inf, None
    for _ in range(repeats):
        start = time.process_time()
        result = work()
        fastest = min(fastest, time.process_time() - start)
    return fastest, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n = args.rows
    names = np.array([f"group-{i}" for i in range(args.groups)])
    group = names[rng.choice(args.groups, n, p=rng.dirichlet(np.full(args.groups, 4.0)))]
    bias = rng.uniform(-0.1, 0.1, args.groups)[np.searchsorted(names, group)]
    y = rng.random(n) < 0.3
    score = np.clip(0.3 + 0.35 * y + bias + rng.normal(0, 0.2, n), 0, 1)
    pred = score >= 0.5

    def ours_binary() -> object:
        summary = BinaryPerformanceSummary.from_arrays(y, score)
        return binary_performance(summary, min_labeled=0)

    def ours_fairness() -> object:
        summary = FairnessSummary.from_arrays(group, pred, y)
        return fairness_metrics(summary), group_stats(summary)

    def sklearn_binary() -> object:
        return {
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred),
            "recall": skm.recall_score(y, pred),
            "f1": skm.f1_score(y, pred),
            "roc_auc": skm.roc_auc_score(y, score),
            "average_precision": skm.average_precision_score(y, score),
            "log_loss": skm.log_loss(y, score),
            "brier": skm.brier_score_loss(y, score),
        }

    def fairlearn_fairness() -> object:
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "accuracy": skm.accuracy_score,
                "count": lambda t, p: len(t),
            },
            y_true=y,
            y_pred=pred,
            sensitive_features=group,
        )
        kw = {"sensitive_features": group}
        return frame.by_group, {
            "demographic_parity_difference": demographic_parity_difference(y, pred, **kw),
            "demographic_parity_ratio": demographic_parity_ratio(y, pred, **kw),
            "equal_opportunity_difference": equal_opportunity_difference(y, pred, **kw),
            "equalized_odds_difference": equalized_odds_difference(y, pred, **kw),
        }

    r = args.repeats
    t_ours_b, ours_b = best(r, ours_binary)
    t_ours_f, ours_f = best(r, ours_fairness)
    t_sk, sk = best(r, sklearn_binary)
    t_fl, fl = best(r, fairlearn_fairness)
    binary_summary = BinaryPerformanceSummary.from_arrays(y, score)
    fairness_summary = FairnessSummary.from_arrays(group, pred, y)
    t_close, _ = best(
        r,
        lambda: (
            binary_performance(binary_summary, min_labeled=0),
            fairness_metrics(fairness_summary),
            group_stats(fairness_summary),
        ),
    )

    print(f"\n### binary performance and fairness: {n:,} rows, {args.groups} groups\n")
    print("| work | ours (s) | scikit-learn / Fairlearn (s) | speedup |")
    print("|---|---:|---:|---:|")
    print(f"| performance, 8 metrics | {t_ours_b:.3f} | {t_sk:.3f} | {t_sk / t_ours_b:.0f}x |")
    print(f"| fairness, by group + 4 gaps | {t_ours_f:.3f} | {t_fl:.3f} | {t_fl / t_ours_f:.0f}x |")
    total_ours, total_theirs = t_ours_b + t_ours_f, t_sk + t_fl
    print(
        f"| both, summaries built from the rows | {total_ours:.3f} | {total_theirs:.3f} "
        f"| {total_theirs / total_ours:.0f}x |"
    )
    print(
        f"| both, from summaries already built | {t_close:.4f} | {total_theirs:.3f} "
        f"| {total_theirs / t_close:.0f}x |"
    )

    print("\n### agreement\n")
    print("| metric | ours | theirs | difference | stated bound |")
    print("|---|---:|---:|---:|---:|")
    for metric, value in sk.items():  # type: ignore[union-attr]
        mine = ours_b[metric]  # type: ignore[index]
        print(
            f"| {metric} | {mine.value:.6f} | {value:.6f} | {abs(mine.value - value):.1e} "
            f"| {mine.error_bound:.1e} |"
        )
    fairness, _ = ours_f  # type: ignore[misc]
    for metric, value in fl[1].items():  # type: ignore[index]
        mine = fairness[metric]
        print(f"| {metric} | {mine.value:.6f} | {value:.6f} | {abs(mine.value - value):.1e} | 0 |")

    # Regression and multiclass, for the record.
    target = rng.normal(50, 10, n)
    guess = target + rng.normal(0, 3, n)
    t_reg, _ = best(
        r,
        lambda: regression_performance(
            RegressionPerformanceSummary.from_arrays(target, guess, 50.0), min_labeled=0
        ),
    )
    t_reg_sk, _ = best(
        r,
        lambda: (
            skm.mean_absolute_error(target, guess),
            skm.root_mean_squared_error(target, guess),
            skm.mean_absolute_percentage_error(target, guess),
            skm.r2_score(target, guess),
        ),
    )
    k = 4
    codes = rng.choice(k, n)
    probabilities = rng.dirichlet(np.ones(k), n) + 0.5 * np.eye(k)[codes]
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    guess_class = probabilities.argmax(axis=1)
    t_multi, _ = best(
        r,
        lambda: multiclass_performance(
            MulticlassPerformanceSummary.from_arrays(codes, guess_class, range(k), probabilities),
            min_labeled=0,
        ),
    )
    t_multi_sk, _ = best(
        r,
        lambda: (
            skm.accuracy_score(codes, guess_class),
            skm.f1_score(codes, guess_class, average="macro"),
            skm.f1_score(codes, guess_class, average="weighted"),
            skm.recall_score(codes, guess_class, average=None),
            skm.roc_auc_score(codes, probabilities, multi_class="ovr"),
        ),
    )
    print(f"\n### other tasks, {n:,} rows (summaries built from the rows)\n")
    print("| task | ours (s) | scikit-learn (s) | speedup |")
    print("|---|---:|---:|---:|")
    print(f"| regression, 4 metrics | {t_reg:.3f} | {t_reg_sk:.3f} | {t_reg_sk / t_reg:.1f}x |")
    print(
        f"| multiclass (4 classes), 8 metrics | {t_multi:.3f} | {t_multi_sk:.3f} "
        f"| {t_multi_sk / t_multi:.1f}x |"
    )


if __name__ == "__main__":
    main()
