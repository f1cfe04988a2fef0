"""Error attribution of a closed window: per feature, the bucket holding most of the
window's errors beyond the reference's rates, from the error counts of its label panes."""

from __future__ import annotations

import numpy as np

from driftwarden.core.records import ResultRecord, WindowInfo
from driftwarden.detectors.attribution import ErrorAttribution, ErrorSummary, error_attribution
from driftwarden.detectors.result import DetectorResult, not_ok
from driftwarden.monitor.config import ModelConfig
from driftwarden.monitor.windows.outcomes import LabelSummary
from driftwarden.monitor.windows.profile import Profile

KIND = "error_attribution"
DETECTOR = "excess_errors"


def error_records(
    profile: Profile, config: ModelConfig, window: WindowInfo, labels: LabelSummary
) -> list[ResultRecord]:
    """One ``error_attribution`` record per feature (none when the reference has no labels or
    the window's labelled panes carry no error counts: stored before error attribution).
    A window without labels gets ``insufficient_data`` records, as its performance does,
    whether or not the model's labels are joined at all.

    The record names the feature's bucket with the most excess errors (``bucket``) and
    its share of the feature's excess (``value``); ``reference_value`` is the error rate
    (or mean loss) the reference predicts there. A record per feature, not per top
    bucket, so that late labels replace every record they change.
    """
    importance = profile.importance
    if importance is None or importance.errors is None:
        return []
    errors = labels.errors
    if errors is None and labels.n_labeled == 0:
        errors = ErrorSummary.empty(*importance.errors.n.shape)
    if errors is None or errors.n.shape != importance.errors.n.shape:
        return []
    attribution = error_attribution(errors, importance.errors, top_k=0)
    enough = labels.n_labeled >= config.labels.min_labeled
    vocabularies = [()] * len(profile.numeric) + [v.top for v in profile.vocabularies]
    records = []
    for f, name in enumerate(profile.features):
        result, bucket = _feature_result(attribution, f, enough)
        records.append(
            ResultRecord.of(
                window,
                KIND,
                DETECTOR,
                result,
                feature=name,
                reference_value=(
                    None if bucket is None else _finite(attribution.expected_rate[f, bucket])
                ),
                bucket=(
                    None
                    if bucket is None
                    else importance.bucket_label(f, bucket, tuple(vocabularies[f]))
                ),
            )
        )
    return records


def _feature_result(
    attribution: ErrorAttribution, f: int, enough: bool
) -> tuple[DetectorResult, int | None]:
    """Feature ``f``'s result and its top bucket (``None`` without one)."""
    counts = {
        "n_reference": int(attribution.n_reference[f].sum()),
        "n_window": int(attribution.n_window[f].sum()),
    }
    if not enough:
        return not_ok("insufficient_data", None, "above", **counts), None
    share = attribution.share[f]
    if not np.isfinite(share).any():
        return not_ok("undefined", None, "above", **counts), None
    excess = np.where(np.isnan(attribution.excess[f]), -np.inf, attribution.excess[f])
    bucket = int(np.argmax(excess))
    result = DetectorResult(
        value=float(share[bucket]),
        threshold=None,
        direction="above",
        drift=False,
        n_labeled=int(attribution.n_window[f, bucket]),
        **counts,
    )
    return result, bucket


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
