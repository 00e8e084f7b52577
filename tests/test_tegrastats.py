"""Our own tegrastats parser (jetson-stats is AGPL): the real line formats of JetPack 6, JetPack 5 on Orin and
older releases, unknown tokens tolerated, a line that is not tegrastats's named in one line, and the reader:
a missing command or a bad line said once, with every good sample kept."""

from __future__ import annotations

import sys

import pytest

from hilci.hil import tegrastats
from hilci.hil.emulators.tegrastats import line as standin_line
from hilci.hil.faults import parse_fault
from hilci.hil.tegrastats import Reader, TegrastatsError, parse_line

# DESIGN.md's Orin Nano line (JetPack 6): GR3D_FREQ without a clock
JP6 = ("08-23-2026 13:57:46 RAM 3595/7607MB (lfb 1x1MB) SWAP 11/3804MB (cached 0MB) CPU [100%@1728,1%@1728,"
       "0%@1728,2%@1728,off,off] GR3D_FREQ 0% cpu@51C soc2@50.562C soc0@51.031C gpu@50.625C tj@51.781C "
       "soc1@51.781C VDD_IN 5832mW/5852mW VDD_CPU_GPU_CV 1307mW/1327mW VDD_SOC 1468mW/1468mW")
# JetPack 5 on AGX Orin: a clock per GPC, other rail names, unknown engines (NVENC, APE) in between
JP5 = ("RAM 2452/30536MB (lfb 6488x4MB) SWAP 0/15268MB (cached 0MB) CPU [1%@729,0%@729,2%@729,0%@729] "
       "EMC_FREQ 0%@2133 GR3D_FREQ 61%@[1300,1300] NVENC off APE 174 CPU@45.5C tboard@35C SOC2@42.25C "
       "Tdiode@37.75C CV0@-256C GPU@44.6C tj@45.5C VDD_GPU_SOC 2388mW/2388mW VDD_CPU_CV 398mW/398mW "
       "VIN_SYS_5V0 3230mW/3230mW VDDQ_VDD2_1V8AO 506mW/506mW")
OLD = "RAM 1600/3964MB (lfb 4x2MB) IRAM 0/252kB(lfb 252kB) CPU [3%@102,1%@102,0%@102,0%@102] GR3D_FREQ 12%@76 " \
      "PLL@19C CPU@22.5C GPU@21C thermal@21.5C POM_5V_IN 1110/1110"


def test_the_jetpack6_line_of_design_md():
    s = parse_line(JP6, t=5.0)
    assert (s.t, s.ram_used_mb, s.ram_total_mb) == (5.0, 3595, 7607)
    assert s.cpu_load == [100, 1, 0, 2]  # the two `off` cores are not loads
    assert (s.gpu_load_pct, s.gpu_mhz) == (0, None)  # JetPack 6 prints no GPU clock
    assert s.temps["tj"] == 51.781 and len(s.temps) == 6
    assert s.hottest == ("tj", 51.781)
    assert s.power_mw == {"VDD_IN": 5832, "VDD_CPU_GPU_CV": 1307, "VDD_SOC": 1468}


def test_jetpack5_gpc_clocks_agx_rails_and_unknown_tokens():
    s = parse_line(JP5)
    assert (s.gpu_load_pct, s.gpu_mhz) == (61, 1300)
    assert "CV0" not in s.temps  # a sensor that is off reads -256C
    assert s.temps["GPU"] == 44.6 and s.temps["tboard"] == 35
    assert set(s.power_mw) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}


def test_an_older_release_without_a_date():
    s = parse_line(OLD)
    assert (s.ram_used_mb, s.gpu_load_pct, s.gpu_mhz) == (1600, 12, 76)
    assert s.hottest == ("CPU", 22.5)


@pytest.mark.parametrize("bad, says", [
    ("hello world", "not a tegrastats line"),
    ("", "not a tegrastats line"),
    ("RAM lots GR3D_FREQ 3%", "RAM 'lots': expected USED/TOTALMB"),
    ("RAM 1/2MB GR3D_FREQ fast", "GR3D_FREQ 'fast'"),
])
def test_a_line_that_is_not_tegrastats_is_one_line_quoting_it(bad, says):
    with pytest.raises(TegrastatsError) as err:
        parse_line(bad)
    assert says in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith("tegrastats: ")


def test_a_very_long_bad_line_is_quoted_short():
    with pytest.raises(TegrastatsError) as err:
        parse_line("x" * 5000)
    assert len(str(err.value)) < 250


def test_the_standin_prints_lines_the_parser_reads_and_throttle_and_leak_show():
    import random

    faults = [parse_fault("throttle:ramp=10,after_s=1,fraction=0.3", allowed=("throttle", "leak")),
              parse_fault("leak:ramp=50", allowed=("throttle", "leak"))]
    rng = random.Random(0)
    cool, hot = (parse_line(standin_line(0.0, t, faults, rng, 625, "jp5")) for t in (0.5, 3.0))
    assert cool.gpu_mhz == 625 and hot.gpu_mhz == pytest.approx(625 * 0.7, abs=1)
    assert hot.hottest[1] > cool.hottest[1] + 15
    assert hot.ram_used_mb - cool.ram_used_mb == pytest.approx(125, abs=1)
    assert parse_line(standin_line(0.0, 0.0, [], rng, 625, "jp6")).gpu_mhz is None


def test_a_missing_tegrastats_is_one_line_and_no_samples():
    r = Reader(["no-such-tegrastats-here"]).start()
    r.stop()
    assert r.samples == [] and "no-such-tegrastats-here not found on PATH" in r.problem and "\n" not in r.problem


def test_the_reader_keeps_every_good_line_around_a_bad_one(tmp_path):
    script = tmp_path / "fake-tegrastats"
    script.write_text(f"#!{sys.executable}\nimport sys, time\n"
                      f"print({JP6!r}); print('Segmentation fault (core dumped)'); print({JP6!r})\n"
                      "sys.stdout.flush(); time.sleep(30)\n")
    script.chmod(0o755)
    r = Reader([str(script)], interval_ms=100).start()
    deadline = __import__("time").monotonic() + 10
    while len(r.samples) < 2 and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.02)
    r.stop(timeout=3)
    assert len(r.samples) == 2 and r.bad_lines == 1
    assert r.problem == "tegrastats: not a tegrastats line (no RAM, GR3D_FREQ or temperature): " \
                        "'Segmentation fault (core dumped)'"
    assert r.proc.poll() is not None  # stopped, not left behind


def test_the_reader_names_a_tegrastats_that_exits_silently(tmp_path):
    script = tmp_path / "quiet"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    r = Reader([str(script)]).start()
    r.proc.wait(5)
    r.stop()
    assert r.problem == f"tegrastats: {script} exited with 3 before printing a line"
    assert tegrastats.MAX_QUOTE == 120
