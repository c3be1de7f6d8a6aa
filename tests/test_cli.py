"""The command line, end to end: the sample, data folders, partial sessions, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sessiondata import Calendar, cli, sample
from sessiondata.api import make_grid
from sessiondata.export import iter_session_folders
from sessiondata.intervals import parse_interval

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CME = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
BTC = DATA / "btc-perp-20211231-20220201_1m.csv"
MIN = 60_000_000_000


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """One run over the embedded sample, shared by the tests that read its results."""
    out = tmp_path_factory.mktemp("sample") / "out"
    summary = out.parent / "summary.json"
    stdout, stderr = io.StringIO(), io.StringIO()
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = stdout, stderr
    try:
        code = cli.main(["run", "--out", str(out), "--json-summary", str(summary)])
    finally:
        sys.stdout, sys.stderr = real
    return code, stdout.getvalue(), stderr.getvalue(), out, json.loads(summary.read_text())


# -- the sample ----------------------------------------------------------------------------


def test_sample_run_prints_the_summary(sample_run):
    code, out, err, _, _ = sample_run
    assert code == 0 and err == ""
    for words in ("symbols  sessions", "worst sessions (1m)", "interval", "quality",
                  "+NEWT added at 11:00", "-DELT removed at 13:00", "short session (3h30)",
                  "BOLT 13:42-14:19 (37)", "wrote 6 session folders"):
        assert words in out


def test_sample_run_writes_each_session(sample_run):
    _, _, _, out, summary = sample_run
    folders = [p.name for p in iter_session_folders(out)]
    # Thanksgiving (2024-11-28) is not a session; the half day after it is.
    assert folders == ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29", "2024-12-02",
                       "2024-12-03"]
    assert (out / "2024-11-25" / "bars" / "ACME.5m.csv").exists()
    assert summary["sessions"] == 6 and summary["base_interval"] == "1m"
    assert summary["symbols"] == ["ACME", "BOLT", "CRUX", "DELT", "NEWT"]
    assert summary["by_symbol"]["CRUX"]["quality"] < 50 < summary["by_symbol"]["ACME"]["quality"]


def test_sample_symbol_added_mid_session_is_scored_from_its_add(sample_run):
    _, _, _, out, summary = sample_run
    doc = json.loads((out / "2024-11-26" / "session.json").read_text())
    newt = doc["symbols"]["NEWT"]["intervals"]["1m"]
    assert newt["quality"]["expected"] == 300               # 11:00 .. 16:00, not from 09:30
    first = (out / "2024-11-26" / "bars" / "NEWT.1m.csv").read_text().splitlines()[1]
    assert first.split(",")[1] == "2024-11-26T16:00:00Z"    # 11:00 EST
    assert "NEWT" not in json.loads((out / "2024-11-25" / "session.json").read_text())["symbols"]


def test_sample_symbol_removed_mid_session(sample_run):
    _, _, _, out, summary = sample_run
    doc = json.loads((out / "2024-12-02" / "session.json").read_text())
    assert "DELT" not in doc["symbols"] and doc["unknown_bars"] == {"DELT": 180}
    later = json.loads((out / "2024-12-03" / "session.json").read_text())
    assert "DELT" not in later["symbols"]
    day = next(s for s in summary["per_session"] if s["session"] == "2024-12-02")
    assert "-DELT removed at 13:00 EST" in day["events"]


def test_sample_export_validates(sample_run, capsys):
    _, _, _, out, _ = sample_run
    code, stdout, _ = run(capsys, "validate", out)
    assert code == 0 and "all 6 session folders are sound" in stdout


def test_sample_is_deterministic_and_runs_without_exchange_calendars(monkeypatch):
    a = sample.generate()
    b = sample.generate()
    assert all(a.bars[s].equals(b.bars[s]) for s in a.bars)

    def missing(code):
        raise ImportError("no exchange_calendars")

    monkeypatch.setattr(Calendar, "exchange", staticmethod(missing))
    fallback = sample.sample_calendar()
    assert fallback.name.startswith("XNYS")
    np.testing.assert_array_equal(fallback.sessions(sample.SAMPLE_START, sample.SAMPLE_END),
                                  a.sessions)
    c = sample.generate(calendar=fallback)
    assert all(a.bars[s].equals(c.bars[s]) for s in a.bars)


def test_sample_falls_back_in_the_cli(monkeypatch, tmp_path, capsys):
    def missing(code):
        raise ImportError("no exchange_calendars")

    monkeypatch.setattr(Calendar, "exchange", staticmethod(missing))
    code, out, _ = run(capsys, "run", "--out", tmp_path, "--derived", "none", "--no-csv")
    assert code == 0 and "calendar XNYS (built-in sample hours)" in out
    assert not (tmp_path / "2024-11-25" / "bars").exists()


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sessiondata", "run", str(tmp_path / "no.csv"),
                           "--calendar", "24/7"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


# -- data folders and partial sessions -----------------------------------------------------


def _bars_csv(path: Path, start: str, minutes: int, *, skip=(), symbol_col=None):
    t0 = np.datetime64(start, "m")
    lines = [("symbol," if symbol_col else "") + "timestamp,open,high,low,close,volume"]
    for k in range(minutes):
        if k in skip:
            continue
        t = str(t0 + k).replace("T", " ")
        lines.append((f"{symbol_col}," if symbol_col else "") + f"{t},1,2,0.5,1.5,{k}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_partial_first_and_last_sessions_are_not_gaps(tmp_path, capsys):
    # 24/7: data from 2024-01-01 23:01 to 2024-01-03 00:29 UTC, complete.
    data = tmp_path / "data"
    data.mkdir()
    _bars_csv(data / "BTC.csv", "2024-01-01T23:01", 59 + 1440 + 30)
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "run", data, "--calendar", "24/7", "--out", out,
                          "--derived", "5m,1h,1d", "--json-summary", tmp_path / "s.json")
    assert code == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["totals"]["1m"]["missing"] == 0 and summary["totals"]["1m"]["gaps"] == 0
    assert summary["totals"]["1m"]["expected"] == 59 + 1440 + 30
    assert summary["totals"]["5m"]["missing"] == 0
    days = {s["session"]: s for s in summary["per_session"]}
    assert days["2024-01-01"]["partial_from"] == "2024-01-01T23:01:00+00:00"
    assert days["2024-01-03"]["partial_to"] == "2024-01-03T00:30:00+00:00"
    assert days["2024-01-02"]["partial_from"] is None
    assert "none, no bar is missing" in stdout and "partial: from 2024-01-01 23:01 UTC" in stdout
    assert run(capsys, "validate", out)[0] == 0


def test_a_real_gap_in_a_folder_with_a_symbol_column(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _bars_csv(data / "a.csv", "2024-01-02T14:30", 390, skip={100, 101, 102}, symbol_col="AAA")
    _bars_csv(data / "b.csv", "2024-01-02T14:30", 390, symbol_col="BBB")
    cal = "weekly:America/New_York,09:30,16:00"
    code, out, _ = run(capsys, "run", data, "--calendar", cal, "--out", tmp_path / "o",
                       "--json-summary", tmp_path / "s.json")
    assert code == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["totals"]["1m"]["missing"] == 3 and summary["totals"]["1m"]["gaps"] == 1
    assert summary["by_symbol"]["BBB"]["quality"] == 100.0
    assert summary["per_session"][0]["longest_gap"] == {
        "symbol": "AAA", "start_time": "11:10:00", "end_time": "11:13:00", "bar_count": 3}
    assert "AAA 11:10-11:13 (3)" in out


def test_end_stamps_time_zone_and_format_options(tmp_path, capsys):
    path = tmp_path / "FDAX.csv"
    rows = [f"02.01.2024;{9 + (k + 1) // 12:02d}:{(5 * (k + 1)) % 60:02d};1;2;0.5;1;0"
            for k in range(102)]
    path.write_text("Date;Time;Open;High;Low;Close;Volume\n" + "\n".join(rows) + "\n")
    code, out, err = run(capsys, "run", path, "--calendar", "weekly:Europe/Berlin,09:00,17:30",
                         "--base", "5m", "--derived", "15m,1h", "--stamp", "end",
                         "--tz", "Europe/Berlin", "--ts-format", "%d.%m.%Y %H:%M",
                         "--out", tmp_path / "o", "--quiet")
    assert (code, out, err) == (0, "", "")
    doc = json.loads((tmp_path / "o" / "2024-01-02" / "session.json").read_text())
    assert doc["symbols"]["FDAX"]["intervals"]["5m"]["quality"]["missing"] == 0


def test_start_and_end_choose_sessions(tmp_path, capsys):
    path = _bars_csv(tmp_path / "X.csv", "2024-01-01T00:00", 3 * 1440)
    code, out, _ = run(capsys, "run", path, "--calendar", "always", "--start", "2024-01-02",
                       "--end", "2024-01-02", "--out", tmp_path / "o")
    assert code == 0 and [p.name for p in iter_session_folders(tmp_path / "o")] == ["2024-01-02"]
    code, _, err = run(capsys, "run", path, "--calendar", "always", "--start", "2025-01-01",
                       "--out", tmp_path / "o")
    assert code == 2 and "no session" in err


def test_on_bad_drop_counts_and_goes_on(tmp_path, capsys):
    path = _bars_csv(tmp_path / "X.csv", "2024-01-02T00:00", 10)
    path.write_text(path.read_text() + "2024-01-02 00:20,1,2,0.5,zz,1\n")
    code, _, err = run(capsys, "run", path, "--calendar", "24/7", "--out", tmp_path / "o")
    assert code == 2 and "line 12: bad number 'zz'" in err
    code, out, _ = run(capsys, "run", path, "--calendar", "24/7", "--out", tmp_path / "o",
                       "--on-bad", "drop")
    assert code == 0 and "dropped on read (--on-bad drop): 1 row (bad number: 1)" in out


# -- bad input: non-zero exit, one line, no traceback --------------------------------------


@pytest.mark.parametrize("argv,words", [
    (["run", "{bad}", "--calendar", "24/7"], "bad.csv, line 3: bad number 'x'"),
    (["run", "{bad}"], "--calendar is required"),
    (["run", "{good}", "--calendar", "NOPE"], "unknown calendar code 'NOPE'"),
    (["run", "{good}", "--calendar", "weekly:UTC,9"], "expected weekly:TZ,HH:MM,HH:MM"),
    (["run", "{good}", "--calendar", "XNYS"], "outside every session of XNYS"),
    (["run", "{good}", "--calendar", "24/7", "--tz", "Nowhere/City"], "unknown time zone"),
    (["run", "{good}", "--calendar", "24/7", "--stamp", "middle"], "invalid choice"),
    (["run", "--base", "1d"], "base interval cannot be '1d'"),
    (["run", "--derived", "90s"], "not a whole multiple"),
    (["run", "--start", "2024-02-30"], "is not a date"),
    (["run", "--start", "2024-12-01", "--end", "2024-11-30"], "is before --start"),
    (["run", "--nonsense"], "unrecognized arguments"),
    (["validate", "{tmp}/nowhere"], "no such folder"),
    (["validate", "{tmp}"], "no session folder"),
])
def test_bad_input_exits_non_zero_with_one_line(tmp_path, capsys, argv, words):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2024-01-02 10:00,1,1,1,1,1\n"
                   "2024-01-02 10:01,x,1,1,1,1\n")
    good = _bars_csv(tmp_path / "good.csv", "2024-01-02T01:00", 3)
    argv = [a.format(bad=bad, good=good, tmp=tmp_path) for a in argv]
    code, out, err = run(capsys, *argv, "--out", tmp_path / "o") if argv[0] == "run" else \
        run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sessiondata: error: ")
    assert words in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, capsys):
    code, _, err = run(capsys, "run", tmp_path / "none.csv", "--calendar", "24/7", "--debug")
    assert code == 2 and "Traceback" in err and err.strip().endswith("no such file or folder")


def test_validate_reports_a_broken_export(tmp_path, capsys):
    path = _bars_csv(tmp_path / "X.csv", "2024-01-02T00:00", 30)
    assert run(capsys, "run", path, "--calendar", "24/7", "--out", tmp_path / "o")[0] == 0
    csv_path = tmp_path / "o" / "2024-01-02" / "bars" / "X.1m.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:-1]) + "\n")          # one bar lost
    code, out, err = run(capsys, "validate", tmp_path / "o")
    assert code == 1 and "FAIL 2024-01-02" in out and "29 bars, session.json says 30" in out
    assert "1 of 1 session folders have problems" in err


# -- pieces --------------------------------------------------------------------------------


def test_parse_calendar_specs():
    assert cli.parse_calendar("24/7").name == "ALWAYS"
    assert cli.parse_calendar("always").name == "ALWAYS"
    weekly = cli.parse_calendar("weekly:Europe/Berlin,09:00,17:30,Mon,Wed")
    assert list(weekly.sessions("2024-01-01", "2024-01-07").astype(str)) == \
        ["2024-01-01", "2024-01-03"]
    with pytest.raises(cli.CliError):
        cli.parse_calendar("weekly:Europe/Berlin")


def test_trim_grid_keeps_buckets_aligned_to_the_open():
    cal = Calendar.weekly("UTC", "00:00", "01:00", "Mon-Sun")
    day = 86_400 * 10**9
    windows = cal.windows(0, 2 * day)                  # 1970-01-01 and -02, 00:00-01:00
    grid = make_grid(windows, parse_interval("5m"), parse_interval("1m"))
    trimmed = cli.trim_grid(grid, 7 * MIN)
    assert trimmed.open_ns.tolist() == [10 * MIN, day]
    assert trimmed.base_slots.tolist() == [50, 60]
    assert cli.trim_grid(grid, 58 * MIN).open_ns.tolist() == [day]
    assert cli.trim_grid(grid, 0).open_ns.tolist() == [0, day]
    session = make_grid(windows, parse_interval("1d"), parse_interval("1m"))
    assert cli.trim_grid(session, MIN).open_ns.tolist() == [day]


def test_progress_bar_only_on_a_terminal():
    stream = io.StringIO()
    bar = cli.Progress(stream, enabled=True, delay=0.0)
    bar.start(4)
    for k in range(1, 5):
        bar.update(k, f"s{k}")
    bar.finish()
    text = stream.getvalue()
    assert "\r[" in text and "4/4 sessions s4" in text and text.endswith("\r")
    quiet = io.StringIO()
    off = cli.Progress(quiet)                       # a StringIO is not a terminal
    off.start(4)
    off.update(4)
    off.finish()
    assert quiet.getvalue() == ""


# -- the real files (skipped when ../shared/data is absent) --------------------------------


@pytest.mark.data
@pytest.mark.skipif(not CME.exists(), reason="shared data not present")
def test_cme_file_thin_holiday_and_partial_last_session(tmp_path, capsys):
    code, out, _ = run(capsys, "run", CME, "--calendar", "CME_GLOBEX", "--stamp", "end",
                       "--tz", "UTC", "--out", tmp_path / "cme", "--json-summary",
                       tmp_path / "s.json")
    assert code == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["worst_sessions"][0] == "2024-01-15"
    last = summary["per_session"][-1]
    assert last["session"] == "2024-02-01"
    assert last["partial_to"] == "2024-01-31T17:59:00-06:00"
    assert last["intervals"]["1m"]["missing"] < 30          # not a 22-hour trailing gap
    assert "partial: to 2024-01-31 17:59 CST (data ends)" in out
    assert run(capsys, "validate", tmp_path / "cme")[0] == 0


@pytest.mark.data
@pytest.mark.skipif(not BTC.exists(), reason="shared data not present")
def test_btc_file_has_no_gap(tmp_path, capsys):
    code, out, _ = run(capsys, "run", BTC, "--calendar", "24/7", "--out", tmp_path / "btc",
                       "--json-summary", tmp_path / "s.json")
    assert code == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    for interval, totals in summary["totals"].items():
        assert totals["gaps"] == 0 and totals["missing"] == 0, interval
    assert "worst sessions (1m): none, no bar is missing" in out
    assert run(capsys, "validate", tmp_path / "btc")[0] == 0
