"""Issue 19: ``sessiondata inspect`` tells what a file is and prints the run command that gives
the right counts; every run checks its own plausibility (``sessiondata.plausibility``).

The real files of ``../shared/data`` are checked against the independent counts of the issue
(skipped when absent); generated files stand in for the other layouts the issue names (a 2006
index future with a wrong header, FXCM GBP/USD 2012, LEAN SPY 2013 and GOOG 2015), each built
with a known set of missing bars.
"""

from __future__ import annotations

import io
import json
import shlex
import warnings
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import sessiondata as sd
from sessiondata import cli
from sessiondata.calendar import Calendar
from sessiondata.plausibility import (MISFIT_SHARE, SCORE_MARGIN, Plausibility,
                                      PlausibilityError, PlausibilityWarning, Reading,
                                      score_readings)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIX_E = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
MIN = 60_000_000_000


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


def xcals():
    pytest.importorskip("exchange_calendars")


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def inspect_command(path: Path) -> list[str]:
    """The run command `sessiondata inspect PATH` prints (its last line), as argv."""
    code, out, err = run_cli(["inspect", str(path)])
    assert code == 0, err
    last = out.rstrip("\n").splitlines()[-1]
    assert last.startswith("sessiondata run "), out
    argv = shlex.split(last)
    # The JSON says the same.
    code, js, _ = run_cli(["inspect", str(path), "--json"])
    assert code == 0 and json.loads(js)["command"] == last
    return argv[1:]


def run_counts(argv: list[str], tmp: Path) -> tuple[dict, dict, list]:
    """Run argv (a ``run ...`` command) into tmp; (1m totals, plausibility, session docs)."""
    out = tmp / "out"
    summary = tmp / "summary.json"
    code, text, err = run_cli(argv + ["--out", str(out), "-q", "--json-summary", str(summary)])
    assert code == 0, err
    doc = json.loads(summary.read_text())
    sessions = [json.loads(p.read_text()) for p in sorted((out / "sessions").glob("*.json"))]
    return doc["totals"][doc["base_interval"]], doc["plausibility"], sessions


# ------------------------------------------------------------------------------------------
# The real files: the printed command gives the independent counts, and does not warn
# ------------------------------------------------------------------------------------------


def test_inspect_6e(tmp_path):
    xcals()
    argv = inspect_command(need(SIX_E))
    assert "--calendar CME_GLOBEX" in " ".join(argv) and "--stamp end" in " ".join(argv)
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert (totals["missing"], totals["gaps"]) == (423, 353)
    assert plaus["plausible"]


def test_inspect_btc(tmp_path):
    argv = inspect_command(need(DATA / "btc-perp-20211231-20220201_1m.csv"))
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert (totals["bars"], totals["missing"]) == (45_031, 0)
    assert "--calendar 24/7" in " ".join(argv) and plaus["plausible"]


def test_inspect_index_5m(tmp_path):
    xcals()
    argv = inspect_command(need(DATA / "2006-min-005.txt"))
    joined = " ".join(argv)
    assert "--base 5m" in joined and "--stamp end" in joined and "--tz Europe/Berlin" in joined
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert (totals["bars"], totals["missing"]) == (2_142, 0)
    assert plaus["plausible"]


def test_inspect_usdjpy_fx_week(tmp_path):
    argv = inspect_command(need(DATA / "usdjpy-m1-bid-2013.csv"))
    assert argv[argv.index("--calendar") + 1] == "FX"
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert (totals["missing"], totals["gaps"], totals["expected"]) == (40, 38, 28_801)
    assert plaus["plausible"]


def test_inspect_lean_aapl(tmp_path):
    xcals()
    argv = inspect_command(need(DATA / "lean"))
    joined = " ".join(argv)
    assert "--format lean" in joined and "--calendar XNYS" in joined
    totals, plaus, sessions = run_counts(argv, tmp_path)
    assert (totals["missing"], totals["bars"]) == (0, 3 * 390)
    outside = [s["symbols"]["AAPL"]["rejected"]["outside the session's hours"]
               for s in sessions]
    assert outside == [296, 393, 444]
    assert plaus["plausible"]


@pytest.mark.parametrize("name, fmt", [
    ("ADABTC-1m-2021-11-27.csv", "binance"),
    ("futures_ohlcv-1m_2024-07-01T23-40_2024-07-02T00-10.dbn.zst", "databento"),
])
def test_inspect_vendor_formats(tmp_path, name, fmt):
    if fmt == "databento":
        pytest.importorskip("databento_dbn")
        xcals()
    argv = inspect_command(need(DATA / name))
    assert argv[argv.index("--format") + 1] == fmt
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert totals["missing"] == 0 and plaus["plausible"]


