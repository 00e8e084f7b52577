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
            self._accepted(conn)

    def _accepted(self, conn: socket.socket) -> None:
        """What happens to a new connection: here nothing (it is never answered)."""

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


EMPTY_LISTING = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
                 b'2006-03-01/"><Name>hilci</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>'
                 b'<IsTruncated>false</IsTruncated></ListBucketResult>')


class FreezingS3(SilentServer):
    """An S3 endpoint that answers its first `answers` requests (an empty bucket: listings empty, writes
    accepted) and then freezes: the store going silent in the middle of a run, after the run found it up."""

    def __init__(self, deadline_s: float, answers: int = 2) -> None:
        self.answers = answers
        self.answered = 0
        super().__init__(deadline_s)

    def _accepted(self, conn: socket.socket) -> None:
        threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        data = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, data = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next((int(x.split(":", 1)[1]) for x in lines if x.lower().startswith("content-length:")), 0)
                if any(x.lower().startswith("expect: 100-continue") for x in lines):
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                while len(data) < length:
                    data += conn.recv(65536)
                data = data[length:]
                if self.answered >= self.answers:
                    return  # frozen: the connection stays open, never answered (closed at close())
                self.answered += 1
                body = EMPTY_LISTING if lines[0].startswith("GET") else b""
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nETag: \"0\"\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        except OSError:
            return
