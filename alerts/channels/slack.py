"""Slack incoming webhooks: one Block Kit message per notification, within Slack's limits.

Limits (Block Kit): 50 blocks per message, 3,000 characters per section
text, 150 per header, 75 per button label and 3,000 per button URL.
Alerts are listed one line each in ``rank`` order (firing first, farthest
past the threshold first), packed into sections; past ``MAX_LISTED`` alerts
or the block budget the message ends with "…and N more", so the ones left
out are the lowest-ranked. Every value from results is escaped for mrkdwn
by the Slack templates (``&``, ``<``, ``>``); button URLs are
percent-encoded (``link_url``). ``MESSAGE_SCHEMA`` checks a message before
it is queued.
"""

from __future__ import annotations

from typing import Any

from driftwarden.alerts.channels.base import SendResult, Transport, link_url, post
from driftwarden.alerts.config import AlertsConfig, SlackChannel
from driftwarden.alerts.notification import Notification
from driftwarden.alerts.outbox import OutboxEntry
from driftwarden.alerts.templates import render_source, truncate

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_LISTED = 50
MAX_URL = 3000
MAX_BUTTON = 75
_LINKS = (
    ("incident_url", "Incident"),
    ("window_url", "Window"),
    ("dashboard_url", "Dashboard"),
    ("runbook_url", "Runbook"),
)
_URL = r"^https?://[!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+$"
"""An http(s) URL of URL characters only (``link_url``'s output)."""


def _text(kinds: list[str], limit: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "text"],
        "properties": {
            "type": {"enum": kinds},
            "text": {"type": "string", "minLength": 1, "maxLength": limit},
        },
    }


def _block(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {"type": {"const": kind}}}, "then": schema}


MESSAGE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "A Slack incoming-webhook message as driftwarden sends it (Block Kit limits)",
    "type": "object",
    "required": ["text", "blocks"],
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "blocks": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BLOCKS,
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["header", "section", "actions", "context"]}},
                "allOf": [
                    _block(
                        "header",
                        {
                            "required": ["text"],
                            "properties": {"text": _text(["plain_text"], MAX_HEADER)},
                        },
                    ),
                    _block(
                        "section",
                        {
                            "required": ["text"],
                            "properties": {"text": _text(["mrkdwn", "plain_text"], MAX_SECTION)},
                        },
                    ),
                    _block(
                        "actions",
                        {
                            "required": ["elements"],
                            "properties": {
                                "elements": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": 25,
                                    "items": {
                                        "type": "object",
                                        "required": ["type", "text", "url"],
                                        "properties": {
                                            "type": {"const": "button"},
                                            "text": _text(["plain_text"], MAX_BUTTON),
                                            "url": {
                                                "type": "string",
                                                "maxLength": MAX_URL,
                                                "pattern": _URL,
                                            },
                                        },
                                    },
                                }
                            },
                        },
                    ),
                    _block(
                        "context",
                        {
                            "required": ["elements"],
                            "properties": {
                                "elements": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": 10,
                                    "items": _text(["mrkdwn", "plain_text"], MAX_SECTION),
                                }
                            },
                        },
                    ),
                ],
            },
        },
    },
}
"""What ``render`` must produce: Slack refuses a message past these limits (``invalid_blocks``)."""


class Slack:
    """A Slack incoming webhook."""

    type = "slack"
    once_per_incident = False

    def __init__(self, name: str, config: SlackChannel, alerts: AlertsConfig) -> None:
        self.name = name
        self.config = config
        self.templates = alerts.templates

    def render(self, notification: Notification) -> dict[str, Any]:
        context = notification.ranked().context()
        title = truncate(self._render("slack_title", context) or "driftwarden", MAX_HEADER)
        intro = truncate(self._render("slack_text", context), MAX_SECTION)
        lines = [
            truncate(self._render("slack_alert", {**context, "alert": alert}) or "-", MAX_SECTION)
            for alert in context["alerts"][:MAX_LISTED]
        ]
        links = [
            {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}
            for key, text in _LINKS
            if (url := link_url(context[key]) or "") and len(url) <= MAX_URL
        ]
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
        ]
        if intro:  # Slack refuses empty sections
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": intro}})
        budget = MAX_BLOCKS - len(blocks) - 1 - (1 if links else 0)
        sections, listed = _pack(lines, budget)
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections]
        if links:
            blocks.append({"type": "actions", "elements": links})
        hidden = len(context["alerts"]) - listed
        footer = f"incident {notification.incident_id[:12]}"
        if hidden:
            footer = f"…and {hidden} more · {footer}"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
        return {"text": title, "blocks": blocks}

    def send(self, entry: OutboxEntry, transport: Transport) -> SendResult:
        return post(transport, self.config.url.get_secret_value(), entry.body.encode())

    def _render(self, name: str, context: dict[str, Any]) -> str:
        return render_source(getattr(self.templates, name), name, context)


def _pack(lines: list[str], budget: int) -> tuple[list[str], int]:
    """Lines joined into at most ``budget`` sections of at most ``MAX_SECTION`` characters."""
    sections: list[str] = []
    listed = 0
    for line in lines:
        if sections and len(sections[-1]) + 1 + len(line) <= MAX_SECTION:
            sections[-1] += "\n" + line
        elif len(sections) < budget:
            sections.append(line)
        else:
            break
        listed += 1
    return sections, listed
