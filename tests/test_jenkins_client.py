"""`hilci trigger/status/results/logs` against a local server answering as the Jenkins REST API does."""

from __future__ import annotations

import logging
import os

import pytest

from hilci import cli
from hilci.errors import UsageError
from hilci.jenkins.client import (
    Credentials,
    JenkinsClient,
    JenkinsError,
    JenkinsHTTPError,
    QueueCancelled,
    load_credentials,
    parse_build_ref,
)
from hilci.results.junit import write_suite
from hilci.results.measurements import distribution, measure
from tests.jenkins_standin import CRUMB, CRUMB_FIELD, JenkinsStandIn

pytestmark = [pytest.mark.server]  # what it needs: the fast tier leaves it out

BRANCH = "feature/imu-rate"
JOB = "hilci/feature%2Fimu-rate"  # how Jenkins names a branch job in a Multibranch project


@pytest.fixture
def jenkins(monkeypatch, tmp_path):
    with JenkinsStandIn() as server:
        server.jobs.add(JOB)
        monkeypatch.setenv("JENKINS_URL", server.url)
        monkeypatch.setenv("JENKINS_USER", server.user)
        monkeypatch.setenv("JENKINS_TOKEN", server.token)
        monkeypatch.setenv("HILCI_JENKINS_CONFIG", str(tmp_path / "absent.ini"))
        monkeypatch.delenv("JENKINS_JOB", raising=False)
        yield server


@pytest.fixture
def hil_junit(tmp_path):
    """A HIL stage's JUnit: the IMU rate below its limit (a failing measurement), latency within budget."""
    from hilci.results.junit import make_case

    rate = measure("imu.rate", 188.2, "Hz", low=196.0, high=204.0, nominal="200 Hz ±2%")
    latency = distribution("imu.latency", [1.0, 1.1, 1.2, 1.3, 1.25], "ms", high=2.0)
    cases = [make_case("test_imu_rate", "hil_tests.test_imu.TestImu", time=2.0, measurements=[rate]),
             make_case("test_imu_latency", "hil_tests.test_imu.TestImu", time=1.0, measurements=[latency]),
             make_case("test_servo_safe_state", "hil_tests.test_servo.TestServo", skipped="no servo on this rig")]
    return write_suite(tmp_path / "hil-orin-nx.xml", "hilci.hil.orin-nx", cases)


def client(server: JenkinsStandIn, token: str | None = None, **kw) -> JenkinsClient:
    creds = Credentials(url=server.url, user=server.user, token=token or server.token)
    return JenkinsClient(creds, timeout_s=5, sleep=lambda s: None, backoff_s=0.0, **kw)


