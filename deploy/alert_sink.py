"""The example webhook receiver of docker-compose.yml's Alertmanager (service ``alert-sink``).

Alertmanager POSTs its webhook payload (version 4: a group of alerts with their labels and
annotations) to ``/alerts``; this prints one JSON line per alert on stdout, so that
``docker compose logs -f alert-sink`` shows who would have been paged, for what, and where
the runbook is. Replace it with your incident tool's webhook in prometheus/alertmanager.yml.

    python deploy/alert_sink.py [--host 0.0.0.0] [--port 9095]

Standard library only; answers 400 to a body that is not Alertmanager's JSON, 404 elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


def lines(payload: dict) -> list[str]:
    """One JSON line per alert of an Alertmanager webhook payload."""
    group = payload.get("groupLabels", {})
    found = []
    for alert in payload["alerts"]:
        labels, annotations = alert.get("labels", {}), alert.get("annotations", {})
        entry = {
            "status": alert.get("status", payload.get("status")),
            "alertname": labels.get("alertname"),
            "severity": labels.get("severity"),
            "labels": labels,
            "summary": annotations.get("summary"),
            "runbook_url": annotations.get("runbook_url"),
            "starts_at": alert.get("startsAt"),
            "ends_at": alert.get("endsAt"),
            "receiver": payload.get("receiver"),
            "group": group,
        }
        found.append(json.dumps(entry, sort_keys=True))
    return found


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if self.path.rstrip("/") != "/alerts":
            self._answer(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413)
            return
        try:
            printed = lines(json.loads(self.rfile.read(length)))
        except (ValueError, KeyError, TypeError, AttributeError):
            self._answer(400)
            return
        for line in printed:
            print(line, flush=True)
        self._answer(200)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged; the alerts are."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9095)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), _Handler)
    print(f"alert-sink: listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
