"""A local HTTP server that answers as the Jenkins REST API does, for testing `hilci trigger/status/results/logs`.

Shapes follow Jenkins core and the junit plugin: POST .../build answers 201 with `Location: <root>/queue/item/N/`;
/queue/item/N/api/json is a WaitingItem (`why`), then a LeftItem (`executable` {number, url}) or a cancelled
LeftItem (`cancelled: true`, `executable: null`); a WorkflowRun has `building`, `result`, `number`, `url`,
`duration`, `timestamp`; testReport has `suites[].cases[]` with `className`, `name`, `duration`, `errorDetails`,
`errorStackTrace`, `skipped`, `status` and, with keepProperties, `properties` {name: value}; consoleText is
text/plain; /crumbIssuer/api/json gives a crumb that POSTs must carry. Bad credentials get 401, unknown paths 404.
POST /pipeline-model-converter/validate (form field `jenkinsfile`) answers text/plain as the pipeline-model-definition
plugin's ModelConverterAction.doValidate does: "Jenkinsfile successfully validated." or "Errors encountered
validating Jenkinsfile:" and one line per error (scripted per test in `lint_errors`, as Jenkins's parser would say).
Faults are injected per test: statuses for the next requests and dropped connections.
"""

from __future__ import annotations

import base64
import json
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

CRUMB = "3f2a9c0d5e6b7a81"
CRUMB_FIELD = "Jenkins-Crumb"


@dataclass
class Build:
    """A scripted build: running for `running_polls` build-info reads, then `result`."""

    job: str
    number: int
    result: str = "SUCCESS"
    running_polls: int = 1
    console: list[str] = field(default_factory=lambda: ["Started by user alice\n", "[Pipeline] Start of Pipeline\n"])
    junit: Path | None = None  # a JUnit XML file turned into the testReport, as the junit plugin would
    reads: int = 0


@dataclass
class QueueItem:
    number: int
    job: str
    whys: list[str]  # one per poll before the build starts
    cancelled: bool = False
    build: Build | None = None
    polls: int = 0
    params: dict = field(default_factory=dict)


