"""The control side of a helper process (an emulator, the host clock): one JSON request per connection on a
Unix socket, and an end when the process that started it goes away (its stdin closes)."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any


def serve(path: Path, handle: Callable[[dict[str, Any]], dict[str, Any]], stop: threading.Event) -> None:
    """Answer each connection's one JSON line with `handle`'s JSON reply until `stop` is set; a request that
    makes `handle` raise gets {"ok": false, "error": ...}, never ends the server."""
    if path.exists():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    server.settimeout(0.2)
    try:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2.0)
                try:
                    line = conn.makefile("r").readline()
                    try:
                        reply = handle(json.loads(line or "{}"))
                    except Exception as exc:  # a bad request gets an error reply
                        reply = {"ok": False, "error": str(exc)}
                    conn.sendall((json.dumps(reply) + "\n").encode())
                except OSError:
                    pass
    finally:
        server.close()


def stop_when_parent_leaves(stop: threading.Event) -> None:
    """Set `stop` when stdin closes: the process that started us has gone, so we never outlive it."""
    try:
        while sys.stdin.buffer.read(1):
            pass
    except (OSError, ValueError):
        pass
    stop.set()
