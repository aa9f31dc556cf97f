"""What stands in front of every request to the dashboard (it shows secrets and hands out tokens):

- the Host is the loopback's (DNS rebinding: Starlette's TrustedHostMiddleware, in app.py);
- no cross-site request: an ``Origin`` other than the page's own, or a ``Sec-Fetch-Site`` other than
  ``same-origin`` or ``none`` (typed or opened from the terminal) is refused with 403, whatever it carries;
- the session's token: the printed URL's ``?token=`` is taken on the first load only, which answers
  with a cookie of this port (HttpOnly, SameSite=Strict) and a redirect to ``/``, so the token leaves
  the URL bar and the history; after that the cookie, or the ``X-Driveops-Token`` header of a program;
- a POST is ``application/json`` (a form or ``text/plain`` post, which a browser sends cross-site
  without asking, is refused with 415);
- every answer is ``Cache-Control: no-store`` and carries a Content-Security-Policy that runs the page's
  own script and style only (by their hashes) and lets no other page frame it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-driveops-token"
SITES = ("same-origin", "none")


def cookie_name(port: int | None) -> str:
    return f"driveops_dashboard_{port}"


def policy(page: str) -> str:
    """A Content-Security-Policy for ``page``: its inline script and style, by hash, and nothing else."""

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in found)

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class Guard:
    """The rules above, around ``app``; ``csp`` is the page's :func:`policy`."""

    def __init__(self, app: ASGIApp, token: str, csp: str) -> None:
        self.app, self.token, self.csp = app, token, csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        answer = self._refusal(request) or self._first_load(request)
        guarded = self._with_headers(send)
        if answer is not None:
            await answer(scope, receive, guarded)
        else:
            await self.app(scope, receive, guarded)

    def _refusal(self, request: Request) -> Response | None:
        origin, site = request.headers.get("origin"), request.headers.get("sec-fetch-site")
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if (origin is not None and origin != own) or (site is not None and site not in SITES):
            return PlainTextResponse("403: a cross-site request is refused", status_code=403)
        if not self._has_token(request):
            return PlainTextResponse("401: open the URL driveops-env dashboard printed", status_code=401)
        if request.method == "POST" and request.headers.get("content-type", "").split(";")[0] != "application/json":
            return PlainTextResponse("415: send application/json", status_code=415)
        return None

    def _has_token(self, request: Request) -> bool:
        given = [request.headers.get(HEADER), request.cookies.get(cookie_name(request.url.port))]
        if request.method == "GET" and request.url.path == "/":
            given.append(request.query_params.get("token"))
        return any(g is not None and hmac.compare_digest(g.encode(), self.token.encode()) for g in given)

    def _first_load(self, request: Request) -> Response | None:
        """The printed URL, once: its token becomes this port's cookie and leaves the URL."""
        if request.url.path != "/" or "token" not in request.query_params:
            return None
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(cookie_name(request.url.port), self.token, path="/", httponly=True, samesite="strict")
        return response

    def _with_headers(self, send: Send) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Cache-Control"] = "no-store"
                headers["Content-Security-Policy"] = self.csp
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        return sending
