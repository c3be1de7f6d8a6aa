"""The command line, end to end: the sample, data folders, partial sessions, bad input, and
the export it writes (``OUT/manifest.json``, ``OUT/sessions/<date>.json``,
``OUT/bars/interval=<iv>/part-*.parquet|csv``, ``OUT/gaps/...``) read back."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sessiondata import Calendar, cli, resample, sample
from sessiondata.export import read_dataset, validate_export
from sessiondata.kernels import cut_grid, make_grid
from sessiondata.intervals import parse_interval

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CME = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
BTC = DATA / "btc-perp-20211231-20220201_1m.csv"
MIN = 60_000_000_000
SAMPLE_SESSIONS = ["2024-11-25", "2024-11-26", "2024-11-27", "2024-11-29", "2024-12-02",
                   "2024-12-03"]

# What `sessiondata run` prints for the embedded sample.  The same as before the engine
# (issue 9) but the 1h line: NEWT's 10:30 bucket on 2024-11-26, cut by its add at 11:00, now
# counts over its slots inside the span (30 of 30), so 173 of 173 expected (it was 172), and
# the last line, which names the export folder.  (The gap classification adds a data quality
# column and a gap kinds block beside these lines; see _as_before_gap_kinds.)
SAMPLE_SUMMARY = """\
sessiondata run: the embedded sample
calendar XNYS, base 1m, derived 5m, 15m, 1h; sessions 2024-11-25 .. 2024-12-03

symbols  sessions   bars  gaps  missing  quality
      5         6  8,033   524    1,507   84.20%

interval   bars  expected  gaps  missing  quality
1m        8,033     9,540   524    1,507   84.20%
5m        1,840     1,908    54       68   84.20%
15m         634       636     1        2   84.20%
1h          173       173     0        0   84.34%

symbols (1m)
symbol  sessions   bars  gaps  missing  quality
ACME           6  2,142    18       18   99.17%
BOLT           6  2,111    13       49   97.73%
CRUX           6    732   481    1,428   33.89%
DELT           4  1,372     8        8   99.42%
NEWT           5  1,676     4        4   99.76%

worst sessions (1m)
session     symbols   bars  gaps  missing  quality  longest gap            notes
2024-12-03        4  1,281    86      279   82.12%  CRUX 14:50-15:02 (12)
2024-12-02        4  1,301    96      259   83.40%  CRUX 09:52-10:09 (17)  -DELT removed at 13:00 EST; 180 bars of DELT not stored (not in the session then)
2024-11-27        5  1,635    92      315   83.85%  BOLT 13:42-14:19 (37)
2024-11-25        4  1,308    90      252   83.85%  CRUX 14:48-15:03 (15)
2024-11-29        5    901    52      149   85.81%  CRUX 12:06-12:16 (10)  short session (3h30)

other sessions of note
2024-11-26  +NEWT added at 11:00 EST

wrote 6 sessions to {out} in {seconds} s
"""


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def files_under(root: Path) -> list[str]:
    """Every file below ``root``, as sorted relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def bars_of(out: Path, symbol: str, interval: str, session: str | None = None) -> pa.Table:
    """The exported bars of one symbol and interval (and session), in time order."""
    t = read_dataset(out, "bars", interval).to_pandas()
    t = t[t["symbol"].astype(str) == symbol]
    if session is not None:
        t = t[t["session"].astype(str) == session]
    return t.sort_values("ts").reset_index(drop=True)


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


def _as_before_gap_kinds(text: str) -> list[str]:
    """The summary without what the gap classification added beside it (the interval
    table's last column, data quality, and the gap kinds block) and the anomalies block
    (issue 22): the rest is unchanged."""
    lines, skip = [], False
    for line in text.splitlines():
        if line.startswith(("gap kinds (", "anomalies (")):
            skip = True
        if skip:
            skip = line != ""
            continue
        if line.startswith("interval ") and line.endswith("  data quality"):
            line = line[: -len("  data quality")]
        else:
            line = re.sub(r"^((?:1m|5m|15m|1h) .*%) +\d+\.\d\d%$", r"\1", line)
        lines.append(line)
    return lines


