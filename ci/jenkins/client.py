"""A Jenkins client for hilci on python-jenkins: credentials, retries, queue and build polling.

python-jenkins has no wait and folds 401, 403 and 500 into one exception; this wraps it so that callers get
typed errors (retry on connection errors and 5xx, never on 4xx), a timeout on every request, and a poll from
queue item to build to result. The token is held by the HTTP session only: it is never formatted into a
message, a log line or a report.
"""

from __future__ import annotations

import configparser
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from hilci.util.extras import require
from hilci.util.redact import safe_text, scrub_urls, strip_userinfo
from hilci.util.retry import Backoff, retry

CONFIG_ENV = "HILCI_JENKINS_CONFIG"
DEFAULT_CONFIG = Path("~/.config/hilci/jenkins.ini")
DEFAULT_JOB = "hilci"  # the Multibranch Pipeline project; each branch is a job inside it
VALIDATED = "Jenkinsfile successfully validated."  # what /pipeline-model-converter/validate says when it is
_warned_plain_http: set[str] = set()
EXIT_BY_RESULT = {"SUCCESS": 0, "UNSTABLE": 1, "FAILURE": 2, "ABORTED": 2, "NOT_BUILT": 2}


class JenkinsError(Exception):
    """Jenkins could not be used; the message says what to do and never contains a credential."""


class JenkinsHTTPError(JenkinsError):
    """Jenkins answered with an HTTP error status."""

    def __init__(self, status: int, url: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class QueueCancelled(JenkinsError):
    """The queue item was cancelled before a build started."""


@dataclass(frozen=True)
class Credentials:
    """Where Jenkins is and who we are; `repr` hides the token."""

    url: str
    user: str
    token: str
    job: str = DEFAULT_JOB

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, user={self.user!r}, token=<hidden>, job={self.job!r})"


def load_credentials(env: dict[str, str] | None = None, config: Path | None = None) -> Credentials:
    """JENKINS_URL/JENKINS_USER/JENKINS_TOKEN, else the [jenkins] section of a config file that must be 0600."""
    env = dict(os.environ if env is None else env)
    values = {"url": env.get("JENKINS_URL", ""), "user": env.get("JENKINS_USER", ""),
              "token": env.get("JENKINS_TOKEN", ""), "job": env.get("JENKINS_JOB", "")}
    path = config or Path(env.get(CONFIG_ENV, str(DEFAULT_CONFIG))).expanduser()
    if not all(values[k] for k in ("url", "user", "token")) and path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise JenkinsError(f"{path}: mode {mode:04o} lets others read the Jenkins token; run `chmod 600 {path}`")
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error as exc:
            raise JenkinsError(f"{path}: not an INI file ({type(exc).__name__})") from None
        if not parser.has_section("jenkins"):
            raise JenkinsError(f"{path}: no [jenkins] section (keys: url, user, token, job)")
        section = parser["jenkins"]
        for key in values:
            if not values[key]:
                values[key] = section.get(key, "").strip()
    url = urlsplit(values["url"])
    if url.username is not None:  # https://user:token@host: take them, and never keep (or print) them in the URL
        values["user"] = values["user"] or unquote(url.username)
        values["token"] = values["token"] or unquote(url.password or "")
        values["url"] = strip_userinfo(values["url"])
    missing = [f"JENKINS_{k.upper()}" for k in ("url", "user", "token") if not values[k]]
    if missing:
        raise JenkinsError(f"no Jenkins credentials: set {', '.join(missing)} or write url/user/token in the "
                           f"[jenkins] section of {path} (mode 0600)")
    if urlsplit(values["url"]).scheme not in ("http", "https"):
        raise JenkinsError(f"JENKINS_URL {strip_userinfo(values['url'])!r} is not an http(s) URL")
    return Credentials(url=values["url"].rstrip("/") + "/", user=values["user"], token=values["token"],
                       job=values["job"] or DEFAULT_JOB)


def branch_job(job: str, branch: str) -> str:
    """The job name of a branch in a Multibranch project: '/' in the branch is percent-encoded ('a%2Fb')."""
    if not branch:
        raise JenkinsError("empty branch name")
    return f"{job}/{quote(branch, safe='')}"


@dataclass(frozen=True)
class BuildRef:
    """One build: the job's full name (folders joined by '/') and its number."""

    job: str
    number: int

    def __str__(self) -> str:
        return f"{self.job} #{self.number}"


