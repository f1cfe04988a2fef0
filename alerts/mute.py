"""The mute stage: silences and inhibitions share one ``Muter`` protocol, as in Alertmanager."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from driftwarden.alerts.config import InhibitRuleConfig
from driftwarden.alerts.matchers import matches_all
from driftwarden.alerts.silences import Silence


class Muter(Protocol):
    """Decides whether an alert (its fingerprint and labels) is muted now."""

    def mutes(self, fingerprint: str, labels: Mapping[str, str]) -> bool: ...


class Silencer:
    """Mutes alerts that an active silence matches."""

    def __init__(self, silences: Sequence[Silence]) -> None:
        self.silences = tuple(silences)

    def mutes(self, fingerprint: str, labels: Mapping[str, str]) -> bool:
        return any(silence.mutes(labels) for silence in self.silences)


class Inhibitor:
    """Mutes targets of an inhibit rule while a matching source alert fires.

    A source inhibits a target when both have equal values of the rule's
    ``equal`` labels. As in Alertmanager, an alert never inhibits itself, and
    an alert matching both sides cannot be inhibited by another such alert.
    """

    def __init__(
        self, rules: Sequence[InhibitRuleConfig], firing: Mapping[str, Mapping[str, str]]
    ) -> None:
        self._rules = [
            (rule, [(fp, labels) for fp, labels in firing.items() if _source(rule, labels)])
            for rule in rules
        ]

    def mutes(self, fingerprint: str, labels: Mapping[str, str]) -> bool:
        for rule, sources in self._rules:
            if not sources or not matches_all(rule.target_matchers, labels):
                continue
            both = _source(rule, labels)
            for source_fp, source in sources:
                if source_fp == fingerprint or (both and matches_all(rule.target_matchers, source)):
                    continue
                if all(source.get(name, "") == labels.get(name, "") for name in rule.equal):
                    return True
        return False


def _source(rule: InhibitRuleConfig, labels: Mapping[str, str]) -> bool:
    return matches_all(rule.source_matchers, labels)