class JenkinsStandIn:
    """The server, its users, its jobs (full names as Jenkins stores them) and what each new build will do."""

    def __init__(self, user: str = "alice", token: str = "11a7c9f0e2d4b6a8c0e2f4a6b8d0c2e4f6") -> None:
        self.user, self.token = user, token
        self.jobs: set[str] = {"hilci/main"}
        self.next_build: dict = {}  # kwargs for the next Build: result, running_polls, console, junit
        self.queue_whys = ["In the quiet period. Expires in 4.9 sec", "Waiting for next available executor"]
        self.cancel_next = False
        self.fail_next: list[int] = []  # statuses to answer the next requests with (then normal again)
        self.drop_next = 0  # connections to close without an answer
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, headers)
        self.lint_errors: list[str] = []  # what Jenkins's declarative parser says of the next validated file
        self.validated: list[str] = []  # the Jenkinsfiles posted to the linter
        self.queue: dict[int, QueueItem] = {}
        self.builds: dict[tuple[str, int], Build] = {}
        self._next_queue = 40
        self._numbers: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> JenkinsStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the routes --

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        split = urlsplit(req.path)
        self.requests.append((req.command, split.path, dict(req.headers)))
        if self.drop_next:
            self.drop_next -= 1
            req.close_connection = True
            req.connection.shutdown(2)
            return
        if self.fail_next:
            status = self.fail_next.pop(0)
            return _send(req, status, _error_page(status), "text/html")
        if not self._authorized(req):
            return _send(req, 401, _error_page(401, "Invalid password/token for user: " + self.user), "text/html",
                         {"WWW-Authenticate": 'Basic realm="Jenkins"'})
        path = split.path
        if path == "/crumbIssuer/api/json":
            return _json(req, {"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": CRUMB,
                               "crumbRequestField": CRUMB_FIELD})
        if req.command == "POST" and req.headers.get(CRUMB_FIELD) != CRUMB:
            return _send(req, 403, _error_page(403, "No valid crumb was included in the request"), "text/html")
        if path == "/pipeline-model-converter/validate" and req.command == "POST":
            return self._validate(req)
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["queue", "item"] and len(parts) == 5 and parts[3:] == ["api", "json"]:
            return self._queue_item(req, int(parts[2]))
        if parts and parts[0] == "job":
            names, rest = [], parts
            while len(rest) >= 2 and rest[0] == "job":
                names.append(rest[1])
                rest = rest[2:]
            job = "/".join(names)
            if job not in self.jobs:
                return _send(req, 404, _error_page(404), "text/html")
            if req.command == "POST" and rest in (["build"], ["buildWithParameters"]):
                return self._build(req, job, split.query)
            if rest and rest[0].isdigit():
                build = self.builds.get((job, int(rest[0])))
                if build is None:
                    return _send(req, 404, _error_page(404), "text/html")
                if rest[1:] == ["api", "json"]:
                    return _json(req, self._build_info(build))
                if rest[1:] == ["testReport", "api", "json"]:
                    if build.junit is None:
                        return _send(req, 404, _error_page(404), "text/html")
                    return _json(req, test_report(build.junit))
                if rest[1:] == ["consoleText"]:
                    return _send(req, 200, "".join(build.console[: 2 + build.reads]), "text/plain;charset=UTF-8")
        return _send(req, 404, _error_page(404), "text/html")

    def _validate(self, req) -> None:
        form = parse_qs(getattr(req, "body", b"").decode(), keep_blank_values=True)
        text = form.get("jenkinsfile", [None])[0]
        if text is None:
            lines = ["No Jenkinsfile specified"]
        elif self.lint_errors:
            lines = ["Errors encountered validating Jenkinsfile:", *self.lint_errors]
        elif "pipeline {" not in text and "pipeline{" not in text:
            lines = [f"Jenkinsfile content '{text}' did not contain the 'pipeline' step"]
        else:
            lines = ["Jenkinsfile successfully validated."]
        if text is not None:
            self.validated.append(text)
        _send(req, 200, "\n".join(lines) + "\n", "text/plain;charset=UTF-8")

    def _authorized(self, req) -> bool:
        header = req.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, token = base64.b64decode(header[6:]).decode().partition(":")
        return user == self.user and token == self.token

    def _build(self, req, job: str, query: str) -> None:
        with self._lock:
            number = self._next_queue
            self._next_queue += 1
            item = QueueItem(number, job, list(self.queue_whys), cancelled=self.cancel_next,
                             params={k: v[0] for k, v in parse_qs(query).items()})
            self.queue[number] = item
        _send(req, 201, "", "text/plain", {"Location": f"{self.url}queue/item/{number}/"})

    def _queue_item(self, req, number: int) -> None:
        item = self.queue.get(number)
        if item is None:
            return _send(req, 404, _error_page(404), "text/html")
        task = {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "name": item.job.split("/")[-1],
                "url": self._job_url(item.job), "color": "blue"}
        base = {"actions": [{"_class": "hudson.model.CauseAction", "causes": [
            {"_class": "hudson.model.Cause$UserIdCause", "shortDescription": f"Started by user {self.user}",
             "userId": self.user, "userName": self.user}]}], "blocked": False, "buildable": False, "id": number,
            "inQueueSince": 1767225600000, "params": "", "stuck": False, "task": task,
            "url": f"queue/item/{number}/"}
        if item.polls < len(item.whys) and not item.cancelled:
            why = item.whys[item.polls]
            item.polls += 1
            return _json(req, {"_class": "hudson.model.Queue$WaitingItem", **base, "why": why,
                               "timestamp": 1767225605000})
        if item.cancelled:
            return _json(req, {"_class": "hudson.model.Queue$LeftItem", **base, "why": None, "cancelled": True,
                               "executable": None})
        if item.build is None:
            with self._lock:
                n = self._numbers.get(item.job, 0) + 1
                self._numbers[item.job] = n
                item.build = Build(job=item.job, number=n, **self.next_build)
                self.builds[(item.job, n)] = item.build
        b = item.build
        return _json(req, {"_class": "hudson.model.Queue$LeftItem", **base, "why": None, "cancelled": False,
                           "executable": {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
                                          "number": b.number, "url": f"{self._job_url(b.job)}{b.number}/"}})

    def _build_info(self, b: Build) -> dict:
        b.reads += 1
        building = b.reads <= b.running_polls
        return {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "actions": [], "artifacts": [],
                "building": building, "description": None, "displayName": f"#{b.number}",
                "duration": 0 if building else 754000, "estimatedDuration": 760000, "executor": None,
                "fullDisplayName": f"{' » '.join(b.job.split('/'))} #{b.number}", "id": str(b.number),
                "keepLog": False, "number": b.number, "queueId": 40, "result": None if building else b.result,
                "timestamp": 1767225610000, "url": f"{self._job_url(b.job)}{b.number}/", "changeSets": [],
                "culprits": [], "inProgress": building, "nextBuild": None, "previousBuild": None}

    def _job_url(self, job: str) -> str:
        from urllib.parse import quote

        return self.url + "".join(f"job/{quote(n, safe='')}/" for n in job.split("/"))


