"""``sessiondata check`` / ``sd.check``: quality rules on every cell, exit codes and formats.

The export under test has known figures: four symbols over five one-hour sessions (60 1m
slots each, derived 5m), every bar present except

- A, 2024-03-05: three single minutes (09:12, 09:30, 09:47): quiet minutes (``no_trade``);
- B, 2024-03-04: 15 minutes from 09:10, in a symbol that otherwise never misses a minute
  (``outage``: too long to be quiet);
- every symbol, 2024-03-06: 09:30-09:40 (``outage`` across the universe);
- C, 2024-03-07: its data starts at 09:20 (``late_start``, 20 slots);
- D, 2024-03-08: its data stops at 09:45 (``early_end``, 15 slots).

So, per cell of 1m: completeness 95 (A 03-05), 75 (B 03-04, D 03-08), 83.33 (03-06),
66.67 (C 03-07), 100 elsewhere; lost slots 15, 10, 20, 15; per symbol outage slots A 10,
B 25, C 10, D 10; in total 1,200 slots expected, 93 missing, 90 lost.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import sessiondata as sd
from sessiondata import cli
from sessiondata.check import (Rule, RuleError, parse_rules, read_cells, render_github,
                               render_junit, rules_from_config)
from sessiondata.testing import assert_quality

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "schemas" / "junit.xsd"
MIN = 60_000_000_000
DAYS = ["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]
CAL = sd.Calendar.weekly("UTC", "09:00", "10:00", "Mon-Fri")
MISSING = {  # symbol -> session -> minutes after the open without a bar
    "A": {"2024-03-05": [12, 30, 47], "2024-03-06": list(range(30, 40))},
    "B": {"2024-03-04": list(range(10, 25)), "2024-03-06": list(range(30, 40))},
    "C": {"2024-03-06": list(range(30, 40)), "2024-03-07": list(range(0, 20))},
    "D": {"2024-03-06": list(range(30, 40)), "2024-03-08": list(range(45, 60))},
}
COMPLETENESS = {("A", "2024-03-05"): 95.0, ("B", "2024-03-04"): 75.0,
                ("C", "2024-03-07"): 100 * 40 / 60, ("D", "2024-03-08"): 75.0,
                **{(s, "2024-03-06"): 100 * 50 / 60 for s in "ABCD"}}


def _bars(symbol: str, seed: int) -> sd.Bars:
    ts = []
    for d in DAYS:
        gone = set(MISSING[symbol].get(d, []))
        o = int(CAL.session_windows(d).open_ns[0])
        ts += [o + m * MIN for m in range(60) if m not in gone]
    t = np.array(ts, np.int64)
    rng = np.random.default_rng(seed)
    p = 100 + np.cumsum(rng.normal(0, 0.05, len(t)))
    return sd.Bars.from_arrays(t, p, p + 0.02, p - 0.02, p, rng.uniform(1, 100, len(t)),
                               interval="1m")


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """The run and its export (see the module's docstring)."""
    out = tmp_path_factory.mktemp("known") / "out"
    data = {s: _bars(s, i) for i, s in enumerate("ABCD")}
    result = sd.run(data, CAL, derived=["5m"], out=out)
    return result, out


RULES = ["--fail", "completeness=90", "--fail-over", "gaps_over_12=0",
         "--warn", "outage@symbol=10", "--fail", "late_start@totals=19",
         "--fail-under", "data_quality@session=93"]


def _failing(findings, rule: str) -> dict[tuple[str, str], float]:
    f = findings.failed
    mine = np.array([findings.rules[r].name == rule for r in f["rule"]], bool)
    return {(a, b): v for a, b, v in zip(f["symbol"][mine], f["session"][mine],
                                         f["value"][mine])}


def test_each_rule_on_known_figures(known):
    result, out = known
    findings = sd.check(out, [r for o, s in zip(RULES[::2], RULES[1::2])
                              for r in parse_rules(s, o.lstrip("-"))])
    # completeness >= 90 on each of the 20 cells of 1m: the seven below it.
    got = _failing(findings, "completeness >= 90")
    assert got.keys() == {k for k, v in COMPLETENESS.items() if v < 90}
    for k, v in got.items():
        assert v == pytest.approx(COMPLETENESS[k], abs=1e-9)
    # gaps longer than 12 bars: B 03-04 (15), C 03-07 (20), D 03-08 (15); the 10-bar outage
    # and A's single minutes are not.
    assert _failing(findings, "gaps_over_12 <= 0") == {
        ("B", "2024-03-04"): 1, ("C", "2024-03-07"): 1, ("D", "2024-03-08"): 1}
    # outage slots per symbol (warning): B's 25 > 10; A, C, D's 10 are not over 10.
    assert _failing(findings, "outage@symbol <= 10") == {("B", "*"): 25}
    # late_start over everything: 20 > 19.
    assert _failing(findings, "late_start@totals <= 19") == {("*", "*"): 20}
    # data quality per session: 03-06 loses 40 of 240 (83.33), 03-07 20 (91.67); 03-04 and
    # 03-08 lose 15 (93.75) and 03-05 nothing.
    dq = _failing(findings, "data_quality@session >= 93")
    assert dq.keys() == {("*", "2024-03-06"), ("*", "2024-03-07")}
    assert dq[("*", "2024-03-06")] == pytest.approx(100 * 200 / 240)
    assert dq[("*", "2024-03-07")] == pytest.approx(100 * 220 / 240)
    # Every cell of each scope was evaluated: 20 + 20 + 4 + 1 + 5.
    assert len(findings) == 50 and findings.cells == 20 + 20   # 1m and 5m cells
    assert findings.errors == 7 + 3 + 1 + 2 and findings.warnings == 1
    assert findings.exit_code == 1
    # Worst first within a rule: C 03-07 (66.67), then the 75s, then the 83.33s.
    f = findings.failed
    comp = [(s, k) for s, k, r in zip(f["symbol"], f["session"], f["rule"])
            if findings.rules[r].metric == "completeness"]
    assert comp[0] == ("C", "2024-03-07")
    assert set(comp[1:3]) == {("B", "2024-03-04"), ("D", "2024-03-08")}
    # Errors come before warnings.
    levels = list(f["level"])
    assert levels.index("warn") == len(levels) - 1


def test_totals_interval_and_counts(known):
    _, out = known
    f = sd.check(out, "completeness@totals=0,data_quality@totals=0,lost@totals=1000,"
                      "missing@totals=1000,gaps@totals=1000,no_trade@totals=1000,"
                      "early_end@totals=1000,completeness@totals:5m=0,gaps:*=1000")
    value = {(f.rules[r].metric, i): v for r, i, v, s in
             zip(f["rule"], f["interval"], f["value"], f["scope"]) if s == "totals"}
    assert value[("completeness", "1m")] == pytest.approx(100 * 1107 / 1200)
    assert value[("data_quality", "1m")] == pytest.approx(100 * 1110 / 1200)
    assert value[("lost", "1m")] == 90 and value[("missing", "1m")] == 93
    assert value[("gaps", "1m")] == 3 + 1 + 4 + 1 + 1
    assert value[("no_trade", "1m")] == 3 and value[("early_end", "1m")] == 15
    # 5m: the same slots, counted by coverage.
    assert value[("completeness", "5m")] == pytest.approx(100 * 1107 / 1200)
    # gaps:* is evaluated on the cells of every interval.
    assert set(f["interval"][np.array([f.rules[r].metric == "gaps" and s == "cell" for r, s in
                                       zip(f["rule"], f["scope"])])]) == {"1m", "5m"}
    assert f.exit_code == 0
    # Columnar findings, as pandas and Arrow tables.
    df = f.to_pandas()
    assert len(df) == len(f) and list(df.columns)[:3] == ["rule", "metric", "level"]
    assert df.loc[(df.metric == "lost") & (df.scope == "totals"), "value"].tolist() == [90.0]
    assert f.to_arrow().num_rows == len(f)


def test_run_result_and_export_give_the_same_findings(known):
    result, out = known
    spec = ("completeness=90,gaps_over_12=0,outage@symbol=10,late_start@totals=19,"
            "data_quality@session=93,lost:*=0,gaps_halt@totals:5m=0")
    a, b = sd.check(result, spec), sd.check(out, spec)
    assert len(a) == len(b) == 50 + 40 + 1
    for k in ("rule", "interval", "symbol", "session", "failed", "level"):
        assert list(a[k]) == list(b[k]), k
    np.testing.assert_allclose(a["value"], b["value"], atol=1e-3)  # the document rounds


def test_cli_exit_codes_and_table(known, capsys):
    _, out = known
    assert cli.main(["check", str(out), *RULES]) == 1
    text = capsys.readouterr().out
    assert "FAIL: 13 errors, 1 warning" in text
    lines = text.splitlines()
    first = lines.index("failing cells, worst first")
    assert lines[first + 1].split() == ["level", "rule", "interval", "symbol", "session",
                                        "value", "threshold"]
    # The rules block: every rule with its cells and failing counts.
    assert re.search(r"error\s+completeness >= 90\s+cell\s+20\s+7\s+C 2024-03-07 1m: "
                     r"completeness 66.67% < 90%", text)
    assert re.search(r"warn\s+outage@symbol <= 10\s+symbol\s+4\s+1\s+B 1m \(all sessions\): "
                     r"outage 25 > 10", text)
    # Warnings alone pass; nothing failing passes.
    assert cli.main(["-q", "check", str(out), "--warn", "completeness=90"]) == 0
    assert cli.main(["-q", "check", str(out), "--fail", "completeness=60"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("argv, says", [
    (["--fail", "completness=90"], "unknown metric 'completness'"),
    (["--fail-under", "outage=0"], "outage takes a maximum"),
    (["--fail", "completeness@sessions=90"], "scope must be one of"),
    (["--fail", "completeness:15m=90"], "has no interval '15m'"),
    (["--fail", "completeness=ninety"], "is not a number"),
    (["--fail", "completeness>90"], "expected METRIC[@SCOPE][:INTERVAL]=VALUE"),
    (["--fail", "anomalies_spike=0"], "carries no anomaly counts"),
    ([], "no rules to check"),
])
def test_bad_rules_exit_2(known, argv, says, capsys, tmp_path, monkeypatch):
    _, out = known
    if "anomalies_spike=0" in argv:   # an export made without the detectors
        out = tmp_path / "off"
        sd.run({s: _bars(s, i) for i, s in enumerate("ABCD")}, CAL, derived=["5m"], out=out,
               anomalies="none")
    monkeypatch.chdir(tmp_path)   # no pyproject.toml above: only the rules given
    assert cli.main(["check", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


def test_not_an_export_exit_2(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "nope"), "--fail", "completeness=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_json_lines(known, capsys):
    _, out = known
    assert cli.main(["check", str(out), *RULES, "--format", "json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 14 and all(r["failed"] for r in rows)
    assert {(r["rule"], r["symbol"], r["session"]) for r in rows if r["metric"] ==
            "gaps_over_12"} == {("gaps_over_12 <= 0", s, d) for s, d in
                                (("B", "2024-03-04"), ("C", "2024-03-07"), ("D", "2024-03-08"))}
    warn = [r for r in rows if r["level"] == "warn"]
    assert warn == [{**warn[0], "metric": "outage", "scope": "symbol", "symbol": "B",
                     "session": "*", "value": 25.0, "threshold": 10.0, "bound": "max"}]
    assert cli.main(["check", str(out), *RULES, "--format", "json", "--all"]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 50


def test_junit_valid_against_the_schema(known, tmp_path, capsys):
    etree = pytest.importorskip("lxml.etree")
    _, out = known
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    target = tmp_path / "report.xml"
    assert cli.main(["check", str(out), *RULES, "--format", "junit", "--junit",
                     str(target)]) == 1
    printed = capsys.readouterr().out
    assert printed == target.read_text()
    doc = etree.fromstring(target.read_bytes())
    schema.assertValid(doc)
    assert doc.get("tests") == "50" and doc.get("failures") == "13"
    suites = {s.get("name"): s for s in doc.findall("testsuite")}
    assert set(suites) == {"A", "B", "C", "D", "all symbols"}
    # A testsuite per symbol, a testcase per session and rule.
    assert suites["C"].get("tests") == str(5 + 5 + 1)
    c_fail = suites["C"].findall("testcase/failure")
    assert sorted(f.get("message") for f in c_fail) == [
        "C 2024-03-06 1m: completeness 83.33% < 90%",
        "C 2024-03-07 1m: completeness 66.67% < 90%",
        "C 2024-03-07 1m: gaps_over_12 1 > 0"]
    assert "rule: completeness >= 90 (error, scope cell, from --fail)" in c_fail[0].text
    # The warning passes, with its figures in system-out.
    b_out = suites["B"].findall("testcase/system-out")
    assert len(b_out) == 1 and "outage 25 > 10" in b_out[0].text
    assert suites["all symbols"].get("failures") == "3"   # late_start, two sessions
    # The schema is not a rubber stamp: a testcase without a name is refused.
    bad = etree.fromstring(target.read_bytes())
    del bad.find("testsuite/testcase").attrib["name"]
    assert not schema.validate(bad)
    # Escaping: a symbol with XML's special characters stays valid.
    findings = sd.check(out, "completeness=90")
    findings.columns["symbol"] = np.array(['<&"x\'>'] * len(findings), object)
    schema.assertValid(etree.fromstring(render_junit(findings).encode()))


_GH = re.compile(r"^::(error|warning|notice) title=(.*?)::(.*)$")


def _unescape(text: str) -> str:
    for a, b in (("%0A", "\n"), ("%0D", "\r"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(a, b)
    return text


def test_github_annotations_and_step_summary(known, tmp_path, monkeypatch, capsys):
    _, out = known
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert cli.main(["check", str(out), *RULES, "--format", "github", "--limit", "5"]) == 1
    lines = capsys.readouterr().out.splitlines()
    parsed = [_GH.match(line) for line in lines]
    assert all(parsed), lines
    kinds = [m.group(1) for m in parsed]
    titles = [_unescape(m.group(2)) for m in parsed]
    texts = [_unescape(m.group(3)) for m in parsed]
    # First the summary, then the worst four cells, then how many more.
    assert kinds[0] == "error" and titles[0] == "sessiondata check"
    assert texts[0].startswith("FAIL: 13 errors, 1 warning")
    assert len(lines) == 6 and kinds[-1] == "notice" and texts[-1].startswith("10 more")
    assert kinds[1:5] == ["error"] * 4
    assert titles[1] == "gaps_over_12 <= 0"
    assert texts[1] in {"B 2024-03-04 1m: gaps_over_12 1 > 0",
                        "C 2024-03-07 1m: gaps_over_12 1 > 0",
                        "D 2024-03-08 1m: gaps_over_12 1 > 0"}
    md = summary.read_text()
    assert md.startswith("earlier step\n### sessiondata check: FAIL: 13 errors")
    assert "| error | `completeness >= 90` | cell | 20 | 7 | C 2024-03-07 1m: completeness " \
           "66.67% < 90% |" in md
    # Everything passing: one notice, exit 0; a title with ':' and ',' is escaped.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert cli.main(["check", str(out), "--fail", "completeness=60", "--format",
                     "github"]) == 0
    only = capsys.readouterr().out.splitlines()
    assert len(only) == 1 and _GH.match(only[0]).group(1) == "notice"
    f = sd.check(out, "completeness:5m=90")
    line = render_github(f, 2).splitlines()[1]
    assert "title=completeness%3A5m >= 90::" in line


def test_rules_from_pyproject_and_a_file(known, tmp_path, monkeypatch, capsys):
    _, out = known
    project = tmp_path / "repo"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.sessiondata.check]\n'
        'fail-under = { completeness = 90 }\n'
        'warn-over = "gaps_over_12=0"\n'
        '[[tool.sessiondata.check.rules]]\nmetric = "late_start"\nmax = 19\n'
        'scope = "totals"\n')
    monkeypatch.chdir(project / "sub")   # found in a parent folder, as pytest finds its own
    assert cli.main(["check", str(out), "--format", "json"]) == 1
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted({(r["rule"], r["level"]) for r in rows}) == [
        ("completeness >= 90", "error"), ("gaps_over_12 <= 0", "warn"),
        ("late_start@totals <= 19", "error")]
    assert len(rows) == 7 + 3 + 1
    # A command-line rule on the same metric, scope and level replaces the file's.
    assert cli.main(["check", str(out), "--fail", "completeness=60,late_start@totals=20",
                     "--format", "json"]) == 0
    assert {json.loads(x)["level"] for x in capsys.readouterr().out.splitlines()} == {"warn"}
    # --rules FILE instead of pyproject.toml: a file of the same layout, top level.
    rules = tmp_path / "rules.toml"
    rules.write_text('fail-over = { "outage@symbol" = 10 }\n')
    assert cli.main(["-q", "check", str(out), "--rules", str(rules)]) == 1
    rules.write_text('fail-over = { "outage@symbol" = 25 }\n')
    assert cli.main(["-q", "check", str(out), "--rules", str(rules)]) == 0
    # Bad TOML names the file and the line.
    rules.write_text('fail-over = { "outage@symbol" = 25 \n')
    assert cli.main(["check", str(out), "--rules", str(rules)]) == 2
    err = capsys.readouterr().err
    assert "rules.toml: not valid TOML" in err and "line 1" in err
    rules.write_text('[[rules]]\nmetric = "completeness"\nmin = 90\nmax = 95\n')
    assert cli.main(["check", str(out), "--rules", str(rules)]) == 2
    assert "rules[0]: give exactly one of min and max" in capsys.readouterr().err


def test_rule_tables_and_specs():
    rules = rules_from_config({"fail": "completeness@symbol:5m=99.5,outage=0",
                               "warn-under": {"data_quality": 99.9},
                               "rules": [{"metric": "gaps_over_30", "max": 0,
                                          "interval": "*", "level": "warn"}]}, "cfg")
    assert [(r.metric, r.bound, r.threshold, r.scope, r.interval, r.level) for r in rules] == [
        ("completeness", "min", 99.5, "symbol", "5m", "error"),
        ("outage", "max", 0.0, "cell", None, "error"),
        ("data_quality", "min", 99.9, "cell", None, "warn"),
        ("gaps_over_30", "max", 0.0, "cell", "*", "warn")]
    with pytest.raises(RuleError, match="level must be error or warn"):
        Rule("completeness", "min", 1.0, level="fatal")
    with pytest.raises(RuleError, match="finite"):
        Rule("completeness", "min", float("nan"))


def test_anomaly_counts_are_read_when_the_export_has_them(known, tmp_path):
    """A document's ``anomalies`` section as ``documents`` writes it (issue 22: ``count``,
    ``kinds``: the count of each kind present, ``ranges``) is read into ``anomalies_<kind>``
    columns, absent kinds counting 0; a malformed one is an error naming the file."""
    _, out = known
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    path = copy / "sessions" / "2024-03-05.json"
    doc = json.loads(path.read_text())
    assert doc["symbols"]["A"]["intervals"]["1m"]["anomalies"]["count"] == 0
    doc["symbols"]["A"]["intervals"]["1m"]["anomalies"] = {
        "count": 3, "kinds": {"spike": 2, "stale": 1}, "ranges": []}
    path.write_text(json.dumps(doc))
    f = sd.check(copy, "anomalies_spike=0,anomalies_stale@totals=0,anomalies=2")
    assert {(f.rules[r].metric, s, k, v) for r, s, k, v in
            zip(f["rule"], f["symbol"], f["session"], f["value"]) if v} == {
        ("anomalies_spike", "A", "2024-03-05", 2.0), ("anomalies_stale", "*", "*", 1.0),
        ("anomalies", "A", "2024-03-05", 3.0)}
    assert f.errors == 3
    cells = read_cells(copy)
    assert int(cells.columns["anomalies_spike"].sum()) == 2
    assert int(cells.columns["anomalies_jump"].sum()) == 0
    doc["symbols"]["A"]["intervals"]["1m"]["anomalies"] = {"count": 1, "kinds": {"spike": {}}}
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="2024-03-05.json: A 1m: anomalies section"):
        read_cells(copy)


def test_run_check(known, tmp_path, capsys):
    """``run ... --check``: the export is written, then the rules decide the exit code."""
    data = tmp_path / "data"
    data.mkdir()
    for i, s in enumerate("ABCD"):
        _bars(s, i).to_pandas().to_csv(data / f"{s}.csv")
    out = tmp_path / "out"
    argv = ["-q", "run", str(data), "--calendar", "weekly:UTC,09:00,10:00", "--derived", "5m",
            "--out", str(out)]
    assert cli.main(argv + ["--fail", "completeness=90"]) == 1
    assert (out / "manifest.json").exists()
    assert cli.main(argv + ["--fail", "completeness=60"]) == 0
    capsys.readouterr()
    assert cli.main(argv + ["--fail", "completeness=90", "--check-format", "json"]) == 1
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {(r["symbol"], r["session"]) for r in rows} == \
        {k for k, v in COMPLETENESS.items() if v < 90}


def test_assert_quality(known):
    result, out = known
    assert assert_quality(out, completeness=60).errors == 0
    assert assert_quality(result, "completeness=60,outage@symbol=25").errors == 0
    with pytest.raises(AssertionError) as info:
        assert_quality(out, completeness=90, gaps_over_12=0)
    text = str(info.value)
    assert "FAIL: 10 errors" in text and "failing cells, worst first" in text
    assert re.search(r"error\s+completeness >= 90\s+1m\s+C\s+2024-03-07\s+66.67%\s+< 90%",
                     text)
    # Keyword rules take a scope and an interval.
    with pytest.raises(AssertionError, match="5m"):
        assert_quality(out, completeness=99, scope="symbol", interval="5m")


def _recipe_commands(path: Path) -> list[str]:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(path.read_text())
    lines: list[str] = []
    if "jobs" in doc:   # GitHub Actions: the run steps
        for job in doc["jobs"].values():
            for step in job["steps"]:
                lines += step.get("run", "").splitlines()
    else:               # GitLab: each job's script
        for job in doc.values():
            if isinstance(job, dict):
                lines += job.get("script", [])
    return [line.strip() for line in lines if line.strip().startswith("sessiondata ")]


def _xnys_data(folder: Path, hole: bool) -> None:
    cal = sd.Calendar.exchange("XNYS")
    folder.mkdir()
    for i, s in enumerate(["AAA", "BBB", "CCC"]):
        ts = np.concatenate([np.arange(cal.session_windows(d).open_ns[0],
                                       cal.session_windows(d).close_ns[0], MIN)
                             for d in ("2024-03-04", "2024-03-05", "2024-03-06")])
        if hole and s == "BBB":
            ts = np.delete(ts, np.arange(400, 460))   # an hour gone on the second day
        rng = np.random.default_rng(i)
        p = 50 + np.cumsum(rng.normal(0, 0.02, len(ts)))
        bars = sd.Bars.from_arrays(ts, p, p + 0.01, p - 0.01, p, rng.uniform(1, 9, len(ts)),
                                   interval="1m")
        bars.to_pandas().to_csv(folder / f"{s}.csv")


@pytest.mark.parametrize("recipe", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_recipes_run(recipe, tmp_path, monkeypatch, capsys):
    """The commands of the CI recipes (docs/ci), as the README shows them, run in a folder
    laid out as a data repository: pyproject.toml with the rules, data/ of CSV files."""
    pytest.importorskip("exchange_calendars")
    etree = pytest.importorskip("lxml.etree")
    commands = _recipe_commands(ROOT / "docs" / "ci" / recipe)
    assert [c.split()[1] for c in commands] == ["run", "check"]
    # The README shows the file itself (its header comments aside).
    lines = (ROOT / "docs" / "ci" / recipe).read_text().splitlines()
    body = "\n".join(lines[next(i for i, x in enumerate(lines) if not x.startswith("#")):])
    assert body in (ROOT / "README.md").read_text(), f"README's recipe is not {recipe}'s"
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    for hole, expect in ((False, 0), (True, 1)):
        repo = tmp_path / f"repo-{hole}"
        repo.mkdir()
        shutil.copy(ROOT / "docs" / "ci" / "pyproject.toml", repo / "pyproject.toml")
        _xnys_data(repo / "data", hole)
        monkeypatch.chdir(repo)
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(repo / "summary.md"))
        codes = [cli.main(shlex.split(c)[1:]) for c in commands]
        assert codes == [0, expect], (recipe, hole)
        schema.assertValid(etree.parse(str(repo / "sessiondata-check.xml")))
        text = _unescape(capsys.readouterr().out)   # the github format escapes '%'
        if hole:
            assert "BBB 2024-03-05 1m: completeness 84.62% < 99%" in text
            assert "gaps_over_30" in text
    assert sys.modules["sessiondata.check"].EXIT_FAIL == 1


def test_csv_export_gives_the_same_findings(known, tmp_path):
    """An export with CSV datasets (``--bars csv``): the same figures, gaps_over_N included."""
    data = {s: _bars(s, i) for i, s in enumerate("ABCD")}
    out = tmp_path / "csv"
    sd.run(data, CAL, derived=["5m"], out=out, fmt="csv")
    spec = "completeness=90,gaps_over_12=0,gaps_over_5:5m=0,outage@symbol=10"
    a, b = sd.check(known[1], spec), sd.check(out, spec)
    for k in ("rule", "symbol", "session", "failed", "value"):
        assert list(a[k]) == list(b[k]), k
    assert int(b.failed["rule"].tolist().count(1)) == 3
