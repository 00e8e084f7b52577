"""The HTML report explains: read back as a browser's parser would (header facts, grouped failures, histograms)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from hilci.pipeline.model import StageOutcome
from hilci.report.html import nice_ticks, write_reports
from hilci.results import junit
from hilci.results.measurements import Measurement, distribution, measure

PORT_GONE = "imu at /dev/serial/by-id/usb-imu did not answer within 2 s"
SUITE_FACTS = [("hilci.commit", "0123456789abcdef0123"), ("hilci.branch", "feature/servo"),
               ("hilci.board", "orin-nx"), ("hilci.host", "jetson-01"), ("hil.platform", "emulated"),
               ("hil.rigs", "sim=hil_tests/rigs/sim.yaml")]


def build_report(root: Path) -> Path:
    """A run as a user meets it: train passed, quantize cached, hil failed (a port gone, a budget missed)."""
    jdir, logs = root / "reports" / "junit", root / "reports" / "logs"
    logs.mkdir(parents=True)
    train = junit.write_suite(jdir / "train.xml", "hilci.train", [
        junit.make_case("accuracy", "hilci.train", time=3.2,
                        measurements=[measure("train.accuracy", 0.99166, low=0.95)])], [("hilci.stage", "train")])
    quantize = junit.write_suite(jdir / "quantize.xml", "hilci.quantize", [
        junit.make_case("drop", "hilci.quantize", time=1.0, measurements=[
            measure("quantize.qat_drop", 0.2, "pp", high=1.0), measure("quantize.ptq_drop", 0.4, "pp")])],
        [("hilci.stage", "quantize"), ("hilci.cached", "true"), ("hilci.cached.duration_s", "41.5")])
    samples = [0.8 + 0.001 * (i % 200) for i in range(1960)] + [3.0 + 0.1 * i for i in range(40)]
    inconclusive = [(k, "inconclusive" if k.endswith(".verdict") else v)
                    for k, v in Measurement("imu.jitter", 3.0, "ms", high=1.0, extra={"host_wakeup_p99_ms": "4.2"}).properties()]
    hil_cases = [junit.make_case(f"test_rate[imu{i}]", "hil_tests.test_sensors.orin-nx", failure=PORT_GONE)
                 for i in range(15)]
    hil_cases += [
        junit.make_case("test_loop_latency", "hil_tests.test_latency.orin-nx", time=2.5,
                        measurements=[distribution("loop", samples, "ms", high=2.0, nominal="budget 2 ms"),
                                      measure("imu.samples", 2000.0)]),
        junit.make_case("test_servo", "hil_tests.test_actuators.orin-nx", error="servo at /dev/x: no status packet",
                        properties=[("hil.log", "artifacts/hil/hil-logs/test_servo.log")]),
        junit.make_case("test_jitter", "hil_tests.test_sensors.orin-nx", properties=inconclusive),
        junit.make_case("test_rate[gnss]", "hil_tests.test_sensors.orin-nx",
                        measurements=[measure("gnss.rate", 10.0, "Hz", low=9.8, high=10.2)]),
    ]
    hil = junit.write_suite(jdir / "hil.xml", "hil.orin-nx", hil_cases, [("hilci.stage", "hil"), *SUITE_FACTS])
    for name in ("train", "quantize", "hil"):
        (logs / f"{name}.log").write_text(f"{name} log\n")
    outcomes = [StageOutcome("train", "passed", 0.0, 3.5, log="reports/logs/train.log"),
                StageOutcome("quantize", "cached", 3.5, 0.2, "inputs unchanged (key abc)",
                             log="reports/logs/quantize.log"),
                StageOutcome("hil", "failed", 3.7, 20.0, f"test_rate[imu0]: {PORT_GONE}", log="reports/logs/hil.log"),
                StageOutcome("report", "skipped", reason="stage 'hil' failed")]
    return write_reports(root, [train, quantize, hil], outcomes)


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]):
        self.tag, self.attrs, self.children = tag, attrs, []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                    found.append(child)
                found += child.all(tag, cls)
        return found


class Tree(HTMLParser):
    """A small DOM from the standard library's HTML parser (void elements and SVG's self-closing tags)."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "wbr", "source"}

    def __init__(self, text: str):
        super().__init__()
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return
        raise AssertionError(f"</{tag}> closes nothing")

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(path: Path) -> Node:
    tree = Tree(path.read_text())
    assert len(tree.stack) == 1, f"unclosed elements: {[n.tag for n in tree.stack[1:]]}"
    return tree.root


def section(doc: Node, title: str) -> Node:
    return next(s for s in doc.all("section") if s.all("h2") and s.all("h2")[0].text().startswith(title))


def test_the_header_says_what_ran_where(tmp_path: Path):
    doc = parse(build_report(tmp_path))
    facts = {d.all("dt")[0].text(): d.all("dd")[0].text() for d in doc.all("dl", "facts")[0].all("div")}
    assert facts["commit"] == "0123456789ab" and facts["branch"] == "feature/servo"
    assert facts["rig"] == "sim (hil_tests/rigs/sim.yaml)" and facts["board"] == "orin-nx"
    assert facts["host"] == "jetson-01" and facts["platform"] == "emulated"
    assert "Python" in facts["report made on"]
    assert "2 of 4 stages did not pass" not in doc.all("header")[0].text()
    assert "1 of 4 stages did not pass · 17 of 21 tests failed" in doc.all("p", "verdict")[0].text()