def parse_build_ref(text: str, creds: Credentials) -> BuildRef:
    """'BRANCH#N' (in the configured job), 'JOB/BRANCH#N' with --job given, or a build URL."""
    text = strip_userinfo(text.strip()) if text.startswith(("http://", "https://")) else text
    if text.startswith(("http://", "https://")):
        path = urlsplit(text).path
        base = urlsplit(creds.url).path
        if not path.startswith(base):
            raise JenkinsError(f"{text} is not a build of {creds.url}")
        parts = [p for p in path[len(base):].split("/") if p]
        if len(parts) < 3 or parts[-1].isdigit() is False or parts[0] != "job":
            raise JenkinsError(f"{text}: expected a build URL like {creds.url}job/JOB/job/BRANCH/NUMBER/")
        names = [unquote(p) for i, p in enumerate(parts[:-1]) if i % 2 == 1]
        if [p for i, p in enumerate(parts[:-1]) if i % 2 == 0] != ["job"] * len(names):
            raise JenkinsError(f"{text}: expected a build URL like {creds.url}job/JOB/job/BRANCH/NUMBER/")
        return BuildRef("/".join(names), int(parts[-1]))
    branch, sep, number = text.rpartition("#")
    if not sep or not number.isdigit() or not branch:
        raise JenkinsError(f"build {text!r}: expected BRANCH#NUMBER (e.g. main#12) or a build URL")
    return BuildRef(branch_job(creds.job, branch), int(number))


def exit_code(result: str | None) -> int:
    """SUCCESS 0, UNSTABLE 1, FAILURE or ABORTED 2 (pytest's convention, as `hilci stage` uses)."""
    return EXIT_BY_RESULT.get(result or "", 2)


