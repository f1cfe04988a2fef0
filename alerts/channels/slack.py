"""Slack incoming webhooks: one Block Kit message per notification, within Slack's limits.

Limits (Block Kit): 50 blocks per message, 3,000 characters per section
text, 150 per header. Alerts are listed one line each, packed into
sections; past ``MAX_LISTED`` alerts or the block budget the message ends
with "…and N more". Every value from results is escaped for mrkdwn by the
Slack templates (``&``, ``<``, ``>``).
"""

from __future__ import annotations

from typing import Any

from driftwarden.alerts.channels.base import SendResult, Transport, post
from driftwarden.alerts.config import AlertsConfig, SlackChannel
from driftwarden.alerts.notification import Notification
from driftwarden.alerts.outbox import OutboxEntry
from driftwarden.alerts.templates import render_source, truncate

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_LISTED = 50
_LINKS = (("dashboard_url", "Dashboard"), ("runbook_url", "Runbook"))


class Slack:
    """A Slack incoming webhook."""

    type = "slack"
    once_per_incident = False

    def __init__(self, name: str, config: SlackChannel, alerts: AlertsConfig) -> None:
        self.name = name
        self.config = config
        self.templates = alerts.templates

    def render(self, notification: Notification) -> dict[str, Any]:
        context = notification.context()
        title = truncate(self._render("slack_title", context) or "driftwarden", MAX_HEADER)
        intro = truncate(self._render("slack_text", context), MAX_SECTION)
        lines = [
            truncate(self._render("slack_alert", {**context, "alert": alert}) or "-", MAX_SECTION)
            for alert in context["alerts"][:MAX_LISTED]
        ]
        links = [
            {"type": "button", "text": {"type": "plain_text", "text": text}, "url": url}
            for key, text in _LINKS
            if (url := context[key]).startswith(("https://", "http://")) and len(url) <= 3000
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
