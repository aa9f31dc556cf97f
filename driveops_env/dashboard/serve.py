"""Serving the dashboard: a socket on 127.0.0.1 (a free port, or the one asked for), a random token in
the URL, printed once to stdout and kept nowhere else; uvicorn until Ctrl-C."""

from __future__ import annotations

import secrets
import socket
import webbrowser
from collections.abc import Callable

from driveops_env.environment import Environment
from driveops_env.errors import UsageError


def serve(load: Callable[[], Environment], *, port: int, interval: float, read_only: bool, open_page: bool) -> int:
    try:
        import uvicorn

        from driveops_env.dashboard.app import make_app
    except ImportError:
        raise UsageError(
            "the dashboard needs Starlette and uvicorn", hint="pip install 'driveops-env[dashboard]'"
        ) from None
    load()  # an environment that is not there is an error now, not on the page
    listener = _listen(port)
    token = secrets.token_urlsafe(24)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/?token={token}"
    print(f"driveops-env dashboard: {url}", flush=True)
    print("  (the URL carries the page's token: it shows secrets; Ctrl-C stops it)", flush=True)
    if open_page:
        webbrowser.open(url)
    app = make_app(load, token, interval=interval, read_only=read_only)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[listener])
    return 0


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError as exc:
        listener.close()
        raise UsageError(f"--port {port}: {exc.strerror}", hint="choose another port, or 0 for a free one") from None
    listener.listen(64)
    return listener