def test_sample_run_prints_the_summary(sample_run):
    code, out, err, folder, _ = sample_run
    assert code == 0 and err == ""
    seconds = re.search(r"in (\d+\.\d\d) s\n?$", out)
    assert seconds, out[-200:]
    expected = SAMPLE_SUMMARY.format(out=folder, seconds=seconds.group(1))
    assert _as_before_gap_kinds(out) == expected.splitlines()
    # the sample's bars are clean: the anomalies block says so
    assert "anomalies (1m): bars that are there but not real\nnone found\n" in out


def test_sample_run_writes_each_session(sample_run):
    _, _, _, out, summary = sample_run
    # Thanksgiving (2024-11-28) is not a session; the half day after it is.
    assert sorted(p.name for p in (out / "sessions").iterdir()) == \
        [f"{s}.json" for s in SAMPLE_SESSIONS]
    # One file per interval (the engine's partitions), not per symbol x session; the base
    # bars are the input and are not exported by default.
    files = files_under(out)
    assert [f for f in files if f.startswith("bars/")] == [
        f for f in files if re.fullmatch(r"bars/interval=(5m|15m|1h)/part-\d{5}\.parquet", f)]
    assert {f.split("/")[1] for f in files if f.startswith("bars/")} == \
        {"interval=5m", "interval=15m", "interval=1h"}
    assert len([f for f in files if f.startswith("bars/")]) <= 3 * 2   # 1 partition (+ edges)
    assert {f.split("/")[1] for f in files if f.startswith("gaps/")} == \
        {"interval=1m", "interval=5m", "interval=15m", "interval=1h"}
    assert not [f for f in files if "ACME" in f or f.split("/")[-1].startswith(".")]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]   # no staging
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "sessiondata export" and manifest["format"] == "parquet"
    assert manifest["sessions"] == SAMPLE_SESSIONS
    assert manifest["symbols"] == ["ACME", "BOLT", "CRUX", "DELT", "NEWT"]
    assert manifest["intervals_with_bars"] == ["15m", "1h", "5m"]
    assert manifest["summary"]["totals"] == summary["totals"]
    acme = bars_of(out, "ACME", "5m", "2024-11-25")
    assert len(acme) == 78                                  # 09:30 .. 16:00, complete
    assert str(acme["ts"].iloc[0]) == "2024-11-25 14:30:00+00:00"
    assert summary["sessions"] == 6 and summary["base_interval"] == "1m"
    assert summary["symbols"] == ["ACME", "BOLT", "CRUX", "DELT", "NEWT"]
    assert summary["by_symbol"]["CRUX"]["quality"] < 50 < summary["by_symbol"]["ACME"]["quality"]


def test_sample_bar_dataset_equals_resample(sample_run):
    """The exported bars of a symbol that is in every session are what ``resample`` gives."""
    _, _, _, out, _ = sample_run
    smp = sample.generate()
    cal = sample.sample_calendar()
    for symbol in ("ACME", "BOLT", "CRUX"):
        for iv in ("5m", "15m", "1h"):
            want = resample(smp.bars[symbol], iv, cal)
            got = bars_of(out, symbol, iv)
            assert len(got) == len(want), (symbol, iv)
            np.testing.assert_array_equal(got["ts"].astype("int64").to_numpy(), want.ts)
            for col in ("open", "high", "low", "close", "volume", "count", "coverage"):
                np.testing.assert_array_equal(got[col].to_numpy(), getattr(want, col),
                                              err_msg=f"{symbol} {iv} {col}")


