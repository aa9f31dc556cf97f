"""The notes server: a namespace of notes per tenant, over HTTP, in memory.

    GET  /health                     200 when it runs
    PUT  /namespaces/<ns>            (admin) body {"token": ...}: the namespace and its token
    DELETE /namespaces/<ns>          (admin)
    POST /namespaces/<ns>/load       (admin) body {key: text}: its notes replaced
    GET  /ns/<ns>                    (its token, or admin) {"notes": count}
    GET  /ns/<ns>/notes              (its token, or admin) {key: text}
    PUT  /ns/<ns>/notes/<key>        (its token, or admin) body: the text

The administrator's token comes from ``NOTES_ADMIN_TOKEN``; nothing listens beyond ``--bind``.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Store:
    def __init__(self, admin_token: str) -> None:
        self.admin_token = admin_token
        self.tokens: dict[str, str] = {}
        self.notes: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()

    def allowed(self, namespace: str | None, token: str) -> bool:
        if hmac.compare_digest(token, self.admin_token):
            return True
        return namespace is not None and hmac.compare_digest(token, self.tokens.get(namespace, "\0"))


class Handler(BaseHTTPRequestHandler):
    store: Store

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.command} {self.path.split('?')[0]} {args[1] if len(args) > 1 else ''}", flush=True)

    def _send(self, status: int, body: Any = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def _token(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ")

    def _route(self) -> tuple[str, str | None, str | None]:
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        kind = parts[0] if parts else ""
        return kind, parts[1] if len(parts) > 1 else None, "/".join(parts[2:]) or None

    def do_GET(self) -> None:
        kind, namespace, rest = self._route()
        if kind == "health":
            self._send(200, {"status": "up"})
        elif kind != "ns" or namespace not in self.store.notes:
            self._send(404)
        elif not self.store.allowed(namespace, self._token()):
            self._send(403, {"error": "not your namespace"})
        elif rest == "notes":
            self._send(200, self.store.notes[namespace])
        else:
            self._send(200, {"notes": len(self.store.notes[namespace])})

    def do_PUT(self) -> None:
        kind, namespace, rest = self._route()
        body = self._body()
        with self.store.lock:
            if kind == "namespaces" and namespace and self.store.allowed(None, self._token()):
                self.store.tokens[namespace] = str(body["token"])
                self.store.notes.setdefault(namespace, {})
                self._send(201)
            elif kind == "ns" and namespace in self.store.notes and rest and rest.startswith("notes/"):
                if not self.store.allowed(namespace, self._token()):
                    self._send(403, {"error": "not your namespace"})
                    return
                self.store.notes[namespace][rest.removeprefix("notes/")] = str(body)
                self._send(200)
            else:
                self._send(403 if kind == "namespaces" else 404)

    def do_POST(self) -> None:
        kind, namespace, rest = self._route()
        if kind != "namespaces" or namespace not in self.store.notes or rest != "load":
            self._send(404)
        elif not self.store.allowed(None, self._token()):
            self._send(403)
        else:
            with self.store.lock:
                self.store.notes[namespace] = {str(k): str(v) for k, v in dict(self._body()).items()}
            self._send(200)

    def do_DELETE(self) -> None:
        kind, namespace, _ = self._route()
        if kind != "namespaces" or not self.store.allowed(None, self._token()):
            self._send(403)
            return
        with self.store.lock:
            self.store.notes.pop(str(namespace), None)
            self.store.tokens.pop(str(namespace), None)
        self._send(200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args()
    Handler.store = Store(os.environ["NOTES_ADMIN_TOKEN"])
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    print(f"notes server listening on {args.bind}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
