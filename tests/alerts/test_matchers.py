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