def test_sample_symbol_added_mid_session_is_scored_from_its_add(sample_run):
    _, _, _, out, _summary = sample_run
    doc = json.loads((out / "sessions" / "2024-11-26.json").read_text())
    newt = doc["symbols"]["NEWT"]["intervals"]["1m"]
    assert newt["quality"]["expected"] == 300               # 11:00 .. 16:00, not from 09:30
    assert doc["symbols"]["NEWT"]["scored_from"] == "2024-11-26T11:00:00-05:00"
    # Its 1h bucket 10:30-11:30 holds 30 slots inside the span: 30 bars cover it fully.
    hour = doc["symbols"]["NEWT"]["intervals"]["1h"]["quality"]
    assert (hour["expected"], hour["present"], hour["coverage"]) == (6, 6, 6.0)
    first = bars_of(out, "NEWT", "5m", "2024-11-26").iloc[0]
    assert str(first["ts"]) == "2024-11-26 16:00:00+00:00"    # 11:00 EST
    first_hour = bars_of(out, "NEWT", "1h", "2024-11-26").iloc[0]
    assert str(first_hour["ts"]) == "2024-11-26 15:30:00+00:00"   # aligned to the open
    assert (first_hour["count"], first_hour["coverage"]) == (30, 1.0)
    assert "NEWT" not in json.loads((out / "sessions" / "2024-11-25.json").read_text())["symbols"]
    assert len(bars_of(out, "NEWT", "5m", "2024-11-25")) == 0


def test_sample_symbol_removed_mid_session(sample_run):
    _, _, _, out, summary = sample_run
    doc = json.loads((out / "sessions" / "2024-12-02.json").read_text())
    assert "DELT" not in doc["symbols"] and doc["unknown_bars"] == {"DELT": 180}
    later = json.loads((out / "sessions" / "2024-12-03.json").read_text())
    assert "DELT" not in later["symbols"]
    day = next(s for s in summary["per_session"] if s["session"] == "2024-12-02")
    assert "-DELT removed at 13:00 EST" in day["events"]
    delt = bars_of(out, "DELT", "5m")
    assert sorted(set(delt["session"].astype(str))) == ["2024-11-25", "2024-11-26",
                                                        "2024-11-27", "2024-11-29"]


def test_sample_export_validates(sample_run, capsys):
    _, _, _, out, _ = sample_run
    assert validate_export(out) == []
    code, stdout, err = run(capsys, "validate", out)
    assert code == 0 and err == ""
    assert stdout == f"OK   {out}: 6 sessions, 5 symbols, parquet datasets\n"


def test_sample_session_documents_match_the_results(sample_run):
    """Every document counts the bars the dataset holds for it, per symbol and interval."""
    _, _, _, out, _ = sample_run
    bars = read_dataset(out, "bars").to_pandas()
    held = bars.groupby([bars["interval"].astype(str), bars["symbol"].astype(str),
                         bars["session"].astype(str)], observed=True).size().to_dict()
    n = 0
    for label in SAMPLE_SESSIONS:
        doc = json.loads((out / "sessions" / f"{label}.json").read_text())
        assert doc["session"] == label
        for symbol, entry in doc["symbols"].items():
            for iv in ("5m", "15m", "1h"):
                assert held[(iv, symbol, label)] == entry["intervals"][iv]["bars"]
                n += 1
    assert n == 3 * (4 + 5 + 5 + 5 + 4 + 4)   # NEWT from 11-26, DELT gone on 12-02
    assert sum(held.values()) == 1840 + 634 + 173


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
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, "run", "--out", out, "--derived", "none")
    assert code == 0 and "calendar XNYS (built-in sample hours)" in stdout
    # No derived interval and no --export-base: no bar file at all, the rest is written.
    assert not [f for f in files_under(out) if f.startswith("bars/")]
    assert len(list((out / "sessions").glob("*.json"))) == 6
    assert read_dataset(out, "bars").num_rows == 0
    assert validate_export(out) == []


def test_no_export_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(capsys, "run", "--no-export", "--out", tmp_path / "out")
    assert code == 0 and err == ""
    assert "1h          173       173" in stdout and "wrote" not in stdout
    assert list(tmp_path.iterdir()) == []