def test_inspect_reports_what_it_found():
    found = sd.inspect(need(DATA / "2006-min-005.txt"))
    assert found.base == "5m" and found.naive is True
    assert found.unused == ["OpenInterest"]
    assert found.volume.startswith("present, 0")
    assert found.columns["date"] == "Date" and found.columns["time"] == "Time"
    assert [h["weekday"] for h in found.hours] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert all((h["first"], h["last"]) == ("09:00", "17:30") for h in found.hours)
    js = found.to_json()
    assert js["calendars"][0]["calendar"] == found.best.spec
    assert js["expected"]["missing"] == 0
    found = sd.inspect(need(DATA / "usdjpy-m1-bid-2013.csv"))
    assert found.volume.startswith("absent") and found.naive is False


# ------------------------------------------------------------------------------------------
# Generated files of the other layouts
# ------------------------------------------------------------------------------------------


def _remove(rng, n: int, k: int) -> np.ndarray:
    """A keep-mask of n slots with k runs of 1-3 slots removed (not touching the ends)."""
    keep = np.ones(n, bool)
    starts = rng.choice(np.arange(5, n - 10), size=k, replace=False)
    for s in starts:
        keep[s:s + int(rng.integers(1, 4))] = False
    return keep


def _gaps(keep: np.ndarray, session_of: np.ndarray) -> tuple[int, int]:
    """(missing, gaps) of a keep mask over slots, runs not crossing sessions."""
    missing = int((~keep).sum())
    starts = (~keep) & np.r_[True, keep[:-1] | (session_of[1:] != session_of[:-1])]
    return missing, int(starts.sum())


def _prices(rng, n: int) -> np.ndarray:
    px = 5000 + np.cumsum(rng.normal(0, 1, n))
    return np.round(px, 2)


