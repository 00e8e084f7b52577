"""A frozen store for tests and benchmarks: a TCP server that accepts every connection and never answers."""

from __future__ import annotations

import socket
import threading


class SilentServer:
    """A TCP server that accepts every connection and never sends a byte (a frozen store)."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(conn)

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}", "AWS_ACCESS_KEY_ID": "frozen",
                "AWS_SECRET_ACCESS_KEY": "frozen-secret", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true", "HILCI_STORE": "s3://hilci/frozen",
                "HILCI_STORE_TIMEOUT_S": str(self.deadline_s)}

    def close(self) -> None:
        self._stop.set()
        for conn in self.accepted:
            conn.close()
        self.sock.close()