def test_bars_csv_and_export_base(tmp_path, capsys):
    """``--bars csv`` writes the same datasets as CSV; ``--export-base`` adds the base bars,
    which are the input's bars (start-stamped, UTC)."""
    pq_out, csv_out = tmp_path / "pq", tmp_path / "csv"
    assert run(capsys, "run", "--out", pq_out, "--export-base", "-q")[0] == 0
    assert run(capsys, "run", "--out", csv_out, "--export-base", "--bars", "csv", "-q")[0] == 0
    csv_files = [f for f in files_under(csv_out) if f.startswith(("bars/", "gaps/"))]
    assert csv_files and all(re.fullmatch(r"(bars|gaps)/interval=\w+/part-\d{5}\.csv", f)
                             for f in csv_files)
    assert {f.split("/")[1] for f in csv_files if f.startswith("bars/")} == \
        {"interval=1m", "interval=5m", "interval=15m", "interval=1h"}
    header = next((csv_out / "bars" / "interval=5m").glob("*.csv")).read_text().split("\n")[0]
    assert header.replace('"', "").split(",") == ["symbol", "session", "ts", "open", "high",
                                                  "low", "close", "volume", "count",
                                                  "coverage"]
    assert json.loads((csv_out / "manifest.json").read_text())["format"] == "csv"
    assert validate_export(csv_out) == [] and validate_export(pq_out) == []
    code, stdout, _ = run(capsys, "validate", csv_out)
    assert code == 0 and "csv datasets" in stdout
    for what in ("bars", "gaps"):
        key = ["interval", "symbol", "session"] + (["ts"] if what == "bars" else ["start"])
        a = read_dataset(pq_out, what).to_pandas().sort_values(key).reset_index(drop=True)
        b = read_dataset(csv_out, what).to_pandas().sort_values(key).reset_index(drop=True)
        assert len(a) == len(b) > 0
        for col in a.columns:   # bit for bit: floats in their shortest exact form
            assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), (what, col)
            if a[col].dtype == np.float64:
                assert a[col].to_numpy().tobytes() == b[col].to_numpy().tobytes(), col
    smp = sample.generate()
    acme = bars_of(pq_out, "ACME", "1m")
    np.testing.assert_array_equal(acme["ts"].astype("int64").to_numpy(), smp.bars["ACME"].ts)
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(acme[col].to_numpy(), getattr(smp.bars["ACME"], col))
    assert (acme["count"] == 1).all() and (acme["coverage"] == 1.0).all()
    # DELT's bars after its removal were not stored, and are not exported.
    delt = bars_of(pq_out, "DELT", "1m")
    assert len(delt) == 1372 and "2024-12-02" not in set(delt["session"].astype(str))


def test_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sessiondata", "run", str(tmp_path / "no.csv"),
                           "--calendar", "24/7"], check=False, capture_output=True, text=True, timeout=60)
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
    doc = json.loads((tmp_path / "o" / "sessions" / "2024-01-02.json").read_text())
    assert doc["symbols"]["FDAX"]["intervals"]["5m"]["quality"]["missing"] == 0
    first = bars_of(tmp_path / "o", "FDAX", "15m").iloc[0]
    assert str(first["ts"]) == "2024-01-02 08:00:00+00:00"     # 09:00 Berlin, start-stamped


def test_start_and_end_choose_sessions(tmp_path, capsys):
    path = _bars_csv(tmp_path / "X.csv", "2024-01-01T00:00", 3 * 1440)
    code, _out, _ = run(capsys, "run", path, "--calendar", "always", "--start", "2024-01-02",
                       "--end", "2024-01-02", "--out", tmp_path / "o")
    assert code == 0
    assert [p.name for p in (tmp_path / "o" / "sessions").iterdir()] == ["2024-01-02.json"]
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["sessions"] == \
        ["2024-01-02"]
    sessions = set(map(str, read_dataset(tmp_path / "o", "bars").column("session").to_pylist()))
    assert sessions == {"2024-01-02"}
    code, _, err = run(capsys, "run", path, "--calendar", "always", "--start", "2025-01-01",
                       "--out", tmp_path / "o")
    assert code == 2 and err.startswith("sessiondata: error: ") and err.count("\n") == 1
    # The failed run left the previous export as it was.
    assert [p.name for p in (tmp_path / "o" / "sessions").iterdir()] == ["2024-01-02.json"]
    assert validate_export(tmp_path / "o") == []