def test_failures_are_grouped_by_cause_with_failed_measurements_first(tmp_path: Path):
    doc = parse(build_report(tmp_path))
    failures = section(doc, "Failures")
    assert failures.all("h2")[0].text() == "Failures (17 tests, 3 causes)"
    causes = failures.all("div", "cause")
    assert [c.all("span", "tag")[0].text() for c in causes] == ["failed measurement", "failed", "error"]
    assert causes[0].all("b")[0].text() == "loop 4.901 ms above limit 2 ms (budget 2 ms)"
    assert causes[0].all("p", "measured")[0].text() == "loop: p99 4.901 ms, limits ≤ 2 ms"
    assert causes[1].all("b")[0].text() == PORT_GONE
    assert "hil · 15 tests" in causes[1].text() and "and 9 more" in causes[1].text()
    assert [a.attrs["href"] for a in causes[1].all("a")] == ["logs/hil.log"]


def test_measurements_name_their_statistic_and_say_info_when_nothing_was_judged(tmp_path: Path):
    doc = parse(build_report(tmp_path))
    measured = section(doc, "Measurements")
    first = measured.all("h3")[0]
    assert first.text() == "Failed measurements (1)"
    assert [h.text() for h in measured.all("h3")] == ["Failed measurements (1)", "train (1)", "quantize (2)",
                                                      "hil (4)"]
    rows = {r.all("td")[1].text(): r for table in measured.all("table")[1:] for r in table.all("tr")[1:]}
    assert [r.all("td")[0].text() for r in measured.all("table")[3].all("tr")[1:]] == [
        "test_loop_latency", "", "test_jitter", "test_rate[gnss]"]
    failed = [td.text() for td in measured.all("table")[0].all("tr")[1].all("td")]
    assert failed[:2] == ["hil · test_loop_latency", "loop"] and failed[4] == "fail"
    cells = [td.text() for td in rows["loop"].all("td")]
    assert cells[2].startswith("p99 ") and cells[2].endswith(" ms") and cells[4] == "fail"
    assert "n 2000" in cells[6] and "2000.0" not in cells[6]  # integers as integers
    assert [td.text() for td in rows["imu.samples"].all("td")][2:5] == ["2000", "", "info"]
    assert [td.text() for td in rows["quantize.ptq_drop"].all("td")][4] == "info"
    assert [td.text() for td in rows["gnss.rate"].all("td")][2:5] == ["10 Hz", "9.8 – 10.2 Hz", "pass"]
    assert "inconclusive" in rows["imu.jitter"].classes
    assert [td.text() for td in rows["imu.jitter"].all("td")][4] == "inconclusive"
    assert rows["imu.jitter"].all("td")[6].text() == "host wakeup p99 ms 4.2"  # what it recorded beside it


def test_distributions_are_histograms_with_axes(tmp_path: Path):
    doc = parse(build_report(tmp_path))
    hists = doc.all("svg", "hist")
    assert hists, "no histogram"
    loop = hists[0]
    bars = loop.all("rect", "bar")
    assert len(bars) == 4 and all(float(b.attrs["height"]) > 0 for b in bars)
    assert "p50–p90: 800 of 2000 samples" in bars[1].text()
    ticks = [t.text() for t in loop.all("text", "tick")]
    assert "ms" in ticks and "samples per ms" in ticks and "p99 4.901" in ticks  # x unit, y title, the gate
    assert {"1", "2", "4", "6"} <= set(ticks)  # x axis: round values
    assert {"1", "100", "10000"} <= set(ticks)  # y axis: powers of ten (log scale: the tail shows)
    assert len(loop.all("line", "limit")) == 1 and len(loop.all("line", "gate")) == 1


def test_stages_link_their_logs_and_cached_ones_show_the_duration_that_produced_them(tmp_path: Path):
    doc = parse(build_report(tmp_path))
    table = doc.all("table", "stages")[0]
    rows = {r.all("td")[0].text(): [td for td in r.all("td")] for r in table.all("tr")[1:]}
    assert rows["quantize"][2].text().startswith("41.5 s") and "restored in 0.2 s" in rows["quantize"][2].text()
    assert rows["train"][3].text() == "1 test · accuracy 0.9917"
    assert [a.attrs["href"] for r in ("train", "quantize", "hil") for a in rows[r][4].all("a")] == [
        "logs/train.log", "logs/quantize.log", "logs/hil.log"]
    assert rows["report"][4].all("a") == []
    text = (tmp_path / "reports" / "index.html").read_text()
    assert "<script" not in text and "http" not in text.replace("http://www.w3.org/2000/svg", "")


def test_a_failed_test_links_its_device_log(tmp_path: Path):
    doc = parse(build_report(tmp_path))
    links = {a.attrs["href"] for a in section(doc, "Failures").all("a", "devlog")}
    # index.html is in reports/; the log's path is relative to the project root the tests ran in
    assert links == {"../artifacts/hil/hil-logs/test_servo.log"}
    assert (tmp_path / "reports" / "index.html").parent.joinpath(*next(iter(links)).split("/")).resolve() == \
        (tmp_path / "artifacts/hil/hil-logs/test_servo.log").resolve()


def test_round_ticks():
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(0.8, 4.1) == [1, 2, 3, 4]
    assert nice_ticks(0.8, 2.1) == [1, 1.5, 2]
    assert nice_ticks(5, 5) == [5]


def test_a_cached_stage_takes_the_duration_the_cache_recorded_else_its_testcases_times():
    from hilci.report.facts import produced_duration

    timed = [junit.CaseRecord("s", "hilci.train", "accuracy", 12.5, "passed")]
    untimed = [junit.CaseRecord("s", "hilci.quantize", "drop", 0.0, "passed")]
    assert produced_duration({"hilci.cached": "true", "hilci.cached.duration_s": "41.5"}, timed) == 41.5
    assert produced_duration({"hilci.cached": "true"}, timed) == 12.5
    assert produced_duration({"hilci.cached": "true"}, untimed) is None  # unknown, never "0.0 s"
    assert produced_duration({}, timed) is None  # not cached
