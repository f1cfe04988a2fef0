"""The ``/ui/`` routes of the HTTP server: evidence pages behind the API's authentication.

Routes (HTML)::

    GET   /ui/                                   fleet: every model, recent incidents
    GET   /ui/models/{model}                     a model over its last windows (?last=N, ≤ 500;
                                                 ?version=V of a model with split versions)
    GET   /ui/models/{model}/windows/{index}     one window (?version=V)
    GET   /ui/models/{model}/windows?until=T     → the last window that ended by T (epoch s)
    GET   /ui/incidents/{id}                     one incident and its notifications
    POST  /ui/session                            form field ``token`` → session cookie

With an API bearer token configured, every page needs it: ``Authorization: Bearer`` or the
session cookie ``POST /ui/session`` sets (an HMAC of the token, so it is valid exactly as
long as the token is). Without one, answers are 401 (a form to enter the token).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, unquote, urlsplit

from markupsafe import escape

from driftwarden.alerts.links import UI as UI_PREFIX
from driftwarden.alerts.links import window_path
from driftwarden.monitor.service.api import MAX_BODY, HttpSecurity, Response, same_secret
from driftwarden.monitor.service.pages import CSP, Pages

log = logging.getLogger("driftwarden.ui")

COOKIE = "driftwarden_session"
MAX_LAST = 500
"""The most windows a model page draws."""

_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_HTML = "text/html; charset=utf-8"


def session_value(token: str) -> str:
    """The session cookie's value for ``token``: valid while the token is."""
    return hmac.new(token.encode(), b"driftwarden ui session", hashlib.sha256).hexdigest()


class Ui:
    """Answers ``/ui/`` requests; ``pages`` is wired once the database is ready (until then
    pages answer 503)."""

    def __init__(
        self, security: HttpSecurity, pages: Pages | None = None, *, secure: bool = False
    ) -> None:
        self.security = security
        self.pages = pages
        self.secure = secure

    def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        read_body: Callable[[], bytes],
        client: str = "",
    ) -> Response:
        parts = urlsplit(target)
        segments = [unquote(s) for s in parts.path[len(UI_PREFIX) :].strip("/").split("/") if s]
        if method == "POST" and segments == ["session"]:
            return self._session(headers, read_body)
        if method != "GET":
            return self._page(405, "<p>method not allowed</p>", {"Allow": "GET"})
        status = self._authorized(headers)
        if status is not None:
            log.warning(
                "ui request refused",
                extra={"event": "ui_refused", "path": parts.path, "client": client,
                       "status": status},
            )  # fmt: skip
            return self._login(status)
        if self.pages is None:
            return self._page(503, "<p>the database is not ready yet</p>")
        try:
            html = self._route(segments, parse_qs(parts.query))
        except ValueError as exc:
            return self._page(400, f"<p>{escape(str(exc))}</p>")
        except Exception:
            log.exception("page failed", extra={"event": "ui_error", "path": parts.path})
            return self._page(500, "<p>internal error (see the daemon's log)</p>")
        if html is None:
            return self._page(404, "<p>not found</p>")
        if isinstance(html, Response):
            return html
        return Response(200, html.encode(), _HTML, _HEADERS)

    def _route(self, segments: list[str], query: dict[str, list[str]]) -> str | Response | None:
        """A page, a redirect to one, or ``None`` (no such page)."""
        assert self.pages is not None
        version = (query.get("version") or [None])[-1]  # of a model with split versions
        match segments:
            case []:
                return self.pages.fleet()
            case ["models", model]:
                last_text = (query.get("last") or [str(MAX_LAST)])[-1]
                if not last_text.isdigit() or not 1 <= int(last_text) <= MAX_LAST:
                    raise ValueError(f"last: expected an integer from 1 to {MAX_LAST}")
                return self.pages.model(model, int(last_text), version)
            case ["models", model, "windows", index] if re.fullmatch(r"[0-9]{1,9}", index):
                return self.pages.window(model, int(index), version)
            case ["models", model, "windows"]:
                return self._window_by(model, (query.get("until") or [""])[-1])
            case ["incidents", incident_id]:
                return self.pages.incident(incident_id)
        return None

    def _window_by(self, model: str, until: str) -> Response | None:
        """A redirect to the model's last window that ended by ``until`` (epoch seconds, as
        ``driftwarden_window_end_timestamp_seconds`` gives it: alerts link here)."""
        assert self.pages is not None
        if not re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,9})?", until):
            raise ValueError("until: expected a time in epoch seconds, like 1795046400.000")
        index = self.pages.window_by(model, round(float(until) * 1000))
        if index is None:
            return None
        location = window_path(model, index)
        return Response(302, b"", _HTML, {**_HEADERS, "Location": location})

    def _authorized(self, headers: Mapping[str, str]) -> int | None:
        """None when the request may see pages, else the status to refuse it with."""
        token = self.security.api_token
        if token is None:
            return None
        cookie = _cookie(headers.get("Cookie"))
        if cookie is not None and same_secret(cookie, session_value(token)):
            return None
        refusal = self.security.authorize_api(headers.get("Authorization"))
        return None if refusal is None else refusal.status

    def _session(self, headers: Mapping[str, str], read_body: Callable[[], bytes]) -> Response:
        token = self.security.api_token
        if token is None:
            return Response(303, b"", _HTML, {**_HEADERS, "Location": f"{UI_PREFIX}/"})
        body = read_body()[:MAX_BODY]
        given = (parse_qs(body.decode(errors="replace")).get("token") or [""])[-1].strip()
        if not given or not same_secret(given, token):
            return self._login(403)
        attributes = f"Path={UI_PREFIX}/; HttpOnly; SameSite=Strict"
        cookie = f"{COOKIE}={session_value(token)}; {attributes}{'; Secure' if self.secure else ''}"
        return Response(
            303, b"", _HTML, {**_HEADERS, "Location": f"{UI_PREFIX}/", "Set-Cookie": cookie}
        )

    def _login(self, status: int) -> Response:
        headers = dict(_HEADERS)
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="driftwarden"'
        return Response(status, _LOGIN.encode(), _HTML, headers)

    def _page(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        html = f"<!doctype html><title>driftwarden</title>{message}"
        return Response(status, html.encode(), _HTML, {**_HEADERS, **(headers or {})})


_LOGIN = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><meta name="color-scheme" '
    'content="light dark"><link rel="icon" href="data:,"><title>driftwarden: sign in</title>'
    "<h1>driftwarden</h1><p>These "
    "pages need the API bearer token (<code>http.token_env</code> or <code>http.token_file"
    '</code>).</p><form method="post" action="/ui/session"><label>Token <input type="password" '
    'name="token" autocomplete="current-password" required></label> <button type="submit">'
    "Open</button></form>"
)


def _cookie(header: str | None) -> str | None:
    if not header:
        return None
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return None if morsel is None else morsel.value