def test_start_after_the_data_says_no_session(tmp_path, capsys):
    path = _bars_csv(tmp_path / "X.csv", "2024-01-01T00:00", 3 * 1440)
    code, _, err = run(capsys, "run", path, "--calendar", "always", "--start", "2025-01-01",
                       "--out", tmp_path / "o")
    assert code == 2 and "no session" in err and "--start 2025-01-01" in err


def test_on_bad_drop_counts_and_goes_on(tmp_path, capsys):
    path = _bars_csv(tmp_path / "X.csv", "2024-01-02T00:00", 10)
    path.write_text(path.read_text() + "2024-01-02 00:20,1,2,0.5,zz,1\n")
    code, _, err = run(capsys, "run", path, "--calendar", "24/7", "--out", tmp_path / "o")
    assert code == 2 and "line 12: bad number 'zz'" in err
    assert not (tmp_path / "o").exists()                     # nothing half written
    assert [p.name for p in tmp_path.iterdir()] == ["X.csv"]
    code, out, _ = run(capsys, "run", path, "--calendar", "24/7", "--out", tmp_path / "o",
                       "--on-bad", "drop")
    assert code == 0 and "dropped on read (--on-bad drop): 1 row (bad number: 1)" in out
    assert validate_export(tmp_path / "o") == []


def test_threads_and_fsync_write_the_same_export(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        _bars_csv(data / f"S{i}.csv", "2024-01-02T14:30", 390, skip=set(range(i, 60 * i, 7)))
    cal = "weekly:America/New_York,09:30,16:00"
    outs = {}
    for name, extra in (("one", ["--threads", "1"]), ("four", ["--threads", "4"]),
                        ("fsync", ["--threads", "2", "--fsync"])):
        outs[name] = tmp_path / name
        assert run(capsys, "run", data, "--calendar", cal, "--out", outs[name], "-q",
                   *extra)[0] == 0
        assert validate_export(outs[name]) == []
    docs = {n: [json.loads(p.read_text()) for p in sorted((o / "sessions").iterdir())]
            for n, o in outs.items()}
    assert docs["one"] == docs["four"] == docs["fsync"]
    key = ["interval", "symbol", "ts"]
    tables = {n: read_dataset(o, "bars").to_pandas().sort_values(key).reset_index(drop=True)
              for n, o in outs.items()}
    assert tables["one"].astype(str).equals(tables["four"].astype(str))
    assert tables["one"].astype(str).equals(tables["fsync"].astype(str))


# -- bad input: non-zero exit, one line, no traceback --------------------------------------


@pytest.mark.parametrize("argv,words", [
    (["run", "{bad}", "--calendar", "24/7"], "bad.csv, line 3: bad number 'x'"),
    (["run", "{bad}"], "--calendar is required"),
    (["run", "{good}", "--calendar", "NOPE"], "unknown calendar code 'NOPE'"),
    (["run", "{good}", "--calendar", "weekly:UTC,9"], "expected weekly:TZ,HH:MM,HH:MM"),
    (["run", "{good}", "--calendar", "XNYS"], "outside every session of XNYS"),
    (["run", "{good}", "--calendar", "24/7", "--tz", "Nowhere/City"], "unknown time zone"),
    (["run", "{good}", "--calendar", "24/7", "--stamp", "middle"], "invalid choice"),
    (["run", "{good}", "--calendar", "24/7", "--bars", "json"], "invalid choice"),
    (["run", "{good}", "--calendar", "24/7", "--no-csv"], "unrecognized arguments"),
    (["run", "--base", "1d"], "base interval cannot be '1d'"),
    (["run", "--derived", "90s"], "not a whole multiple"),
    (["run", "--start", "2024-02-30"], "is not a date"),
    (["run", "--start", "2024-12-01", "--end", "2024-11-30"], "is before --start"),
    (["run", "--nonsense"], "unrecognized arguments"),
    (["run", "--out", "{tmp}/notes"], "is not a sessiondata export"),
    (["run", "--out", "{tmp}/notes/a.txt"], "exists and is not a folder"),
])
def test_bad_input_exits_non_zero_with_one_line(tmp_path, capsys, argv, words):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2024-01-02 10:00,1,1,1,1,1\n"
                   "2024-01-02 10:01,x,1,1,1,1\n")
    good = _bars_csv(tmp_path / "good.csv", "2024-01-02T01:00", 3)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not an export\n")
    argv = [a.format(bad=bad, good=good, tmp=tmp_path) for a in argv]
    before = files_under(tmp_path)
    code, _out, err = run(capsys, *argv, "--out", tmp_path / "o") if "--out" not in argv else \
        run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("sessiondata: error: ")
    assert words in err and "Traceback" not in err
    assert files_under(tmp_path) == before           # a folder that is not an export is kept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("where,words", [("nowhere", "no such folder"),
                                         ("", "not a sessiondata export")])
