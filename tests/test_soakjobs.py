"""The nightly soak as a CronJob per rig (deploy/soak-cronjobs.yaml): rendered from the one definition and
hilci.yaml's soak: section, committed equal to the rendering, schema-strict, within the pod rules, Forbid, the rig
requested, and a cron spec without Jenkins's H."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from hilci.example import PIPELINE
from hilci.kube.podtemplates import check_file, pod_spec
from hilci.kube.resources import RIG
from hilci.kube.soakjobs import MANIFEST, render
from hilci.pipeline.config import load
from hilci.pipeline.sections import SoakSettings
from hilci.pipeline.soakschedule import without_h
from tests.conftest import hilci

ROOT = Path(__file__).resolve().parents[1]


def jobs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_committed_cronjobs_equal_the_rendering_and_pass_strict_and_our_rules():
    soak = load(ROOT, PIPELINE).soak
    committed = (ROOT / MANIFEST).read_text()
    assert committed == render(PIPELINE, ROOT, soak, "hilci.example:PIPELINE"), \
        "deploy/soak-cronjobs.yaml is stale: run `hilci soakjobs --write`"
    docs = check_file(ROOT / MANIFEST)  # kubernetes-validate --strict and the pod rules every template keeps
    assert [d.data["metadata"]["name"] for d in docs] == [f"hilci-soak-{b.name}" for b in PIPELINE.boards]


def test_one_cronjob_per_rig_forbids_overlap_and_holds_the_rig():
    soak = SoakSettings(schedule="H 2 * * *", duration="90m")
    docs = jobs(render(PIPELINE, ROOT, soak))
    assert len(docs) == len(PIPELINE.boards)
    for board, doc in zip(PIPELINE.boards, docs, strict=True):
        spec = doc["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert re.fullmatch(r"\d+ 2 \* \* \*", spec["schedule"])  # H made a number: a CronJob has no H
        job = spec["jobTemplate"]["spec"]
        assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == 90 * 60 + 1800
        pod = job["template"]["spec"]
        assert pod["restartPolicy"] == "Never" and pod["nodeSelector"]["hilci.dev/board"] == board.name
        (c,) = pod["containers"]  # Jenkins's jnlp container is not part of a CronJob
        assert c["resources"]["requests"][RIG] == "1" and c["resources"]["limits"][RIG] == "1"
        assert f"exec hilci soak --board {board.name} --rig \"${{HILCI_RIG:-{board.rig}}}\" --duration 90m" \
            in c["command"][2]
    assert docs[0]["spec"]["schedule"] != docs[1]["spec"]["schedule"]  # each rig its own minute


def test_jenkins_h_becomes_a_stable_number_in_range():
    assert without_h("H H(1-3) * * 1-5", "orin-nx") == without_h("H H(1-3) * * 1-5", "orin-nx")
    minute, hour, *rest = without_h("H H(1-3) * * 1-5", "orin-nx").split()
    assert 0 <= int(minute) <= 59 and 1 <= int(hour) <= 3 and rest == ["*", "*", "1-5"]
    step = without_h("H/15 * * * *", "agx").split()[0]
    first, _, every = step.partition("-59/")
    assert every == "15" and 0 <= int(first) < 15
    assert without_h("5 4 * * *", "x") == "5 4 * * *"


def test_check_says_when_the_manifest_is_stale(tmp_path):
    project = tmp_path / "p"  # what the rendering reads: hilci.yaml, the pod templates, the committed manifest
    shutil.copytree(ROOT / "podtemplates", project / "podtemplates")
    shutil.copy(ROOT / "hilci.yaml", project / "hilci.yaml")
    (project / "deploy").mkdir()
    shutil.copy(ROOT / MANIFEST, project / MANIFEST)
    assert hilci(project, "soakjobs", "--check", pipeline="").returncode == 0
    (project / MANIFEST).write_text((project / MANIFEST).read_text().replace("Forbid", "Allow"))
    proc = hilci(project, "soakjobs", "--check", pipeline="")
    assert proc.returncode == 1 and "run `hilci soakjobs --write`" in proc.stderr and "+  concurrencyPolicy: Forbid" in \
        proc.stderr.replace("+    ", "+  ").replace("+      ", "+  ")


@pytest.mark.parametrize("section", ["", "soak:\n  schedule: H 2 * *\n"])
def test_no_or_a_bad_soak_section_is_one_line(tmp_path, section):
    project = tmp_path / "p"
    project.mkdir()
    (project / "hilci.yaml").write_text("pipeline: hilci.example:PIPELINE\n" + section)
    proc = hilci(project, "soakjobs", pipeline="")
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert ("no soak: section" in line) if not section else ("soak.schedule: 'H 2 * *': expected a cron spec" in line)


def test_pod_spec_of_a_cronjob_is_its_jobs_pod():
    (doc,) = jobs(render(PIPELINE, ROOT, SoakSettings()))[:1]
    from hilci.kube.podtemplates import Document

    assert pod_spec(Document(Path("x.yaml"), 0, doc))["restartPolicy"] == "Never"
