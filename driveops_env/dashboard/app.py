"""The dashboard's web application (Starlette): the page, its data (``status --json``'s, pushed as
server-sent events), a server's log tail, and the actions, each the same library call as the CLI's.

A Host other than the loopback's is refused (DNS rebinding); the rest of what every request must be
(same-site, with the session's token) is :mod:`.guard`'s.  An action's body is a JSON object of
strings, checked as the CLI checks its arguments (400 with the CLI's message)."""

from __future__ import annotations

import html
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from driveops_env import readiness
from driveops_env.dashboard import actions
from driveops_env.dashboard.guard import Guard, policy
from driveops_env.environment import Environment
from driveops_env.errors import DriveopsEnvError

LOG_LINES = 200


def make_app(load: Callable[[], Environment], token: str, *, interval: float, read_only: bool) -> ASGIApp:
    """``load`` attaches to the environment again for each request (the state file may change).  The
    guard is outermost: every answer, an error's too, passes it."""
    page = resources.files("driveops_env.dashboard").joinpath("page.html").read_text()
    page = page.replace("__INTERVAL_MS__", str(int(interval * 1000))).replace("__READ_ONLY__", json.dumps(read_only))
    first_load = page.replace("<head>", f'<head>\n<meta name="driveops-token" content="{html.escape(token)}">', 1)

    async def index(request: Request) -> Response:
        return HTMLResponse(first_load if "token" in request.query_params else page)  # the guard checked it

    async def status(request: Request) -> Response:
        return await _json(lambda: load().status_data(show_secrets=True))

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            async for _ in readiness.aticks(interval):
                if await request.is_disconnected():
                    return
                data = await _data_or_error(lambda: load().status_data(show_secrets=True))
                yield f"data: {json.dumps(data)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def logs(request: Request) -> Response:
        key = request.path_params["key"]
        return await _json(lambda: {"key": key, "text": load().logs(key, LOG_LINES)})

    async def action(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            body = actions.parse_body(await request.body())
        except DriveopsEnvError as exc:
            return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=400)
        return await _json(lambda: actions.run(load(), name, body, read_only=read_only))

    routes = [
        Route("/", index),
        Route("/api/status", status),
        Route("/api/events", events),
        Route("/api/logs/{key}", logs),
        Route("/api/actions/{name}", action, methods=["POST"]),
    ]
    hosts = Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    return Guard(Starlette(routes=routes, middleware=[hosts]), token=token, csp=policy(page))


async def _data_or_error(make: Callable[[], Any]) -> Any:
    try:
        return await run_in_threadpool(make)
    except DriveopsEnvError as exc:
        return {"error": exc.message, "hint": exc.hint}


async def _json(make: Callable[[], Any]) -> Response:
    try:
        result = await run_in_threadpool(make)
    except DriveopsEnvError as exc:
        where = exc.where()
        said = {"error": f"{exc.message} ({where})" if where else exc.message, "hint": exc.hint}
        return JSONResponse(said, status_code=400 if exc.exit_code == 2 else 409)
    except KeyError as exc:  # a server key the environment does not have
        return JSONResponse({"error": f"no server {exc}", "hint": "choose one the page lists"}, status_code=404)
    return JSONResponse(result if not hasattr(result, "__dataclass_fields__") else asdict(result))