class JenkinsClient:
    """Calls Jenkins through python-jenkins with retries and typed errors; polls queue items and builds."""

    def __init__(self, creds: Credentials, *, timeout_s: float = 10.0, retries: int = 4,
                 backoff_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> None:
        jenkins = require("jenkins")  # python-jenkins: the `cluster` extra; imported here so `hilci` starts without it
        requests = require("requests")

        self.creds = creds
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self._jenkins_mod = jenkins
        self._requests = requests
        self._server = _TypedJenkins(creds.url, username=creds.user, password=creds.token, timeout=timeout_s)
        warn_plain_http(creds.url)

    # -- the calls, each retried --

    def trigger(self, job: str, params: dict[str, str] | None = None) -> int:
        """Queue a build; return the queue item number (from the Location header of /build)."""
        return self._call(f"trigger {job}", self._server.build_job, job, params or None)

    def queue_item(self, number: int) -> dict:
        return self._call(f"queue item {number}", self._server.get_queue_item, number)

    def build_info(self, ref: BuildRef) -> dict:
        return self._call(f"build {ref}", self._server.get_build_info, ref.job, ref.number)

    def test_report(self, ref: BuildRef) -> dict | None:
        """The build's aggregated JUnit report (None when the build published none)."""
        return self._call(f"test report of {ref}", self._server.get_build_test_report, ref.job, ref.number)

    def console(self, ref: BuildRef) -> str:
        """The build's console text, safe for a terminal: control sequences stripped, known secrets masked."""
        text = self._call(f"console of {ref}", self._server.get_build_console_output, ref.job, ref.number)
        return safe_text(text, [self.creds.token])

    def validate_jenkinsfile(self, text: str) -> tuple[bool, str]:
        """Jenkins's own linter (`/pipeline-model-converter/validate`, the declarative grammar, steps and
        plugins of this Jenkins): whether it accepted the file, and what it said."""
        request = self._requests.Request("POST", f"{self.creds.url}pipeline-model-converter/validate",
                                         data={"jenkinsfile": text})
        answer = self._call("validate the Jenkinsfile", self._server.jenkins_open, request)
        answer = safe_text(answer, [self.creds.token]).strip()
        return answer.startswith(VALIDATED), answer

    # -- polling --

    def wait_for_build(self, queue_number: int, *, poll_s: float = 2.0, timeout_s: float = 3600.0,
                       on_wait: Callable[[str], None] = lambda why: None) -> BuildRef:
        """Poll the queue item until a build starts (reporting each new `why`); raise if it is cancelled."""
        deadline = time.monotonic() + timeout_s
        last_why = None
        while True:
            item = self.queue_item(queue_number)
            if item.get("cancelled"):
                raise QueueCancelled(f"queue item {queue_number} was cancelled before a build started")
            executable = item.get("executable")
            if executable:
                url = executable.get("url", "")
                job = _job_from_url(url, self.creds.url) if url else item.get("task", {}).get("name", "")
                return BuildRef(job, int(executable["number"]))
            why = item.get("why") or "waiting in the queue"
            if why != last_why:
                on_wait(why)
                last_why = why
            if time.monotonic() > deadline:
                raise JenkinsError(f"queue item {queue_number} still waiting after {timeout_s:.0f} s: {why}")
            self.sleep(poll_s)

    def wait_for_result(self, ref: BuildRef, *, poll_s: float = 5.0, timeout_s: float = 4 * 3600.0,
                        on_console: Callable[[str], None] | None = None) -> dict:
        """Poll the build until it ends; with `on_console`, hand over each new piece of the console."""
        deadline = time.monotonic() + timeout_s
        shown = 0
        while True:
            info = self.build_info(ref)
            if on_console is not None:
                text = self.console(ref)
                if len(text) > shown:
                    on_console(text[shown:])
                    shown = len(text)
            if not info.get("building") and info.get("result"):
                return info
            if time.monotonic() > deadline:
                raise JenkinsError(f"{ref} still running after {timeout_s:.0f} s")
            self.sleep(poll_s)

    # -- retries and error mapping --

    def _call(self, what: str, func, *args):
        jenkins, requests = self._jenkins_mod, self._requests
        transient = (JenkinsHTTPError, requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                     jenkins.TimeoutException)
        try:
            return retry(lambda: func(*args), on=transient, attempts=self.retries + 1,
                         backoff=Backoff(first_s=self.backoff_s, max_s=30.0), sleep=self.sleep,
                         give_up=lambda exc: isinstance(exc, JenkinsHTTPError) and exc.status < 500)
        except JenkinsHTTPError as exc:  # 4xx at once, 5xx after the last try
            raise JenkinsHTTPError(exc.status, exc.url, f"{what}: {exc}") from None
        except jenkins.NotFoundException:
            raise JenkinsHTTPError(404, self.creds.url, f"{what}: not found (404) on {self.creds.url}: "
                                                        "check the job, branch and build number") from None
        except transient as exc:
            raise JenkinsError(f"{what}: no answer from {self.creds.url} after {self.retries + 1} tries "
                               f"({type(exc).__name__})") from None
        except jenkins.JenkinsException as exc:
            raise JenkinsError(f"{what}: {_scrub(str(exc), self.creds.token)}") from None


def warn_plain_http(url: str) -> None:
    """Basic auth over plain http sends the token in clear text: say so, once per Jenkins per process."""
    if urlsplit(url).scheme == "http" and url not in _warned_plain_http:
        _warned_plain_http.add(url)
        print(f"hilci: warning: {url} is plain http: the API token travels unencrypted (use https)",
              file=sys.stderr)


def _scrub(text: str, secret: str) -> str:
    return scrub_urls(text.replace(secret, "<hidden>") if secret else text)


def _job_from_url(url: str, base: str) -> str:
    path = urlsplit(url).path
    base_path = urlsplit(base).path
    parts = [p for p in path[len(base_path):].split("/") if p] if path.startswith(base_path) else []
    names = [unquote(p) for i, p in enumerate(parts) if i % 2 == 1 and not p.isdigit()]
    return "/".join(names)


def _explain(status: int, url: str) -> str:
    if status == 401:
        return ("401 Unauthorized: Jenkins rejected the user or API token (JENKINS_USER / JENKINS_TOKEN); "
                "make a token under <Jenkins>/user/<you>/configure")
    if status == 403:
        return ("403 Forbidden: the user lacks a permission (Job/Build, Job/Read) or the CSRF crumb was refused; "
                "ask the Jenkins admin for Job/Build on this project")
    if status == 404:
        return f"not found (404): {url}: check the job, branch and build number"
    return f"HTTP {status} from {url}"


def _typed_jenkins_class():
    import jenkins

    class TypedJenkins(jenkins.Jenkins):
        """python-jenkins with HTTP errors raised by status (404 kept as python-jenkins's NotFoundException)."""

        def _response_handler(self, response):
            if response.status_code == 404:
                raise jenkins.NotFoundException("not found")
            if response.status_code >= 400:
                url = strip_userinfo(response.url.split("?")[0])
                raise JenkinsHTTPError(response.status_code, url, _explain(response.status_code, url))
            return response

    return TypedJenkins


def _TypedJenkins(*args, **kwargs):  # noqa: N802 - a factory standing for the class built on first use
    return _typed_jenkins_class()(*args, **kwargs)