def test_generated_index_future_wrong_header(tmp_path):
    """A 2006 index future, 1m, 09:00-22:00 Berlin on Eurex's sessions; the header names 7
    fields, the rows have 8 (date,time,o,h,l,c,v,oi): inspect names them with --columns and
    keeps Eurex's holidays in the data's own hours."""
    xcals()
    cal = Calendar.exchange("XEUR@09:00-22:00")
    w = cal.windows(int(np.datetime64("2006-01-02", "ns").astype(np.int64)),
                    int(np.datetime64("2006-02-01", "ns").astype(np.int64)))
    slots = np.concatenate([np.arange(o, c, MIN) for o, c in zip(w.open_ns, w.close_ns)])
    session = np.concatenate([np.full((c - o) // MIN, k) for k, (o, c) in
                              enumerate(zip(w.open_ns, w.close_ns))])
    rng = np.random.default_rng(19)
    keep = _remove(rng, len(slots), 300)
    want_missing, want_gaps = _gaps(keep, session)
    ts = slots[keep]
    wall = sd.plausibility._to_wall(ts, cal.tz)
    px = _prices(rng, len(ts))
    lines = ["Date,Time,Open,High,Low,Close,Volume"]
    for t, p in zip(wall.astype("datetime64[ns]").astype(str), px):
        d, tm = t[:10], t[11:19]
        lines.append(f"{d},{tm},{p:.2f},{p + 1:.2f},{p - 1:.2f},{p + 0.5:.2f},12,100")
    path = tmp_path / "FDAX-2006-01.txt"
    path.write_text("\n".join(lines) + "\n")
    argv = inspect_command(path)
    joined = " ".join(argv)
    assert "--columns date,time,open,high,low,close,volume,unused8" in joined
    assert "--calendar XEUR@09:00-22:00" in joined and "--tz Europe/Berlin" in joined
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert (totals["missing"], totals["gaps"]) == (want_missing, want_gaps)
    assert plaus["plausible"]
    # exchange_calendars' XEUR gives 2006 today's 08:00 open: every session but the first
    # (scored from the data's first bar) an hour short.
    plain = run_counts(argv[:argv.index("--calendar") + 1] + ["XEUR"] +
                       argv[argv.index("--calendar") + 2:], tmp_path / "plain")[0]
    assert plain["missing"] == want_missing + 60 * (w.n_sessions - 1)


def test_generated_fxcm_gbpusd_2012(tmp_path):
    """FXCM's layout (UTC offsets, no volume) over March 2012, across the US DST change: the
    FX week moves from 22:00 to 21:00 UTC."""
    fx = Calendar.fx()
    w = fx.windows(int(np.datetime64("2012-03-01", "ns").astype(np.int64)),
                   int(np.datetime64("2012-03-31", "ns").astype(np.int64)))
    slots = np.concatenate([np.arange(o, c, MIN) for o, c in zip(w.open_ns, w.close_ns)])
    session = np.concatenate([np.full((c - o) // MIN, k) for k, (o, c) in
                              enumerate(zip(w.open_ns, w.close_ns))])
    lo = int(np.datetime64("2012-03-01", "ns").astype(np.int64))
    hi = int(np.datetime64("2012-03-31", "ns").astype(np.int64))
    inside = (slots >= lo) & (slots < hi)
    slots, session = slots[inside], session[inside]
    rng = np.random.default_rng(2012)
    keep = _remove(rng, len(slots), 110)
    want_missing, want_gaps = _gaps(keep, session)
    ts = slots[keep]
    px = 1.58 + np.cumsum(rng.normal(0, 1e-4, len(ts)))
    lines = ["timestamp,open,high,low,close"]
    for t, p in zip(ts.astype("datetime64[ns]").astype(str), px):
        lines.append(f"{t[:10]} {t[11:19]}+00:00,{p:.5f},{p + 2e-4:.5f},{p - 2e-4:.5f},{p:.5f}")
    path = tmp_path / "gbpusd-m1-bid-2012.csv"
    path.write_text("\n".join(lines) + "\n")
    argv = inspect_command(path)
    assert argv[argv.index("--calendar") + 1] == "FX" and "--tz" not in argv
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert (totals["missing"], totals["gaps"]) == (want_missing, want_gaps)
    assert plaus["plausible"]


def _lean_day(folder: Path, sym: str, day: str, rng, regular_keep: np.ndarray,
              pre: int, post: int) -> None:
    """One LEAN trade zip: regular-hours minutes where kept, plus `pre` and `post` extended
    minutes (ms since New York midnight, deci-cent prices)."""
    regular = np.arange(570, 960)[regular_keep]
    early = np.sort(rng.choice(np.arange(240, 570), size=pre, replace=False))
    late = np.sort(rng.choice(np.arange(960, 1200), size=post, replace=False))
    minutes = np.concatenate([early, regular, late])
    px = (1500000 + np.cumsum(rng.integers(-300, 300, len(minutes)))).astype(int)
    rows = [f"{m * 60000},{p},{p + 500},{p - 500},{p},{int(rng.integers(1, 999))}"
            for m, p in zip(minutes.tolist(), px.tolist())]
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f"{day}_trade.zip", "w") as z:
        z.writestr(f"{day}_{sym}_minute_trade.csv", "\n".join(rows) + "\n")


def test_generated_lean_spy_goog(tmp_path):
    """A LEAN data root with SPY in 2013 and GOOG in 2015: XNYS, regular hours counted,
    extended hours set aside per session."""
    xcals()
    rng = np.random.default_rng(2013)
    root = tmp_path / "Data" / "equity" / "usa" / "minute"
    days = {"spy": ["20130102", "20130103", "20130104"], "goog": ["20150105", "20150106"]}
    want_missing = want_gaps = 0
    want_outside = {}
    for sym, dates in days.items():
        for day in dates:
            keep = np.ones(390, bool)
            if sym == "goog":
                keep = _remove(rng, 390, 6)
            session = np.zeros(390, int)
            m, g = _gaps(keep, session)
            want_missing += m
            want_gaps += g
            pre, post = int(rng.integers(20, 200)), int(rng.integers(20, 200))
            want_outside[(sym.upper(), f"{day[:4]}-{day[4:6]}-{day[6:]}")] = pre + post
            _lean_day(root / sym, sym, day, rng, keep, pre, post)
    argv = inspect_command(tmp_path / "Data")
    joined = " ".join(argv)
    assert "--format lean" in joined and "--calendar XNYS" in joined
    totals, plaus, sessions = run_counts(argv, tmp_path)
    assert (totals["missing"], totals["gaps"]) == (want_missing, want_gaps)
    got = {(sym, s["session"]): doc["rejected"]["outside the session's hours"]
           for s in sessions for sym, doc in s["symbols"].items() if doc.get("rejected")}
    assert got == want_outside
    assert plaus["plausible"]


def test_inspect_headerless_and_misspelt(tmp_path):
    ts = np.arange(np.datetime64("2024-03-04T00:00"), np.datetime64("2024-03-05T00:00"),
                   np.timedelta64(1, "m"))
    rows = [f"{str(t).replace('T', ' ')}:00;1.0;1.5;0.5;1.2;10" for t in ts]
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(rows) + "\n")
    found = sd.inspect(bare)
    assert found.options == {"delimiter": ";", "header": False,
                             "columns": ["timestamp", "open", "high", "low", "close", "volume"]}
    assert "--no-header" in found.command and "--delimiter ';'" in found.command
    typo = tmp_path / "typo.csv"
    typo.write_text("timestamp,open,high,low,close,volumen\n" +
                    "\n".join(r.replace(";", ",") for r in rows) + "\n")
    found = sd.inspect(typo)
    assert found.unused == ["volumen"] and found.misspelt == {"volumen": "volume"}
    # The command names it, so the run reads the volume.
    assert "--columns timestamp,open,high,low,close,volume" in found.command
    assert found.volume == "present"
    assert "'volumen' looks like a misspelt 'volume'" in found.render()


