"""Label matchers (Alertmanager syntax) as rules, silences and inhibit rules use them."""

from __future__ import annotations

import pytest

from driftwarden.alerts import MatcherError, parse_matcher

LABELS = {"model": "credit-default", "feature": "income", "severity": "warning"}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("model=credit-default", True),
        ("model!=credit-default", False),
        ("feature=~inc.*", True),
        ("feature=~inc", False),  # anchored at both ends
        ("feature!~a.*", True),
        ('feature="income"', True),
        ("metric=", True),  # an absent label is the empty string
        ("metric=~.+", False),
        ("  severity = warning ", True),
        ("feature=~in|x", False),  # alternation stays inside the anchors
    ],
)
def test_matchers_follow_alertmanager(text: str, matches: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is matches


def test_a_matcher_prints_as_it_parses() -> None:
    assert str(parse_matcher("feature=~inc.*")) == "feature=~inc.*"
    assert parse_matcher("a=b") == parse_matcher("a = b")


@pytest.mark.parametrize("text", ["model", "=x", "1model=x", "feature=~(inc"])
def test_bad_matchers_are_errors(text: str) -> None:
    with pytest.raises(MatcherError):
        parse_matcher(text)


def test_a_rule_judges_a_prediction_distribution_comparison_only_when_it_names_the_metric() -> None:
    from driftwarden.alerts.config import RuleConfig
    from driftwarden.alerts.rules import Rule, result_fields
    from driftwarden.core.records import PREDICTION_DISTRIBUTION, ResultRecord, WindowInfo
    from driftwarden.detectors.result import DetectorResult

    window = WindowInfo("m", "8", "ref", 3, 0, 3_600_000)
    differs = DetectorResult(0.4, 0.2, "above", True, n_window=900, n_reference=2000)
    distance = ResultRecord.of(
        window, "version_comparison", "psi", differs, metric=PREDICTION_DISTRIBUTION
    )
    worse = ResultRecord.of(
        window, "version_comparison", "two_proportion_z", differs, metric="error_rate"
    )

    def rule(*match: str) -> Rule:
        settings = {"name": "r", "match": list(match), "severity": "error", "channels": ["c"]}
        return Rule(RuleConfig.model_validate(settings))

    broad = rule("kind=version_comparison")
    assert broad.observe(distance, result_fields(distance)) is None
    observed = broad.observe(worse, result_fields(worse))
    assert observed is not None and observed.active
    named = rule("kind=version_comparison", f"metric={PREDICTION_DISTRIBUTION}")
    observed = named.observe(distance, result_fields(distance))
    assert observed is not None and observed.active
