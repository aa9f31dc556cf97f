"""Asking the cluster how it is, from the machine's side, with the standard library only: the API over
HTTPS with the admin's certificate, and one DNS question to the cluster's DNS server over UDP.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
import struct
from pathlib import Path
from typing import Any


def api_get(host: str, pki: Path, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``path`` of the API server at ``host``:6443; (status, decoded JSON or text); (0, reason) when
    nothing answers."""
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    connection = http.client.HTTPSConnection(host, 6443, context=context, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return 0, str(e)
    finally:
        connection.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, body


def _question(name: str, ident: int) -> bytes:
    header = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.rstrip(".").split("."))
    return header + labels + b"\0" + struct.pack(">HH", 1, 1)  # A, IN


def _skip_name(packet: bytes, offset: int) -> int:
    while True:
        length = packet[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # compression pointer
            return offset + 2
        offset += length + 1


def _a_records(packet: bytes, question_end: int, count: int) -> list[str]:
    found, offset = [], question_end
    for _ in range(count):
        offset = _skip_name(packet, offset)
        rtype, _, _, length = struct.unpack(">HHIH", packet[offset : offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(packet[offset : offset + 4]))
        offset += length
    return found


def resolve(server: str, name: str, timeout: float = 1.0, port: int = 53) -> list[str]:
    """The A records the DNS server at ``server``:``port`` gives for ``name`` ([] when it answers none,
    or does not answer)."""
    ident = secrets.randbelow(0xFFFF)
    query = _question(name, ident)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query, (server, port))
            packet = sock.recv(4096)
        except OSError:
            return []
    reply_id, flags, _, answers = struct.unpack(">HHHH", packet[:8])
    if reply_id != ident or flags & 0x000F != 0:
        return []
    return _a_records(packet, len(query), answers)