# ------------------------------------------------------------------------------------------
# Plausibility
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tz", ["America/New_York", "America/Chicago", "Europe/Berlin"])
def test_6e_wrong_zone_runs_fail_or_warn_naming_utc(tmp_path, tz):
    """6E (a UTC file) run in another zone: by default the read stops at the first bar
    outside every session, its one-line error naming file, line and ``--tz UTC`` (the
    plausibility scorer's verdict: nothing suggests Chicago); with ``--on-bad drop`` the run
    goes through and warns; ``--strict`` fails."""
    xcals()
    argv = ["run", str(need(SIX_E)), "--calendar", "CME_GLOBEX", "--stamp", "end", "--tz", tz]
    code, out, err = run_cli(argv + ["--no-export"])
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"sessiondata: error: {SIX_E}, line ")
    assert "outside every session of CME_GLOBEX; the whole file fits --tz UTC better" \
        in line and "423 missing" in line
    assert "--tz America/Chicago" not in err and "on the whole file" not in err  # said once
    code, out, err = run_cli(argv + ["--on-bad", "drop", "--out", str(tmp_path / "out")])
    assert code == 0
    assert "WARNING: implausible options" in out and "Rerun with --tz UTC" in out
    assert "--tz UTC" in err and "--tz America/Chicago" not in out + err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    plaus = manifest["summary"]["plausibility"]
    assert plaus["plausible"] is False and plaus["better"]["options"] == "--tz UTC"
    assert plaus["better"]["missing"] == 423
    # --strict: exit 2, nothing exported.
    code, out, err = run_cli(argv + ["--on-bad", "drop", "--out", str(tmp_path / "strict"),
                                     "--strict"])
    assert code == 2 and "--tz UTC" in err and not (tmp_path / "strict").exists()


def test_following_the_6e_hint_gives_the_right_counts(tmp_path):
    """The option the wrong-zone error names, followed: the issue's 423 missing in 353
    gaps, and no warning."""
    xcals()
    argv = ["run", str(need(SIX_E)), "--calendar", "CME_GLOBEX", "--stamp", "end", "--tz",
            "Europe/Berlin"]
    code, out, err = run_cli(argv + ["--no-export"])
    hint = err.split("the whole file fits ", 1)[1].split(" better", 1)[0]
    assert hint == "--tz UTC"
    fixed = argv[:-2] + shlex.split(hint)
    totals, plaus, _ = run_counts(fixed, tmp_path)
    assert (totals["missing"], totals["gaps"]) == (423, 353) and plaus["plausible"]


def test_right_options_do_not_warn(tmp_path):
    xcals()
    cases = [
        [str(need(SIX_E)), "--calendar", "CME_GLOBEX", "--stamp", "end", "--tz", "UTC"],
        [str(DATA / "2006-min-005.txt"), "--calendar", "XETR", "--base", "5m", "--stamp",
         "end", "--tz", "Europe/Berlin"],
        [str(DATA / "usdjpy-m1-bid-2013.csv"), "--calendar", "FX"],
        [str(DATA / "lean"), "--format", "lean", "--calendar", "XNYS"],
    ]
    for case in cases:
        code, out, err = run_cli(["run", *case, "--no-export", "--strict"])
        assert code == 0, (case, err)
        assert "implausible" not in out + err


