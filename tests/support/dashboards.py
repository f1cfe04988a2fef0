"""Every query of every Grafana dashboard, with Grafana's variables substituted."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from support.ops import load_dashboards

PROMETHEUS_UID = "driftwarden-prometheus"
POSTGRES_UID = "driftwarden-postgres"
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


@dataclass(frozen=True)
class Query:
    """One query of a panel (or an annotation, or a template variable)."""

    dashboard: str
    panel: str
    ref: str
    datasource: str  # "prometheus" or "postgres"
    text: str
    instant: bool = False
    format: str = "time_series"
    repeat: str | None = None  # the variable a repeated panel repeats over
    all_value: str | None = None  # a variable's value when "All" is selected (its default)

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref}"


def _kind(datasource: Mapping[str, Any] | None) -> str:
    uid = (datasource or {}).get("uid")
    return {PROMETHEUS_UID: "prometheus", POSTGRES_UID: "postgres"}.get(uid, f"unknown:{uid}")


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> list[Query]:
    """Panel targets, annotation queries and variable queries of every dashboard."""
    found = []
    for board in load_dashboards().values():
        title = board["title"]
        for panel in panels(board):
            for target in panel.get("targets", []):
                kind = _kind(target.get("datasource") or panel.get("datasource"))
                text = target.get("expr") if kind == "prometheus" else target.get("rawSql")
                found.append(
                    Query(
                        title,
                        panel["title"],
                        target["refId"],
                        kind,
                        text or "",
                        bool(target.get("instant")) and not target.get("range", False),
                        target.get("format", "time_series"),
                        panel.get("repeat"),
                    )
                )
        for annotation in board["annotations"]["list"]:
            if annotation.get("builtIn"):
                continue
            found.append(
                Query(
                    title,
                    f"annotation {annotation['name']}",
                    "annotation",
                    _kind(annotation["datasource"]),
                    annotation["expr"],
                )
            )
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                found.append(
                    Query(
                        title,
                        f"variable {variable['name']}",
                        "variable",
                        _kind(variable["datasource"]),
                        _variable_query(variable),
                        all_value=_all_value(variable),
                    )
                )
    return found


def _all_value(variable: Mapping[str, Any]) -> str | None:
    current = variable.get("current") or {}
    selected = current.get("value")
    if variable.get("includeAll") and selected in ("$__all", ["$__all"]):
        return variable.get("allValue") or ".*"
    return None


def _variable_query(variable: Mapping[str, Any]) -> str:
    query = variable["query"]
    return query["query"] if isinstance(query, dict) else query


def variables_used(text: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(text)}


LABEL_VALUES = re.compile(r"label_values\((?:(.*),\s*)?(\w+)\)\s*$", re.S)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Grafana's interpolation, for the variables this repository's dashboards use."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, text)