def test_validate_of_a_folder_that_is_no_export(tmp_path, capsys, where, words):
    code, out, err = run(capsys, "validate", tmp_path / where)
    assert code == 1 and err == "" and "Traceback" not in out
    assert out.startswith(f"FAIL {tmp_path / where}: 1 problem\n") and words in out


@pytest.mark.parametrize("exc,code,words", [
    (KeyboardInterrupt(), 130, "interrupted"),
    (OSError(28, "No space left on device"), 2, "No space left on device"),
    (RuntimeError("boom"), 3, "internal error: RuntimeError: boom"),
])
def test_a_run_that_fails_mid_export_keeps_the_previous_export(tmp_path, capsys, monkeypatch,
                                                               exc, code, words):
    from sessiondata.export import BarDatasetWriter

    out = tmp_path / "out"
    assert run(capsys, "run", "--out", out, "-q")[0] == 0
    before = {f: (out / f).read_bytes() for f in files_under(out)}
    calls = []
    real = BarDatasetWriter._append

    def failing(self, interval, table):
        calls.append(interval)
        if len(calls) == 2:                 # one bar file written, the second fails
            raise exc
        return real(self, interval, table)

    monkeypatch.setattr(BarDatasetWriter, "_append", failing)
    got, stdout, err = run(capsys, "run", "--out", out, "--derived", "5m,15m", "--bars", "csv")
    assert (got, stdout) == (code, "")
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
    assert {f: (out / f).read_bytes() for f in files_under(out)} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]        # no staging left
    assert validate_export(out) == []


def test_debug_shows_the_traceback(tmp_path, capsys):
    code, _, err = run(capsys, "run", tmp_path / "none.csv", "--calendar", "24/7", "--debug")
    assert code == 2 and "Traceback" in err and err.strip().endswith("no such file or folder")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_validate_reports_a_broken_export(tmp_path, capsys, fmt):
    path = _bars_csv(tmp_path / "X.csv", "2024-01-02T00:00", 30)
    out = tmp_path / "o"
    assert run(capsys, "run", path, "--calendar", "24/7", "--out", out, "--bars", fmt,
               "--derived", "5m")[0] == 0
    assert run(capsys, "validate", out)[0] == 0
    (part,) = (out / "bars" / "interval=5m").iterdir()
    if fmt == "csv":
        lines = part.read_text().splitlines()
        part.write_text("\n".join(lines[:-1]) + "\n")          # one bar lost
    else:
        import pyarrow.parquet as pq
        table = pq.read_table(part)
        pq.write_table(table.slice(0, table.num_rows - 1), part)
    code, stdout, err = run(capsys, "validate", out)
    assert code == 1 and err == ""
    assert stdout.startswith(f"FAIL {out}: 1 problem\n")
    assert "X 2024-01-02: 5 bars, sessions/2024-01-02.json says 6" in stdout
    part.unlink()                                              # the bar file lost
    code, stdout, _ = run(capsys, "validate", out)
    assert code == 1 and "0 bars, sessions/2024-01-02.json says 6" in stdout
    (out / "sessions" / "2024-01-02.json").write_text('{"session": "2024-01-02", "symb')
    code, stdout, _ = run(capsys, "validate", out)
    assert code == 1 and "2024-01-02.json: cannot read" in stdout