def test_a_5m_file_run_as_1m_warns(tmp_path):
    ts = np.arange(np.datetime64("2024-03-04T00:00"), np.datetime64("2024-03-08T00:00"),
                   np.timedelta64(5, "m"))
    path = tmp_path / "five.csv"
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(
        f"{t}Z,1,2,0.5,1.5,3" for t in ts) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sd.run(str(path), Calendar.always())
    assert any(issubclass(w.category, PlausibilityWarning) and "--base 5m" in str(w.message)
               for w in caught)
    with pytest.raises(PlausibilityError, match="--base 5m"):
        sd.run(str(path), Calendar.always(), strict=True)
    code, out, err = run_cli(["run", str(path), "--calendar", "24/7", "--no-export"])
    assert code == 0 and "--base 5m" in out


def test_score_and_threshold_by_hand():
    # 10 slots of a weekly calendar, 8 bars inside, 2 outside, 2 slots missing:
    # fit 8 / (10 bars + 2 missing).
    cal = Calendar.weekly("UTC", "10:00", "10:10", "Mon-Sun")
    day = int(np.datetime64("2024-03-04T10:00", "ns").astype(np.int64))
    ts = np.r_[day + MIN * np.arange(8), day + MIN * np.array([20, 21])]
    r = Reading("UTC", "start", MIN)
    fit = score_readings([ts], cal, [r], read_tz="UTC", read_shift_ns=0)[r]
    assert (fit.inside, fit.outside, fit.missing, fit.expected) == (8, 2, 2, 10)
    assert fit.score == pytest.approx(8 / 12)
    assert SCORE_MARGIN == 0.01 and MISFIT_SHARE == 0.8
    check = Plausibility(cal, "1m", {"tz": "UTC"})
    assert check.to_json() is None and check.message() is None


def test_naive_parquet_is_inspected_and_checked(tmp_path):
    """A Parquet file with a naive timestamp column (6E rewritten): inspect finds UTC and
    the stamp, and a run in New York time warns."""
    xcals()
    pacsv = pytest.importorskip("pyarrow.csv")
    import pyarrow.parquet as pq

    table = pacsv.read_csv(need(SIX_E))
    path = tmp_path / "6e.parquet"
    pq.write_table(table, path)
    argv = inspect_command(path)
    joined = " ".join(argv)
    assert "--calendar CME_GLOBEX --tz UTC --stamp end" in joined
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert (totals["missing"], totals["gaps"]) == (423, 353) and plaus["plausible"]
    code, out, err = run_cli(["run", str(path), "--calendar", "CME_GLOBEX", "--stamp", "end",
                              "--tz", "America/New_York", "--no-export"])
    assert code == 2 and "6e.parquet, row " in err and "fits --tz UTC better" in err
    code, out, err = run_cli(["run", str(path), "--calendar", "CME_GLOBEX", "--stamp", "end",
                              "--tz", "America/New_York", "--on-bad", "drop", "--no-export"])
    assert code == 0 and "Rerun with --tz UTC" in out


def test_inspect_leaves_out_files_that_are_not_bars(tmp_path):
    ts = np.arange(np.datetime64("2024-03-02T00:00"), np.datetime64("2024-03-03T00:00"),
                   np.timedelta64(1, "m"))
    for sym in ("AAA", "BBB"):
        (tmp_path / f"{sym}.csv").write_text("timestamp,open,high,low,close\n" + "\n".join(
            f"{t}Z,1,2,0.5,1.5" for t in ts) + "\n")
    (tmp_path / "README.txt").write_text("Bars from a vendor\nsee notes\n")
    (tmp_path / "notes.csv").write_text("a;b\n1;2\n")
    found = sd.inspect(tmp_path)
    assert found.symbols == ["AAA", "BBB"] and found.best.spec == "24/7"
    assert sum("not bar data" in n for n in found.notes) == 2
    empty = tmp_path / "empty" / "x.csv"
    empty.parent.mkdir()
    empty.write_text("")
    code, out, err = run_cli(["inspect", str(empty)])
    assert code == 2 and "no run command" in out