def test_trigger_wait_results_end_to_end_unstable(jenkins, hil_junit, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    jenkins.next_build = {"result": "UNSTABLE", "running_polls": 2, "junit": hil_junit}
    code = cli.main(["trigger", "--branch", BRANCH, "--wait", "--poll", "0"])
    out = capsys.readouterr()
    assert code == 1, out
    assert f"queued {JOB}: {jenkins.url}queue/item/40/" in out.out
    assert "waiting: In the quiet period. Expires in 4.9 sec" in out.out
    assert "waiting: Waiting for next available executor" in out.out
    assert f"{JOB} #1: UNSTABLE" in out.out
    post = [(m, p, h) for m, p, h in jenkins.requests if m == "POST"]
    assert [p for _, p, _ in post] == ["/job/hilci/job/feature%252Fimu-rate/build"]
    assert post[0][2].get(CRUMB_FIELD) == CRUMB

    code = cli.main(["results", f"{BRANCH}#1"])
    res = capsys.readouterr()
    assert code == 1
    assert "tests: 3  passed: 1  failed: 1  skipped: 1" in res.out
    assert ("FAIL hilci.hil.orin-nx :: hil_tests.test_imu.TestImu.test_imu_rate: "
            "imu rate 188.2 Hz below limit 196 Hz (200 Hz ±2%)") in res.out
    assert "imu.rate = 188.2 Hz  [fail]  (limit >= 196.0 and <= 204.0)" in res.out
    assert "pass  imu.latency" in res.out and "p99=" in res.out
    for text in (out.out, out.err, res.out, res.err, caplog.text):
        assert jenkins.token not in text


def test_follow_prints_the_console_and_success_exits_0(jenkins, capsys):
    jenkins.next_build = {"result": "SUCCESS", "running_polls": 2,
                          "console": ["Started\n", "[Pipeline] stage\n", "hilci stage build\n", "Finished: SUCCESS\n"]}
    assert cli.main(["trigger", "--branch", "main", "--follow", "--poll", "0"]) == 0
    out = capsys.readouterr().out
    assert out.index("[Pipeline] stage") < out.index("hilci stage build") < out.index("Finished: SUCCESS")
    assert cli.main(["status", "main#1"]) == 0
    assert "hilci/main #1: SUCCESS (12m34s)" in capsys.readouterr().out
    assert cli.main(["logs", f"{jenkins.url}job/hilci/job/main/1/"]) == 0
    assert "Finished: SUCCESS" in capsys.readouterr().out


@pytest.mark.parametrize("result, code", [("FAILURE", 2), ("ABORTED", 2), ("UNSTABLE", 1), ("SUCCESS", 0)])
def test_status_exit_code_follows_the_result(jenkins, capsys, result, code):
    jenkins.next_build = {"result": result, "running_polls": 0}
    c = client(jenkins)
    ref = c.wait_for_build(c.trigger("hilci/main"), poll_s=0)
    assert cli.main(["status", f"main#{ref.number}"]) == code
    assert result in capsys.readouterr().out


def test_params_go_to_build_with_parameters(jenkins):
    c = client(jenkins)
    number = c.trigger("hilci/main", {"BOARD": "orin-nx"})
    assert jenkins.queue[number].params == {"BOARD": "orin-nx"}
    assert ("POST", "/job/hilci/job/main/buildWithParameters") in [(m, p) for m, p, _ in jenkins.requests]


def test_a_wrong_token_is_401_explained_not_retried_and_never_printed(jenkins, capsys, monkeypatch):
    monkeypatch.setenv("JENKINS_TOKEN", "wrong-token-5f1e")
    assert cli.main(["trigger", "--branch", "main"]) == 2
    err = capsys.readouterr().err
    assert "401 Unauthorized" in err and "JENKINS_TOKEN" in err
    assert "wrong-token-5f1e" not in err
    assert len(jenkins.requests) == 1  # the crumb request, refused; no retry on 4xx


def test_5xx_and_dropped_connections_are_retried(jenkins):
    jenkins.fail_next = [500, 503]
    c = client(jenkins)
    number = c.trigger("hilci/main")
    assert jenkins.queue[number].job == "hilci/main"
    jenkins.drop_next = 1
    assert c.queue_item(number)["id"] == number


def test_retries_give_up_with_the_status(jenkins):
    jenkins.fail_next = [500] * 10
    with pytest.raises(JenkinsHTTPError) as err:
        client(jenkins, retries=2).queue_item(1)
    assert err.value.status == 500 and "HTTP 500" in str(err.value)
    assert len(jenkins.requests) == 3


def test_a_dead_server_fails_after_retries(jenkins):
    creds = Credentials(url="http://127.0.0.1:9/", user="alice", token=jenkins.token)
    with pytest.raises(JenkinsError, match="no answer from http://127.0.0.1:9/ after 3 tries"):
        JenkinsClient(creds, timeout_s=1, retries=2, sleep=lambda s: None).queue_item(1)


def test_unknown_build_and_job_are_404_without_retry(jenkins, capsys):
    assert cli.main(["status", "main#99"]) == 2
    assert "number[99] does not exist" in capsys.readouterr().err
    assert cli.main(["trigger", "--branch", "no/such-branch"]) == 2
    assert "404" in capsys.readouterr().err
    assert sum(1 for m, _, _ in jenkins.requests if m == "POST") == 1


def test_a_cancelled_queue_item_exits_2(jenkins, capsys):
    jenkins.cancel_next = True
    assert cli.main(["trigger", "--branch", "main", "--wait", "--poll", "0"]) == 2
    assert "was cancelled before a build started" in capsys.readouterr().err
    with pytest.raises(QueueCancelled):
        client(jenkins).wait_for_build(40, poll_s=0)


def test_results_of_a_build_without_a_report(jenkins, capsys):
    jenkins.next_build = {"result": "FAILURE", "running_polls": 0}
    c = client(jenkins)
    c.wait_for_build(c.trigger("hilci/main"), poll_s=0)
    assert cli.main(["results", "main#1"]) == 2
    assert "no test report published" in capsys.readouterr().out


def test_credentials_from_a_0600_file_only(tmp_path, jenkins):
    ini = tmp_path / "jenkins.ini"
    ini.write_text(f"[jenkins]\nurl = {jenkins.url}\nuser = alice\ntoken = {jenkins.token}\njob = robots\n")
    os.chmod(ini, 0o644)
    with pytest.raises(JenkinsError, match="mode 0644 lets others read the Jenkins token; run `chmod 600"):
        load_credentials(env={}, config=ini)
    os.chmod(ini, 0o600)
    creds = load_credentials(env={}, config=ini)
    assert creds.job == "robots" and jenkins.token not in repr(creds)
    with pytest.raises(JenkinsError, match="set JENKINS_URL, JENKINS_USER, JENKINS_TOKEN"):
        load_credentials(env={}, config=tmp_path / "none.ini")


def test_missing_credentials_are_a_usage_error(monkeypatch, tmp_path, capsys):
    for var in ("JENKINS_URL", "JENKINS_USER", "JENKINS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HILCI_JENKINS_CONFIG", str(tmp_path / "none.ini"))
    assert cli.main(["status", "main#1"]) == 2
    assert "hilci: error: no Jenkins credentials" in capsys.readouterr().err


def test_build_refs():
    creds = Credentials(url="https://ci.example.com/jenkins/", user="a", token="t")
    assert str(parse_build_ref("feature/x#7", creds)) == "hilci/feature%2Fx #7"
    ref = parse_build_ref("https://ci.example.com/jenkins/job/hilci/job/feature%252Fx/7/", creds)
    assert (ref.job, ref.number) == ("hilci/feature%2Fx", 7)
    for bad in ("main", "main#x", "#3", "https://other.example.com/job/a/1/"):
        with pytest.raises(JenkinsError):
            parse_build_ref(bad, creds)
    with pytest.raises(UsageError):
        from types import SimpleNamespace

        from hilci.jenkins.cli import cmd_trigger
        cmd_trigger(SimpleNamespace(param=["novalue"], branch="main"))


# -- secrets and the terminal --

def _creds_in_url(server: JenkinsStandIn) -> str:
    return server.url.replace("http://", f"http://{server.user}:{server.token}@", 1)


def test_credentials_inside_jenkins_url_work_and_are_never_printed(jenkins, capsys, monkeypatch):
    monkeypatch.setenv("JENKINS_URL", _creds_in_url(jenkins))
    monkeypatch.delenv("JENKINS_USER")
    monkeypatch.delenv("JENKINS_TOKEN")
    creds = load_credentials()
    assert (creds.url, creds.user, creds.token) == (jenkins.url, jenkins.user, jenkins.token)
    jenkins.next_build = {"result": "SUCCESS", "running_polls": 1}
    assert cli.main(["trigger", "--branch", "main", "--wait", "--poll", "0"]) == 0
    assert cli.main(["status", "main#99"]) == 2  # a 404, whose message names the URL
    assert cli.main(["status", _creds_in_url(jenkins) + "job/hilci/job/main/98/"]) == 2
    out = capsys.readouterr()
    assert "number[98] does not exist" in out.err and f"{jenkins.url}job/hilci/job/main/" in out.out
    for text in (out.out, out.err):
        assert jenkins.token not in text and f"{jenkins.user}:" not in text


def test_a_bad_jenkins_url_with_credentials_is_named_without_them(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("JENKINS_URL", "ftp://bob:s3cr3t-t0ken@jenkins.example/")
    monkeypatch.setenv("HILCI_JENKINS_CONFIG", str(tmp_path / "absent.ini"))
    assert cli.main(["status", "main#1"]) == 2
    err = capsys.readouterr().err
    assert "is not an http(s) URL" in err and "s3cr3t-t0ken" not in err and "bob" not in err


def test_console_text_is_stripped_of_control_sequences_and_secrets(jenkins, capsys, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-K7MDENG")
    jenkins.next_build = {"result": "SUCCESS", "running_polls": 0, "console": [
        "Started\n", "\x1b[31mred\x1b[0m \x1b]0;pwned title\x07after\n",
        f"curl -u alice:{jenkins.token} https://bob:hunter2hunter2@repo.example/x\n",
        "key wJalrXUtnFEMI-K7MDENG\x1b[2J\x1b[H cleared\x07\x08\n", "Finished: SUCCESS\n"]}
    c = client(jenkins)
    c.wait_for_build(c.trigger("hilci/main"), poll_s=0)
    for _ in range(3):  # the stand-in's console grows with each read
        c.build_info(parse_build_ref("main#1", c.creds))
    assert cli.main(["logs", "main#1"]) == 0
    out = capsys.readouterr().out
    assert "red after" in out and "key **** cleared" in out and "Finished: SUCCESS" in out
    assert "\x1b" not in out and "\x07" not in out and "\x08" not in out and "pwned" not in out
    assert jenkins.token not in out and "wJalrXUtnFEMI" not in out and "hunter2" not in out
    assert "https://repo.example/x" in out


def test_basic_auth_over_plain_http_warns_once(jenkins, capsys, monkeypatch):
    from hilci.jenkins import client as client_module

    monkeypatch.setattr(client_module, "_warned_plain_http", set())
    client(jenkins)
    client(jenkins)
    err = capsys.readouterr().err
    assert err.count("plain http: the API token travels unencrypted") == 1
    client_module.warn_plain_http("https://jenkins.example/")
    assert capsys.readouterr().err == ""


# -- hilci jenkinsfile --lint: Jenkins's own declarative linter --

def test_lint_posts_the_jenkinsfile_and_prints_the_verdict(jenkins, capsys, monkeypatch):
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    assert cli.main(["jenkinsfile", "--lint"]) == 0
    assert "Jenkinsfile: Jenkinsfile successfully validated." in capsys.readouterr().out
    assert jenkins.validated == [(root / "Jenkinsfile").read_text()]
    post = [h for m, p, h in jenkins.requests if p == "/pipeline-model-converter/validate"]
    assert post and post[0].get(CRUMB_FIELD) == CRUMB

    jenkins.lint_errors = ["WorkflowScript: 12: Invalid option type \"disableConcurentBuilds\". Valid option types: "
                           "[buildDiscarder, disableConcurrentBuilds, ...] @ line 12, column 9.", "1 error"]
    assert cli.main(["jenkinsfile", "--lint"]) == 1
    err = capsys.readouterr().err
    assert "Jenkins's linter refused it:" in err and "Errors encountered validating Jenkinsfile:" in err
    assert "WorkflowScript: 12: Invalid option type" in err


def test_lint_with_a_wrong_token_is_one_line(jenkins, capsys, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[1])
    monkeypatch.setenv("JENKINS_TOKEN", "wrong-token-5f1e")
    assert cli.main(["jenkinsfile", "--lint"]) == 2
    err = capsys.readouterr().err
    assert "cannot lint" in err and "401 Unauthorized" in err and "wrong-token-5f1e" not in err
