"""Label matchers as Alertmanager writes them: ``model=credit-default``, ``feature=~inc.*``.

Operators: ``=`` (equal), ``!=`` (not equal), ``=~`` (regex), ``!~`` (not regex).
Regular expressions are anchored at both ends, and a label that is absent
matches as the empty string — Alertmanager's semantics, so ``feature=""``
selects alerts that have no feature.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from driftwarden.alerts.errors import MatcherError

Operator = Literal["=", "!=", "=~", "!~"]

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One condition on one label."""

    name: str
    op: Operator
    value: str
    _pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                pattern = re.compile(f"(?:{self.value})\\Z", re.DOTALL)
            except re.error as exc:
                raise MatcherError(f"matcher {self}: invalid regular expression: {exc}") from None
            object.__setattr__(self, "_pattern", pattern)

    def matches(self, labels: Mapping[str, str | None]) -> bool:
        """Whether ``labels`` satisfy this matcher (absent or None counts as ``""``)."""
        value = labels.get(self.name) or ""
        if self._pattern is not None:
            return (self._pattern.match(value) is not None) == (self.op == "=~")
        return (value == self.value) == (self.op == "=")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str | Matcher) -> Matcher:
    """A matcher from ``name<op>value``; the value may be double-quoted."""
    if isinstance(text, Matcher):
        return text
    if not isinstance(text, str):
        raise MatcherError(f"expected a matcher like 'model=credit-default', got {text!r}")
    found = _MATCHER.match(text)
    if found is None:
        raise MatcherError(
            f"invalid matcher {text!r}: expected name=value, name!=value, name=~regex "
            "or name!~regex"
        )
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return Matcher(name, op, value)  # type: ignore[arg-type]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str | None]) -> bool:
    """Whether every matcher holds for ``labels`` (true for no matchers)."""
    return all(matcher.matches(labels) for matcher in matchers)
