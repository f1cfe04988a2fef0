"""Addresses of the daemon's evidence pages, for notifications that link to them.

The pages are served under ``/ui/`` by the monitor's HTTP server; ``http.external_url`` is
the address people reach it at. These paths are the one place their shape is written.
"""

from __future__ import annotations

from urllib.parse import quote

UI = "/ui"


def model_path(model: str) -> str:
    """The model page, under ``/ui``."""
    return f"{UI}/models/{quote(model, safe='')}"


def window_path(model: str, index: int) -> str:
    """One window's page."""
    return f"{model_path(model)}/windows/{index}"


def incident_path(incident_id: str) -> str:
    """One incident's page."""
    return f"{UI}/incidents/{incident_id}"


def page_links(base: str | None, model: str, index: int, incident_id: str) -> dict[str, str]:
    """The incident and window page addresses under ``base`` (none without a base)."""
    if not base:
        return {}
    root = base.rstrip("/")
    return {
        "incident": root + incident_path(incident_id),
        "window": root + window_path(model, index),
    }
