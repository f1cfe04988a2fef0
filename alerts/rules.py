"""Rules compiled for evaluation: which results a rule judges, and how.

A rule turns each result it matches into an ``Observation`` of one alert,
identified by a fingerprint of its identity labels (rule, model, kind,
detector, and feature, metric, group attribute where set). Severity and the
rule's own labels are not part of the identity, so editing them on reload
keeps the alert.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from driftwarden.alerts.config import RuleConfig
from driftwarden.alerts.evidence import judged
from driftwarden.alerts.matchers import matches_all
from driftwarden.core.records import PREDICTION_DISTRIBUTION, ResultRecord


@dataclass(frozen=True, slots=True)
class Observation:
    """What one result says about one alert: whether its condition holds, and the evidence."""

    rule: str
    fingerprint: str
    model: str
    identity: Mapping[str, str]
    active: bool
    evidence: ResultRecord


def fingerprint(identity: Mapping[str, str]) -> str:
    """A stable hash of identity labels (32 hex characters)."""
    text = json.dumps(sorted(identity.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def result_fields(result: ResultRecord) -> dict[str, str | None]:
    """The fields of a result that a rule's ``match`` can test."""
    return {
        "model": result.model,
        "model_version": result.model_version,
        "kind": result.kind,
        "detector": result.detector,
        "feature": result.feature,
        "metric": result.metric,
        "group_attribute": result.group_attribute,
        "segment": result.segment,
    }


def significantly_better(result: ResultRecord) -> bool:
    """Whether a ``version_comparison`` result says the challenger is significantly better:
    its p-value under the threshold, its difference on the good side of 0 (``direction``
    names the bad side)."""
    if result.value is None or result.p_value is None or result.threshold is None:
        return False
    good = result.value < 0.0 if result.direction == "above" else result.value > 0.0
    return result.p_value < result.threshold and good


class Rule:
    """A rule ready to judge results."""

    def __init__(self, config: RuleConfig) -> None:
        self.config = config
        self.name = config.name
        self.channels = tuple(config.channels)
        self._equal = tuple((m.name, m.value) for m in config.match if m.op == "=")
        self._other = tuple(m for m in config.match if m.op != "=")
        self._segments = any(m.name == "segment" for m in config.match)
        self._metric = any(m.name == "metric" for m in config.match)

    def observe(
        self, result: ResultRecord, fields: Mapping[str, str | None], *, versioned: bool = False
    ) -> Observation | None:
        """The observation of ``result`` (its ``result_fields`` given), or None if not judged.

        A result is judged when the rule matches it, its status is ``ok`` and it
        has at least ``min_labeled`` labels; anything else leaves the alert as it is.
        A segment's result is judged only by rules whose ``match`` names ``segment``:
        segments are small and noisy, and rules written for the whole model must not page
        on each of them. Likewise a challenger's prediction distribution against the
        champion's (a different model predicts differently by design) is judged only by
        rules whose ``match`` names ``metric``.
        The result's version is part of the alert's identity when its model's versions
        are monitored separately (``versioned``).
        """
        config = self.config
        if result.segment is not None and not self._segments:
            return None
        if result.metric == PREDICTION_DISTRIBUTION and not self._metric:
            return None
        for name, value in self._equal:  # the common case, checked first and cheaply
            if (fields[name] or "") != value:
                return None
        if not matches_all(self._other, fields) or result.status != "ok":
            return None
        if config.min_labeled is not None and (result.n_labeled or 0) < config.min_labeled:
            return None
        if config.above is not None or config.below is not None:
            if result.value is None:
                return None
            if config.above is not None:
                active, threshold, direction = result.value > config.above, config.above, "above"
            else:
                assert config.below is not None
                active, threshold, direction = result.value < config.below, config.below, "below"
        elif config.comparison == "better" and result.kind == "version_comparison":
            active, threshold, direction = significantly_better(result), result.threshold, "below"
        else:
            active, threshold, direction = result.drift, result.threshold, result.direction
        identity = {
            "rule": self.name,
            "model": result.model,
            "kind": result.kind,
            "detector": result.detector,
        }
        for name in ("feature", "metric", "group_attribute", "segment"):
            value = fields[name]
            if value is not None:
                identity[name] = value
        if versioned and result.model_version is not None:
            identity["model_version"] = result.model_version
        return Observation(
            rule=self.name,
            fingerprint=fingerprint(identity),
            model=result.model,
            identity=identity,
            active=active,
            evidence=judged(result, threshold, direction),
        )

    def labels(self, identity: Mapping[str, str]) -> dict[str, str]:
        """An alert's labels: its identity, the rule's severity and the rule's labels."""
        return {**identity, "severity": self.config.severity, **self.config.labels}