def test_report(junit_xml: Path) -> dict:
    """A JUnit XML file as Jenkins's testReport JSON (junit plugin with keepProperties: true)."""
    root = ET.parse(junit_xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    out, counts = [], {"pass": 0, "fail": 0, "skip": 0}
    for suite in suites:
        cases = []
        for tc in suite.findall("testcase"):
            bad = tc.find("error") if tc.find("error") is not None else tc.find("failure")
            skipped = tc.find("skipped")
            props = {p.get("name"): p.get("value") if p.get("value") is not None else (p.text or "")
                     for p in tc.findall("properties/property")}
            status = "SKIPPED" if skipped is not None else ("FAILED" if bad is not None else "PASSED")
            counts["skip" if skipped is not None else ("fail" if bad is not None else "pass")] += 1
            cases.append({"testActions": [], "age": 1 if bad is not None else 0, "className": tc.get("classname"),
                          "duration": float(tc.get("time") or 0), "errorDetails": bad.get("message") if bad is not None else None,
                          "errorStackTrace": (bad.text or "") if bad is not None else None,
                          "failedSince": 1 if bad is not None else 0, "name": tc.get("name"),
                          "properties": props, "skipped": skipped is not None,
                          "skippedMessage": skipped.get("message") if skipped is not None else None,
                          "status": status, "stderr": None, "stdout": None})
        out.append({"cases": cases, "duration": float(suite.get("time") or 0), "enclosingBlockNames": [],
                    "enclosingBlocks": [], "id": None, "name": suite.get("name"), "nodeId": None,
                    "properties": {}, "stderr": None, "stdout": None, "timestamp": suite.get("timestamp")})
    return {"_class": "hudson.tasks.junit.TestResult", "testActions": [], "duration": sum(s["duration"] for s in out),
            "empty": not out, "failCount": counts["fail"], "passCount": counts["pass"], "skipCount": counts["skip"],
            "suites": out}


def _error_page(status: int, detail: str = "") -> str:
    title = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 500: "Server Error",
             502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Error")
    return f"<html><head><title>Error {status} {title}</title></head><body><h2>HTTP ERROR {status} {title}</h2>" \
           f"<p>{detail}</p></body></html>"


def _json(req, data: dict) -> None:
    _send(req, 200, json.dumps(data), "application/json;charset=utf-8")


def _send(req, status: int, body: str, ctype: str, headers: dict | None = None) -> None:
    data = body.encode()
    req.send_response(status)
    req.send_header("Content-Type", ctype)
    req.send_header("Content-Length", str(len(data)))
    req.send_header("X-Jenkins", "2.516.1")
    for k, v in (headers or {}).items():
        req.send_header(k, v)
    req.end_headers()
    req.wfile.write(data)


def _handler(standin: JenkinsStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            standin.handle(self)

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(length) if length else b""
            standin.handle(self)

        def log_message(self, *args):  # keep test output clean (and free of request lines)
            pass

    return Handler
