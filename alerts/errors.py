"""The alerting package's errors.

AlertsError                  anything the alerting package reports instead of a traceback
├── MatcherError             a label matcher that cannot be parsed (also a ValueError)
├── TemplateError            a template that does not compile or render (also a ValueError)
└── SilenceError             a silence that cannot be added or expired (also a ValueError)
"""

from __future__ import annotations


class AlertsError(Exception):
    """An error of the alerting package, printed as one line."""


class MatcherError(AlertsError, ValueError):
    """A matcher such as ``feature=~inc.*`` that cannot be parsed."""


class TemplateError(AlertsError, ValueError):
    """A Jinja2 template that does not compile, or fails on sample data."""


class SilenceError(AlertsError, ValueError):
    """A silence that cannot be added (no matchers, ends before it starts) or expired."""