# -- pieces --------------------------------------------------------------------------------


def test_parse_calendar_specs():
    assert cli.parse_calendar("24/7").name == "ALWAYS"
    assert cli.parse_calendar("always").name == "ALWAYS"
    weekly = cli.parse_calendar("weekly:Europe/Berlin,09:00,17:30,Mon,Wed")
    assert list(weekly.sessions("2024-01-01", "2024-01-07").astype(str)) == \
        ["2024-01-01", "2024-01-03"]
    with pytest.raises(cli.CliError):
        cli.parse_calendar("weekly:Europe/Berlin")


def test_cut_grid_keeps_buckets_aligned_to_the_open():
    """A span that starts inside a session (data that starts late, a symbol added mid-session)
    cuts the grid: buckets stay aligned to the window's open, the cut bucket counts only its
    slots inside the span."""
    cal = Calendar.weekly("UTC", "00:00", "01:00", "Mon-Sun")
    day = 86_400 * 10**9
    windows = cal.windows(0, 2 * day)                  # 1970-01-01 and -02, 00:00-01:00
    grid = make_grid(windows, parse_interval("5m"), parse_interval("1m"))
    cut = cut_grid(grid, windows, 7 * MIN)
    assert cut.open_ns.tolist() == [5 * MIN, day]      # the 00:05 bucket holds 00:07
    assert cut.lo_ns.tolist() == [7 * MIN, day]        # ... scored from 00:07
    assert cut.base_slots.tolist() == [55, 60] and cut.is_cut
    late = cut_grid(grid, windows, 58 * MIN)
    assert late.open_ns.tolist() == [55 * MIN, day] and late.lo_ns.tolist() == [58 * MIN, day]
    whole = cut_grid(grid, windows, 0)
    assert whole.open_ns.tolist() == [0, day] and not whole.is_cut
    assert cut_grid(grid, windows, 60 * MIN).open_ns.tolist() == [day]
    session = make_grid(windows, parse_interval("1d"), parse_interval("1m"))
    assert cut_grid(session, windows, MIN).base_slots.tolist() == [59, 60]
    assert cut_grid(session, windows, 60 * MIN).open_ns.tolist() == [day]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    stream = _Terminal()
    bar = cli.Progress(4, stream=stream)
    assert bar.enabled
    bar._t0 -= 1.0                                 # past the half second it waits
    for k in range(1, 5):
        bar(k, 1_000_000 * k)
    bar.finish()
    text = stream.getvalue()
    assert "sessiondata run" in text and "4/4" in text and "bars/s" in text
    quiet = io.StringIO()                          # a StringIO is not a terminal
    off = cli.Progress(4, stream=quiet)
    off._t0 -= 1.0
    off(4, 100)
    off.finish()
    assert not off.enabled and quiet.getvalue() == ""
    one = cli.Progress(1, stream=_Terminal())      # a single part: nothing to follow
    assert not one.enabled
    forced_off = cli.Progress(4, enabled=False, stream=_Terminal())
    forced_off._t0 -= 1.0
    forced_off(1, 1)
    assert forced_off.stream.getvalue() == ""


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
    # A session opens the evening before its date: its bars carry its label, not the day.
    hours = read_dataset(tmp_path / "cme", "bars", "1h").to_pandas()
    local = hours["ts"].dt.tz_convert("America/Chicago").dt.strftime("%Y-%m-%d %H:%M")
    label = dict(zip(local, hours["session"].astype(str)))
    assert label["2024-01-02 15:00"] == "2024-01-02"
    assert label["2024-01-02 17:00"] == "2024-01-03"


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
