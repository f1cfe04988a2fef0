"""Every query and data link of every Grafana dashboard, with Grafana's variables substituted."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from support.ops import load_dashboards

PROMETHEUS_UID = "driftwarden-prometheus"
POSTGRES_UID = "driftwarden-postgres"
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


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
            kind = _kind(annotation["datasource"])
            target = annotation.get("target") or {}
            found.append(
                Query(
                    title,
                    f"annotation {annotation['name']}",
                    "annotation",
                    kind,
                    annotation["expr"] if kind == "prometheus" else target["rawSql"],
                    format="time_series" if kind == "prometheus" else target["format"],
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
    return {name or bare for name, _, bare in _VARIABLE.findall(text)}


def formats_used(text: str) -> list[tuple[str, str]]:
    """(variable, format) of every variable reference; format "" when none is given."""
    return [(name or bare, form) for name, form, bare in _VARIABLE.findall(text)]


LABEL_VALUES = re.compile(r"label_values\((?:(.*),\s*)?(\w+)\)\s*$", re.S)


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Grafana's interpolation, for the variables and formats this repository's dashboards
    use: ``${name:sqlstring}`` quotes the value for SQL (``'`` doubled), as Grafana does."""

    def replace(match: re.Match[str]) -> str:
        name, form = match.group(1) or match.group(3), match.group(2)
        if name not in values:
            return match.group(0)
        value = values[name]
        if form == "sqlstring":
            return "'" + value.replace("'", "''") + "'"
        assert form in (None, "raw"), f"format {form} is not implemented here"
        return value

    return _VARIABLE.sub(replace, text)


@dataclass(frozen=True)
class Link:
    """A data link of a panel: on every field (``field`` None) or on the field named."""

    dashboard: str  # the title of the dashboard it is on
    panel: str
    title: str
    url: str
    field: str | None
    queries: tuple[Query, ...]  # the panel's queries, which give the link its values

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.field or '*'}:{self.title}"

    @property
    def target_uid(self) -> str:
        match = re.match(r"^/d/([\w-]+)(?:/[\w-]*)?\?", self.url)
        assert match, f"{self.id}: not a link to a dashboard: {self.url}"
        return match.group(1)

    @property
    def parameters(self) -> list[tuple[str, str]]:
        """The query parameters, ``${__url_time_range}`` as ``("__url_time_range", "")``."""
        query = self.url.split("?", 1)[1]
        pairs = []
        for part in query.split("&"):
            if part == "${__url_time_range}":
                pairs.append(("__url_time_range", ""))
            else:
                key, _, value = part.partition("=")
                pairs.append((key, value))
        return pairs


def links() -> list[Link]:
    """Every data link of every panel of every dashboard."""
    found = []
    everything = queries()
    for board in load_dashboards().values():
        title = board["title"]
        for panel in panels(board):
            own = tuple(q for q in everything if q.dashboard == title and q.panel == panel["title"])
            config = panel.get("fieldConfig", {})
            for item in config.get("defaults", {}).get("links", []):
                found.append(Link(title, panel["title"], item["title"], item["url"], None, own))
            for override in config.get("overrides", []):
                for prop in override["properties"]:
                    if prop["id"] == "links":
                        field = override["matcher"]["options"]
                        for item in prop["value"]:
                            found.append(
                                Link(title, panel["title"], item["title"], item["url"], field, own)
                            )
    return found