def test_calendar_forms_on_the_command_line():
    assert cli.parse_calendar("FX").name == "FX"
    assert cli.parse_calendar("fx") is Calendar.fx()
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as done:
        cli.main(["run", "--help"])
    assert done.value.code == 0
    text = " ".join(out.getvalue().split())
    for form in ("CODE@HH:MM-HH:MM", "XEUR@09:00-22:00", "FX (Sunday 17:00 to Friday 17:00 New "
                 "York)", "today's hours", "'24/7'", "weekly:TZ,HH:MM,HH:MM[,Mon-Fri]"):
        assert form in text, form
    xcals()
    assert cli.parse_calendar("XEUR@09:00-22:00").name == "XEUR@09:00-22:00"
    with pytest.raises(cli.CliError, match=r"--calendar: hours '9-22' are not 'HH:MM-HH:MM'"):
        cli.parse_calendar("XEUR@9-22")


@pytest.mark.parametrize("header, dates, row", [
    ("<TICKER>,<DTYYYYMMDD>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>",
     ["20240304", "20240305"], "FDAX,{d},{h:02d}{m:02d}00,54,55,53,54.5,100"),
    ("Datum;Zeit;Eroeffnung;Hoch;Tief;Schluss;Umsatz",
     ["12/03/2024", "13/03/2024"], "{d};{h:02d}:{m:02d};54;55;53;54.5;100"),
])
def test_inspect_other_headers_by_content(tmp_path, header, dates, row):
    """Headers the readers cannot read by name (MetaStock's <TICKER>, German names), compact
    HHMMSS times, day-first dates: the columns are found by content, the command names them
    and the time format, and the run counts the one missing minute."""
    xcals()
    lines = [header]
    for d in dates:
        for minute in range(9 * 60, 17 * 60 + 30):
            if (d, minute) != (dates[1], 10 * 60):
                lines.append(row.format(d=d, h=minute // 60, m=minute % 60))
    path = tmp_path / "bars.txt"
    path.write_text("\n".join(lines) + "\n")
    argv = inspect_command(path)
    joined = " ".join(argv)
    assert "--columns" in joined and "--ts-format" in joined
    assert "--calendar XETR" in joined and "--tz Europe/Berlin" in joined
    totals, plaus, _ = run_counts(argv, tmp_path)
    assert (totals["bars"], totals["missing"], totals["gaps"]) == (2 * 510 - 1, 1, 1)
    assert plaus["plausible"]


def test_a_reading_with_every_bar_inside_beats_a_small_misfit():
    """Regular hours stamped at the bar's end, read as starts: one bar a session outside,
    fit 778/781 over two days, below the 0.01 margin; the end reading puts every bar inside
    and is named, by the run's check and by the readers (one scorer)."""
    from sessiondata.plausibility import better_reading, candidate_fits

    cal = Calendar.weekly("America/New_York", "09:30", "16:00")
    days = [np.datetime64("2024-01-03T14:31", "ns") + np.timedelta64(d, "D") for d in range(2)]
    ts = np.concatenate([int(d.astype(np.int64)) + MIN * np.arange(390) for d in days])
    current = Reading("UTC", "start", MIN)
    fits = candidate_fits([ts], cal, current, naive=True)
    # 778 inside; the second day's 09:30 slot lies in the span and is missing.
    assert fits[current].score == pytest.approx(778 / (780 + 1))
    better = better_reading(fits, current)
    assert better == Reading("UTC", "end", MIN) and fits[better].score == 1.0
    # Below the margin only a reading with every bar inside and no more slots missing wins.
    fits[better].missing = 2
    assert better_reading(fits, current) is None
    fits[better].missing, fits[better].inside = 0, fits[better].bars - 1
    assert better_reading(fits, current) is None


def test_6e_run_with_the_default_stamp_names_stamp_end(tmp_path):
    """A new user's first try on 6E (UTC, the default --stamp start): 22 bars land in the
    daily break, 445 missing instead of 423; below the margin, but --stamp end puts every bar
    inside: the read error names it, and following it gives the issue's counts."""
    xcals()
    argv = ["run", str(need(SIX_E)), "--calendar", "CME_GLOBEX"]
    code, out, err = run_cli(argv + ["--no-export"])
    assert code == 2 and "the whole file fits --stamp end better" in err
    assert "29,974 of 29,996 bars lie inside sessions and 445 slots are missing" in err
    code, out, err = run_cli(argv + ["--on-bad", "drop", "--no-export"])
    assert code == 0 and "Rerun with --stamp end" in out
    totals, plaus, _ = run_counts(argv + ["--stamp", "end"], tmp_path)
    assert (totals["missing"], totals["gaps"]) == (423, 353) and plaus["plausible"]
