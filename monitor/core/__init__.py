"""The record contract shared by ``driftwarden.monitor`` and ``driftwarden.alerts``.

Result records, dead letters and their origins (``records``), times in epoch
milliseconds and their RFC 3339 form (``times``), and duration strings
(``durations``). This package imports nothing else of driftwarden; it lives in
``monitor/core/`` only because the repository's top level is fixed, and is
installed as ``driftwarden.core``. See docs/architecture.md.
"""
