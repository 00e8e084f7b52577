"""kmock's in-memory Kubernetes emulator behind a synchronous fixture, for `hilci cluster` tests.

kmock is asyncio and the kubernetes client is synchronous: the emulator runs on its own event loop in a thread.
It ignores label and field selectors and fills in nothing, so tests make complete objects themselves.
"""

from __future__ import annotations

import asyncio
import threading

import pytest


class KubeStandIn:
    """The emulator's URL and a CoreV1Api bound to it."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.url = ""
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from kmock import KubernetesEmulator, Server

        async def main() -> None:
            async with KubernetesEmulator() as emulator, Server(emulator) as server:
                emulator.resources.load_bundled()
                self.url = str(server.url).rstrip("/")
                self._stop = asyncio.Event()
                self._ready.set()
                await self._stop.wait()

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by start()
            self.error = exc
            self._ready.set()

    def start(self) -> KubeStandIn:
        self._thread.start()
        if not self._ready.wait(20) or self.error:
            raise RuntimeError(f"kmock did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def core(self):
        from kubernetes import client

        return client.CoreV1Api(client.ApiClient(client.Configuration(host=self.url)))

    def kubeconfig(self) -> str:
        return ("apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
                f"clusters: [{{name: kmock, cluster: {{server: '{self.url}'}}}}]\n"
                "contexts: [{name: kmock, context: {cluster: kmock, user: kmock}}]\n"
                "users: [{name: kmock, user: {token: not-a-secret}}]\n")


@pytest.fixture
def kube():
    standin = KubeStandIn().start()
    try:
        yield standin
    finally:
        standin.stop()
