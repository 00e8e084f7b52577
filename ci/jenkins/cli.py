"""`hilci trigger/status/results/logs`: drive and read the Jenkins pipeline from a laptop.

Exit codes follow the build's result: SUCCESS 0, UNSTABLE 1 (a gate failed), FAILURE or ABORTED 2.
Credentials come from JENKINS_URL/JENKINS_USER/JENKINS_TOKEN or a 0600 config file (hilci.jenkins.client).
"""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("trigger", help="queue a Jenkins build of a branch (optionally wait for it)")
    p.add_argument("--branch", required=True, help="branch to build, e.g. main or feature/imu-rate")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="build parameter (repeatable)")
    p.add_argument("--wait", action="store_true", help="wait for the build; exit with its result")
    p.add_argument("--follow", action="store_true", help="wait and print the console as it grows")
    _common(p)
    p.set_defaults(func=cmd_trigger)
    for name, func, text in (("status", cmd_status, "result and timing of a Jenkins build"),
                             ("results", cmd_results, "a Jenkins build's tests: counts, failures, measurements"),
                             ("logs", cmd_logs, "a Jenkins build's console text")):
        p = subparsers.add_parser(name, help=text)
        p.add_argument("build", metavar="BUILD", help="BRANCH#NUMBER (e.g. main#12) or the build's URL")
        _common(p)
        p.set_defaults(func=func)


def _common(p) -> None:
    p.add_argument("--job", default=None, help="Multibranch project name (default: JENKINS_JOB or 'hilci')")
    p.add_argument("--poll", type=float, default=None, help="seconds between polls")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    p.add_argument("--request-timeout", type=float, default=10.0, help="seconds per HTTP request (default 10)")


def _client(args):
    from dataclasses import replace

    from hilci.errors import UsageError
    from hilci.jenkins.client import JenkinsClient, JenkinsError, load_credentials

    try:
        creds = load_credentials()
    except JenkinsError as exc:
        raise UsageError(str(exc)) from None
    if args.job:
        creds = replace(creds, job=args.job)
    return JenkinsClient(creds, timeout_s=args.request_timeout)


def _run(args, body) -> int:
    """Run a command body; Jenkins errors become one line on stderr and exit 2."""
    from hilci.jenkins.client import JenkinsError
    from hilci.util.redact import scrub_urls

    try:
        return body(_client(args))
    except JenkinsError as exc:
        print(f"hilci: error: {scrub_urls(str(exc))}", file=sys.stderr)
        return 2


def cmd_trigger(args) -> int:
    from hilci.errors import UsageError
    from hilci.jenkins.client import branch_job

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected K=V")
        params[key] = value

    def body(client) -> int:
        job = branch_job(client.creds.job, args.branch)
        number = client.trigger(job, params)
        print(f"queued {job}: {client.creds.url}queue/item/{number}/", flush=True)
        if not (args.wait or args.follow):
            return 0
        ref = client.wait_for_build(number, poll_s=_or(args.poll, 2.0), timeout_s=_or(args.timeout, 3600.0),
                                    on_wait=lambda why: print(f"waiting: {why}", flush=True))
        print(f"started {ref}", flush=True)
        follow = (lambda text: sys.stdout.write(text) and sys.stdout.flush()) if args.follow else None
        info = client.wait_for_result(ref, poll_s=_or(args.poll, 5.0), timeout_s=_or(args.timeout, 4 * 3600.0),
                                      on_console=follow)
        return _finished(ref, info)

    return _run(args, body)


def _finished(ref, info: dict) -> int:
    """Say how a finished build ended, with its duration and URL; its exit code (0 only for SUCCESS)."""
    from hilci.jenkins.client import exit_code

    print(f"{ref}: {info.get('result')} ({_duration(info)})  {info.get('url', '')}")
    return exit_code(info.get("result"))


def cmd_status(args) -> int:
    from hilci.jenkins.client import parse_build_ref

    def body(client) -> int:
        ref = parse_build_ref(args.build, client.creds)
        info = client.build_info(ref)
        if info.get("building"):
            print(f"{ref}: RUNNING for {_duration(info, running=True)}  {info.get('url', '')}")
            return 0
        return _finished(ref, info)

    return _run(args, body)


def cmd_results(args) -> int:
    from hilci.jenkins.client import exit_code, parse_build_ref
    from hilci.jenkins.results import format_report
    from hilci.util.redact import safe_text

    def body(client) -> int:
        ref = parse_build_ref(args.build, client.creds)
        info = client.build_info(ref)
        report = client.test_report(ref)
        print(f"{ref}: {info.get('result') or 'RUNNING'}  {info.get('url', '')}")
        if report is None:
            print("no test report published")
        else:
            print(safe_text(format_report(report), [client.creds.token]))
        return 0 if info.get("building") else exit_code(info.get("result"))

    return _run(args, body)


def cmd_logs(args) -> int:
    from hilci.jenkins.client import parse_build_ref

    def body(client) -> int:
        ref = parse_build_ref(args.build, client.creds)
        sys.stdout.write(client.console(ref))
        return 0

    return _run(args, body)


def _or(value, default):
    return default if value is None else value


def _duration(info: dict, running: bool = False) -> str:
    import time

    ms = info.get("duration") or 0
    if running and info.get("timestamp"):
        ms = time.time() * 1000 - info["timestamp"]
    seconds = int(ms / 1000)
    return f"{seconds // 60}m{seconds % 60:02d}s"
