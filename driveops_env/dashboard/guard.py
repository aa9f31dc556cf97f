"""What stands in front of every request to the dashboard (it shows secrets and hands out tokens):

- the Host is the loopback's (DNS rebinding: Starlette's TrustedHostMiddleware, in app.py);
- no cross-site request: an ``Origin`` other than the page's own, or a ``Sec-Fetch-Site`` other than
  ``same-origin`` or ``none`` (typed or opened from the terminal) is refused with 403, whatever it carries;
- the session's token, in the ``X-Driveops-Token`` header of every request but the page itself: the
  printed URL's ``?token=`` is read on the page's first load only (the page keeps it in its tab's
  ``sessionStorage``, which is this origin's, port included, and takes it out of the address bar and
  the history); no cookie (a browser sends a cookie to every port of 127.0.0.1) and no other URL
  carries it.  The page without a token is the bare page: it holds no secret, and asks for the URL;
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
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-driveops-token"
SITES = ("same-origin", "none")
BODY_LIMIT = 64 * 1024  # an action's body is a few names


def policy(page: str) -> str:
    """A Content-Security-Policy for ``page``: its inline script and style, by hash, and nothing else."""

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in found)

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _too_long(request: Request) -> bool:
    """A body larger than an action's, or of a length not said up front (read before it is checked)."""
    length = request.headers.get("content-length", "0")
    return not length.isdigit() or int(length) > BODY_LIMIT or "transfer-encoding" in request.headers


class Guard:
    """The rules above, around ``app``; ``csp`` is the page's :func:`policy`."""

    def __init__(self, app: ASGIApp, token: str, csp: str) -> None:
        self.app, self.token, self.csp = app, token, csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        answer = self._refusal(request)
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
        if _too_long(request):
            return PlainTextResponse(f"413: a body of at most {BODY_LIMIT} bytes, with its length", status_code=413)
        return None

    def _has_token(self, request: Request) -> bool:
        if request.method == "GET" and request.url.path == "/":  # the page: its token, if any, is checked
            given = request.query_params.get("token")
            return given is None or hmac.compare_digest(given.encode(), self.token.encode())
        given = request.headers.get(HEADER, "")
        return hmac.compare_digest(given.encode(), self.token.encode())

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
