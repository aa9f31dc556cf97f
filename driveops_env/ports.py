"""Free TCP ports on 127.0.0.1, never the same one twice within one allocator."""

from __future__ import annotations

import socket
import threading


class PortAllocator:
    def __init__(self) -> None:
        self._given: set[int] = set()
        self._lock = threading.Lock()

    def allocate(self) -> int:
        with self._lock:
            for _ in range(100):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = int(sock.getsockname()[1])
                if port not in self._given:
                    self._given.add(port)
                    return port
        raise OSError("no free TCP port found on 127.0.0.1")
