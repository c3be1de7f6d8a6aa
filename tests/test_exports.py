"""Exports: the layout of ``sessiondata.export`` (``OUT/manifest.json``,
``OUT/sessions/<date>.json``, ``OUT/bars/interval=<iv>/part-NNNNN.parquet|csv``,
``OUT/gaps/interval=<iv>/part-00000.*``) and ``validate_export``: exact round trips (JSON,
Parquet and CSV), symbols that stay values of a column (no symbol becomes a file name), an
export that is atomic as a whole (a failure or a SIGKILL part way leaves the previous export
or the complete new one, never a mix), tampering that validation catches in both formats, and
datasets that polars, pyarrow and pandas read as one table equal to ``resample``."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import sessiondata
from helpers import assert_like_resample, ohlcv, session_slots
from sessiondata import Bars, Calendar, SessionCoordinator, find_gaps, job, resample
from sessiondata import export as export_mod
from sessiondata.export import (
    BarDatasetWriter,
    export_run,
    is_export,
    read_dataset,
    recover,
    staged,
    validate_export,
    write_atomic,
)
from sessiondata.documents import dumps

MINUTE = 60_000_000_000
BAR_COLUMNS = ["symbol", "session", "ts", "open", "high", "low", "close", "volume", "count",
               "coverage"]
NY = "weekly:America/New_York,09:30,16:00"


def awkward_bars(o: int) -> Bars:
    """Bars whose floats need all 17 digits, or are subnormal, huge, negative zero..."""
    prices = [0.1 + 0.2, 1 / 3, np.nextafter(1.0, 2.0), 5e-324, 1.7976931348623157e308,
              -0.0, -1e-300, 123456789.12345679, 2.0 ** -1074 * 3, 1e22]
    n = len(prices)
    p = np.array(prices)
    ts = o + np.arange(n, dtype=np.int64) * MINUTE
    vol = np.array([0.0, -0.0, 1e-320, 0.30000000000000004, 7.0, 1e300, 2.5, 3.0, 4.0, 5.0])
    return Bars(ts, p, p, p, p, vol)


def bitwise_equal(a: Bars, b: Bars) -> bool:
    ca, cb = a.columns(), b.columns()
    if ca.keys() != cb.keys():
        return False
    for k in ca:
        if ca[k].dtype != cb[k].dtype or ca[k].shape != cb[k].shape:
            return False
        if not np.array_equal(ca[k].view(np.int64), cb[k].view(np.int64)):
            return False
    return True


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of a folder: relative path -> bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in files_under(root)}


def siblings(out: Path) -> list[str]:
    """Hidden entries beside ``out`` (staging folders, previous exports set aside)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith("."))


def exported_bars(out: Path, symbol: str, interval: str) -> Bars:
    """One symbol's bars of one interval, read back from the dataset, in time order."""
    t = read_dataset(out, "bars", interval)
    t = t.filter(pa.compute.equal(t.column("symbol").cast(pa.string()), symbol))
    t = t.sort_by("ts")
    col = {n: t.column(n).to_numpy() for n in ("open", "high", "low", "close", "volume",
                                               "count", "coverage")}
    return Bars(t.column("ts").cast(pa.int64()).to_numpy(), col["open"], col["high"],
                col["low"], col["close"], col["volume"], count=col["count"],
                coverage=col["coverage"], validate=False)


def ohlcv_of(b: Bars) -> Bars:
    """The six columns only (count and coverage dropped)."""
    return Bars(b.ts, b.open, b.high, b.low, b.close, b.volume, validate=False)


DAYS = ["2024-03-11", "2024-03-12", "2024-03-13"]


def universe(n: int = 3, days: list[str] = DAYS, seed: int = 0) -> dict[str, Bars]:
    """``n`` symbols over whole New York sessions, each with a hole of its own (17 minutes:
    gaps in 1m, 5m and 15m) and a few missing minutes."""
    cal = Calendar.weekly("America/New_York", "09:30", "16:00")
    ts = session_slots(cal, days)
    out = {}
    for i in range(n):
        keep = np.ones(len(ts), bool)
        keep[100 * (i + 1): 100 * (i + 1) + 17] = False
        keep[np.random.default_rng(seed + i).choice(len(ts), 5, replace=False)] = False
        keep[0] = keep[-1] = True           # whole sessions: no span cuts the first or last
        out[f"S{i:02d}" if i else "C/C"] = ohlcv(ts[keep], seed + i)
    return out


def ny() -> Calendar:
    return Calendar.weekly("America/New_York", "09:30", "16:00")


@pytest.fixture
def live(tmp_path):
    """A session on a 24/7 calendar with three symbols, gaps, a dropped bar and an unknown
    symbol; derived bars closed, gaps and quality computed up to 10:00."""
    c = SessionCoordinator(Calendar.always(), derived_intervals=["5m", "1h", "1d"],
                           on_bad="drop")
    sd = c.start("2024-03-15")
    o = int(sd.windows.open_ns[0])
    ts = o + np.arange(600, dtype=np.int64) * MINUTE
    for i, sym in enumerate(["AAA", "BBB", "C.C"]):
        keep = np.ones(600, bool)
        keep[50 * (i + 1): 50 * (i + 1) + 7 * (i + 1)] = False
        c.add_and_load(sym, ohlcv(ts[keep], i))
    c.add_symbol("ODD")
    c.load("ODD", awkward_bars(o))
    assert c.stream("AAA", o, 1.0, 1.0, 1.0, 1.0, 1.0) != 0   # out of order: dropped
    assert c.stream("ZZZ", o, 1.0, 1.0, 1.0, 1.0, 1.0) == -1
    c.processor.finish()
    until = o + 600 * MINUTE
    c.quality.calculate_all(until)
    return c, sd, until


# ------------------------------------------------------------------------------- round trips


def test_json_round_trips_exactly(live, tmp_path):
    c, sd, until = live
    doc = sd.to_json()
    c.stop(until_ns=until, export_to=tmp_path / "out")
    path = tmp_path / "out" / "sessions" / "2024-03-15.json"
    text = path.read_text(encoding="utf-8")

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    read = json.loads(text, parse_constant=no_constants)
    assert read == doc == json.loads(json.dumps(doc))
    # One JSON writer (orjson), byte for byte what the standard library writes.
    # Compact JSON, byte for byte what the standard library writes with no spaces.
    assert text == json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n"
    assert path.read_bytes() == dumps(doc, indent=False)
    assert sorted(read["symbols"]) == ["AAA", "BBB", "C.C", "ODD"]
    assert read["unknown_bars"] == {"ZZZ": 1}
    assert read["symbols"]["AAA"]["rejected"] == {"timestamp out of order": 1}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["kind"] == "sessiondata export" and manifest["sessions"] == ["2024-03-15"]
    assert manifest["symbols"] == ["AAA", "BBB", "C.C", "ODD"]
    assert is_export(tmp_path / "out")


def test_a_stopped_session_with_derived_gaps_exports_soundly(live, tmp_path):
    c, sd, until = live
    doc = sd.to_json()
    assert doc["symbols"]["AAA"]["intervals"]["5m"]["gaps"]["gap_count"] > 0
    c.stop(until_ns=until, export_to=tmp_path / "out")
    gaps = read_dataset(tmp_path / "out", "gaps").to_pandas()
    assert set(gaps["interval"].astype(str)) == {"1m", "5m", "1h"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["derived_intervals"] == ["5m", "1h", "1d"]
    assert validate_export(tmp_path / "out") == []


@pytest.mark.parametrize("since", [False, True])
def test_a_session_bar_cut_by_the_span_counts_like_the_engine(tmp_path, since):
    c = SessionCoordinator(Calendar.always(), derived_intervals=["5m", "1h", "1d"])
    sd = c.start("2024-03-15")
    o = int(sd.windows.open_ns[0])
    first, last = (120, 630) if since else (0, 630)
    bars = ohlcv(o + np.arange(first, last, dtype=np.int64) * MINUTE)
    c.add_and_load("A", bars)
    c.stop(since_ns=o + first * MINUTE if since else None, until_ns=o + last * MINUTE,
           export_to=tmp_path / "live")
    # (a live session runs no anomaly detectors: the engine's without them, issue 22)
    job.run({"A": bars}, Calendar.always(), derived=["5m", "1h", "1d"], out=tmp_path / "engine",
            anomalies="none")
    docs = {k: json.loads((tmp_path / k / "sessions" / "2024-03-15.json").read_text())
            for k in ("live", "engine")}
    assert docs["engine"]["symbols"]["A"]["intervals"]["1d"]["quality"]["score"] == 100.0
    for iv in ("1m", "5m", "1h", "1d"):
        assert docs["live"]["symbols"]["A"]["intervals"][iv] == \
            docs["engine"]["symbols"]["A"]["intervals"][iv], iv
    assert exported_bars(tmp_path / "live", "A", "1d").coverage.tolist() == [1.0]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_bar_dataset_round_trips_exactly(live, tmp_path, fmt):
    c, sd, until = live
    held = {s: {iv: sd.get_bars(s, iv) for iv in sd.get_symbol_data(s).intervals()}
            for s in sd.get_active_symbols()}
    c.stop(until_ns=until, export_to=tmp_path / "out", fmt=fmt)
    out = tmp_path / "out"
    doc = json.loads((out / "sessions" / "2024-03-15.json").read_text())
    n = 0
    for sym, by_interval in held.items():
        for iv, bars in by_interval.items():
            got = exported_bars(out, sym, iv)
            assert bitwise_equal(ohlcv_of(got), ohlcv_of(bars)), (sym, iv)
            if bars.count is None:                      # base bars: one slot each
                assert (got.count == 1).all() and (got.coverage == 1.0).all()
            else:
                np.testing.assert_array_equal(got.count, bars.count)
                if iv == "1d":   # cut at 10:00: the bar's coverage is what the score counts
                    assert round(float(got.coverage[0]), 6) == \
                        doc["symbols"][sym]["intervals"]["1d"]["quality"]["coverage"]
                else:
                    assert got.coverage.tobytes() == bars.coverage.tobytes(), (sym, iv)
            n += 1
    assert n == 16
    # One file per interval, whatever the number of symbols; the symbol is a column.
    files = sorted(str(p.relative_to(out / "bars")) for p in (out / "bars").rglob("*")
                   if p.is_file())
    assert [f.split("/")[0] for f in files] == ["interval=1d", "interval=1h", "interval=1m",
                                                "interval=5m"]
    assert all(re.fullmatch(rf"interval=\w+/part-\d{{5}}\.{fmt}", f) for f in files)
    table = read_dataset(out, "bars")
    assert table.column_names == BAR_COLUMNS + ["interval"]
    assert sorted(set(table.column("symbol").to_pylist())) == ["AAA", "BBB", "C.C", "ODD"]
    assert set(map(str, table.column("session").to_pylist())) == {"2024-03-15"}
    assert table.num_rows == sum(len(b) for v in held.values() for b in v.values())


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("derived", [False, True])
def test_awkward_floats_round_trip_bit_exact(tmp_path, fmt, derived):
    """Floats that need 17 digits, subnormals, the largest double, -0.0: read back bit for
    bit from Parquet and from CSV (shortest exact form)."""
    c = SessionCoordinator(Calendar.always())
    sd = c.start("2023-11-14")
    bars = awkward_bars(int(sd.windows.open_ns[0]))
    c.add_and_load("X", bars)
    if derived:
        n = len(bars)
        bars = Bars(*(getattr(bars, k) for k in ("ts", "open", "high", "low", "close", "volume")),
                    count=np.arange(1, n + 1), coverage=np.arange(1, n + 1) / 7.0 / n)
    export_run(sd.result(), tmp_path / "out", fmt=fmt, bars={"X": {"1m": bars}})
    got = exported_bars(tmp_path / "out", "X", "1m")
    assert bitwise_equal(ohlcv_of(got), ohlcv_of(bars))
    if derived:
        assert got.coverage.tobytes() == bars.coverage.tobytes()
        np.testing.assert_array_equal(got.count, bars.count)
    assert np.signbit(got.open[5]) and np.signbit(got.volume[1])          # -0.0 kept
    if fmt == "csv":
        (part,) = (tmp_path / "out" / "bars" / "interval=1m").iterdir()
        text = part.read_text()
        assert "0.30000000000000004" in text and "1.7976931348623157e+308" in text
        plain = pacsv.read_csv(part)                    # any CSV reader gets the same floats
        assert plain.column("open").to_numpy().tobytes() == bars.open.tobytes()


def test_empty_session_export_is_valid(tmp_path):
    c = SessionCoordinator(sessiondata.Calendar.exchange("XNYS"))
    sd = c.start("2024-03-15")
    doc = sd.to_json()
    c.stop(export_to=tmp_path / "out")
    out = tmp_path / "out"
    names = {str(p.relative_to(out)) for p in files_under(out)}
    assert {"manifest.json", "sessions/2024-03-15.json"} <= names
    assert not [n for n in names if n.startswith("bars/")]
    assert validate_export(out) == []
    read = json.loads((out / "sessions" / "2024-03-15.json").read_text())
    assert read == doc and read["symbols"] == {} and len(read["windows"]) == 1
    assert read_dataset(out, "bars").num_rows == 0 and read_dataset(out, "gaps").num_rows == 0


# --------------------------------------------------------------------- symbols, not file names


HOSTILE = ["../x", "a/b", "EUR/USD", "..", ".", "/etc/passwd", "..\\..\\x", "a\\b",
           "../../../../tmp/evil", ".hidden", "~root", "%2e%2e%2fx", "a%2Fb", "C:\\x",
           "Ünïcødé/指数", "x" * 240, "指" * 100, "a b", "*?<>|\"'", "-rf", "NA", "null", "nan",
           "a,b", "1e5", "#N/A"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_hostile_symbol_names_stay_values_of_the_symbol_column(tmp_path, fmt):
    c = SessionCoordinator(Calendar.always(), derived_intervals=["5m"])
    sd = c.start("2024-03-15")
    o = int(sd.windows.open_ns[0])
    for i, sym in enumerate(HOSTILE):
        c.add_and_load(sym, ohlcv(o + np.arange(12, dtype=np.int64) * MINUTE, i))
    root = tmp_path / "root"
    folder = root / "inner" / "export"
    root.mkdir()
    (root / "sentinel").write_text("x")
    before = files_under(tmp_path)
    c.stop(until_ns=o + 12 * MINUTE, export_to=folder, fmt=fmt)
    created = files_under(tmp_path) - before
    inside = folder.resolve()
    assert all(inside in p.resolve().parents for p in created), sorted(map(str, created))
    assert files_under(tmp_path) - created == before       # nothing else touched
    assert sorted(p.name for p in (root / "inner").iterdir()) == ["export"]   # no staging
    names = sorted(str(p.relative_to(folder)) for p in created)
    for name in names:
        assert re.fullmatch(r"manifest\.json|sessions/2024-03-15\.json|"
                            rf"(bars|gaps)/interval=(1m|5m)/part-\d{{5}}\.{fmt}", name), name
    assert len([n for n in names if n.startswith("bars/")]) == 2   # not one per symbol
    assert validate_export(folder) == []
    for iv, n in (("1m", 12), ("5m", 3)):
        t = read_dataset(folder, "bars", iv)
        symbols = t.column("symbol").cast(pa.string()).to_pylist()
        assert sorted(set(symbols)) == sorted(HOSTILE)
        assert all(symbols.count(s) == n for s in HOSTILE)
    for i, sym in enumerate(HOSTILE):
        assert exported_bars(folder, sym, "1m").close.tobytes() == \
            ohlcv(o + np.arange(12, dtype=np.int64) * MINUTE, i).close.tobytes(), sym
    doc = json.loads((folder / "sessions" / "2024-03-15.json").read_text())
    assert sorted(doc["symbols"]) == sorted(HOSTILE)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["symbols"]) == sorted(HOSTILE)


@pytest.mark.parametrize("symbol", ["a\nb", "a\rb", "\x00", "nul\x00byte", "a\x7f", "\x1b[2J",
                                    "tab\there", "a\x85b", "bidi\u202etxt", "zw\u200bsp"])
def test_control_characters_in_a_symbol_are_rejected_at_add_symbol(symbol):
    c = SessionCoordinator()
    sd = c.start("2024-03-15")
    with pytest.raises(ValueError, match="control"):
        c.add_symbol(symbol)
    assert sd.get_active_symbols() == []


# ----------------------------------------------------------------------------- atomic writes


def test_interrupted_rename_keeps_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    write_atomic(target, "old contents\n")

    def boom(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(export_mod.os, "replace", boom)
    with pytest.raises(OSError, match="power cut"):
        write_atomic(target, "new contents\n")
    assert target.read_text() == "old contents\n"
    assert os.listdir(tmp_path) == ["f.txt"]


class _HalfWriter:
    """A file that writes half of what it is given, then is interrupted."""

    def __init__(self, f, exc):
        self._f, self._exc = f, exc

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        raise self._exc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()
        return False

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
@pytest.mark.parametrize("previous", [True, False])
def test_interrupted_write_leaves_previous_or_nothing(tmp_path, monkeypatch, exc, previous):
    target = tmp_path / "bars.csv"
    if previous:
        write_atomic(target, "old\n")
    real_fdopen = os.fdopen
    monkeypatch.setattr(export_mod.os, "fdopen",
                        lambda fd, *a, **k: _HalfWriter(real_fdopen(fd, *a, **k), exc))
    with pytest.raises(type(exc)):
        write_atomic(target, "new, and long enough to be cut in half\n" * 100)
    if previous:
        assert target.read_text() == "old\n"
        assert os.listdir(tmp_path) == ["bars.csv"]
    else:
        assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ an export, atomic as a whole


def _first_export(tmp_path) -> tuple[Path, dict[str, Bars], dict[str, bytes]]:
    data = universe(130)          # three partitions of the engine (64 symbols each)
    out = tmp_path / "out"
    job.run(data, ny(), derived=["5m"], out=out, threads=2)
    assert validate_export(out) == []
    return out, data, snapshot(out)


def _fail_after(calls: int, exc: BaseException, real):
    seen = {"n": 0}

    def failing(*args, **kwargs):
        seen["n"] += 1
        if seen["n"] > calls:
            raise exc
        return real(*args, **kwargs)

    return failing, seen


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()],
                         ids=["oserror", "interrupt"])
@pytest.mark.parametrize("where", ["bars", "write_run", "after_write_run"])
def test_a_failure_mid_export_keeps_the_previous_export(tmp_path, monkeypatch, exc, where):
    out, data, before = _first_export(tmp_path)
    if where == "bars":      # after some bar files were written
        failing, seen = _fail_after(2, exc, BarDatasetWriter._append)
        monkeypatch.setattr(BarDatasetWriter, "_append", failing)
    elif where == "write_run":
        failing, seen = _fail_after(0, exc, export_mod.write_run)
        monkeypatch.setattr(export_mod, "write_run", failing)
    else:                    # the new export complete in its staging folder, then a failure
        real = export_mod.write_run
        seen = {"n": 0}

        def failing(run, folder, **kwargs):
            seen["n"] += 1
            real(run, folder, **kwargs)
            assert (Path(folder) / "manifest.json").exists()
            raise exc

        monkeypatch.setattr(export_mod, "write_run", failing)
    with pytest.raises(type(exc)):
        job.run(data, ny(), derived=["5m", "15m"], out=out, fmt="csv", threads=2)
    assert seen["n"] >= 1
    monkeypatch.undo()
    assert snapshot(out) == before                       # the previous export, byte for byte
    assert validate_export(out) == []
    assert siblings(out) == []                           # no staging folder left behind
    # The next run recovers nothing (there is nothing to recover) and replaces it whole.
    job.run(data, ny(), derived=["5m", "15m"], out=out, fmt="csv", threads=2)
    assert validate_export(out) == [] and siblings(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "csv" and manifest["derived_intervals"] == ["5m", "15m"]
    assert not [p for p in snapshot(out) if p.endswith(".parquet")]   # no old file mixed in


def test_a_failure_of_the_first_export_leaves_no_folder(tmp_path, monkeypatch):
    failing, _ = _fail_after(1, OSError("disk full"), BarDatasetWriter._append)
    monkeypatch.setattr(BarDatasetWriter, "_append", failing)
    with pytest.raises(OSError, match="disk full"):
        job.run(universe(130), ny(), out=tmp_path / "out", threads=2)
    assert list(tmp_path.iterdir()) == []


def test_recover_removes_what_killed_runs_left(tmp_path):
    out, data, before = _first_export(tmp_path)
    stale = tmp_path / ".out.staging-abc123"
    (stale / "bars" / "interval=5m").mkdir(parents=True)
    (stale / "bars" / "interval=5m" / "part-00000.parquet").write_bytes(b"half")
    set_aside = tmp_path / ".out.previous-99999"
    shutil.copytree(out, set_aside)
    assert recover(out) is None                 # the export is in place: nothing restored
    assert siblings(out) == [] and snapshot(out) == before
    # A kill between the two renames of a swap: the export set aside, nothing at out.
    os.rename(out, set_aside)
    problems = validate_export(out)
    assert len(problems) == 1 and "no such folder" in problems[0]
    assert "an interrupted export left the previous one at" in problems[0]
    assert recover(out) == set_aside
    assert snapshot(out) == before and validate_export(out) == [] and siblings(out) == []
    # ... and the next export does it by itself.
    os.rename(out, set_aside)
    job.run(data, ny(), derived=["15m"], out=out)
    assert validate_export(out) == [] and siblings(out) == []
    assert json.loads((out / "manifest.json").read_text())["derived_intervals"] == ["15m"]


def test_a_failed_swap_leaves_the_previous_export_recoverable(tmp_path, monkeypatch):
    """The second rename of the swap fails: the previous export is set aside, and the next
    export (or ``recover``) puts it back."""
    out, data, before = _first_export(tmp_path)
    real = os.rename
    calls = []

    def rename(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:
            raise OSError("power cut")
        return real(src, dst)

    monkeypatch.setattr(export_mod.os, "rename", rename)
    with pytest.raises(OSError, match="power cut"):
        job.run(data, ny(), derived=["15m"], out=out)
    monkeypatch.undo()
    assert calls[0][0] == "out" and calls[0][1].startswith(".out.previous-")
    assert not [s for s in siblings(out) if ".staging-" in s]
    recover(out)
    assert snapshot(out) == before and validate_export(out) == [] and siblings(out) == []


def test_a_failed_swap_puts_the_previous_export_back(tmp_path, monkeypatch):
    out, data, before = _first_export(tmp_path)
    real = os.rename
    calls = []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("power cut")
        return real(src, dst)

    monkeypatch.setattr(export_mod.os, "rename", rename)
    with pytest.raises(OSError, match="power cut"):
        job.run(data, ny(), derived=["15m"], out=out)
    monkeypatch.undo()
    assert snapshot(out) == before and validate_export(out) == []


def test_staged_refuses_a_folder_that_is_not_an_export(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("years of work\n")
    with pytest.raises(ValueError, match="not a sessiondata export"):
        job.run(universe(2), ny(), out=notes)
    assert [p.name for p in notes.iterdir()] == ["thesis.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        job.run(universe(2), ny(), out=tmp_path / "file")
    (tmp_path / "empty").mkdir()
    job.run(universe(2), ny(), out=tmp_path / "empty")          # an empty folder is fine
    assert validate_export(tmp_path / "empty") == []
    assert siblings(tmp_path / "notes") == []


def test_out_is_the_current_empty_folder(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    job.run(universe(2), ny(), out=".")
    assert validate_export(here) == []


def test_staged_is_swapped_in_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged(out) as tmp:
        (tmp / "manifest.json").write_text("{}")
        assert tmp.parent == out.parent and tmp.name.startswith(".out.staging-")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- SIGKILL in the middle of an export


def _write_universe(folder: Path, symbols: int, days: list[str]) -> None:
    folder.mkdir()
    for s, bars in universe(symbols, days).items():
        name = s.replace("/", "_")
        pq.write_table(pa.table({"timestamp": pa.array(bars.ts, pa.timestamp("ns", tz="UTC")),
                                 "open": bars.open, "high": bars.high, "low": bars.low,
                                 "close": bars.close, "volume": bars.volume}),
                       folder / f"{name}.parquet")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sessiondata", "run", *args]


def _export_state(out: Path) -> tuple[str, str] | None:
    """(format, derived intervals) of the export at ``out`` after checking that it is whole:
    it validates, and its files are those of one export (every bar folder is an interval the
    manifest lists, every session document has the manifest's derived intervals)."""
    problems = validate_export(out)
    assert problems == [], problems[:5]
    manifest = json.loads((out / "manifest.json").read_text())
    fmt, derived = manifest["format"], ",".join(manifest["derived_intervals"])
    folders = {p.name for p in (out / "bars").iterdir()} if (out / "bars").exists() else set()
    assert folders == {f"interval={iv}" for iv in manifest["intervals_with_bars"]}
    assert set(manifest["intervals_with_bars"]) == set(manifest["derived_intervals"])
    suffixes = {p.suffix for p in out.rglob("part-*")}
    assert suffixes == {f".{fmt}"}, suffixes
    for doc in (out / "sessions").iterdir():
        for entry in json.loads(doc.read_text())["symbols"].values():
            assert ",".join(entry["derived_intervals"]) == derived
    return fmt, derived


def _staging(out: Path) -> list[str]:
    return [s for s in siblings(out) if ".staging-" in s]


def test_sigkill_mid_export_leaves_the_previous_or_the_new_export(tmp_path):
    data = tmp_path / "data"
    _write_universe(data, 24, [f"2024-03-{d:02d}" for d in range(4, 16)
                               if d not in (9, 10)])
    out = tmp_path / "out"
    # The runs alternate what they write, so an export tells which run wrote it.
    variants = [("parquet", "5m,1h"), ("csv", "15m"), ("parquet", "5m,15m,1h")]

    def start(fmt: str, derived: str) -> subprocess.Popen:
        return subprocess.Popen(_cli(str(data), "--calendar", NY, "--out", str(out), "--bars",
                                     fmt, "--derived", derived, "-q"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_for_staging(proc: subprocess.Popen, old: set[str] = frozenset()) -> float:
        """Until the run's own staging folder appears (not one a killed run left)."""
        t0 = time.monotonic()
        while (not set(_staging(out)) - old and proc.poll() is None
               and time.monotonic() - t0 < 60):
            time.sleep(0.002)
        return time.monotonic() - t0

    # Two whole runs: the first makes the previous export, the second times a run and the
    # moment its export starts (its staging folder appears).
    for fmt, derived in variants[:2]:
        t0 = time.monotonic()
        proc = start(fmt, derived)
        staged_after = wait_for_staging(proc)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        full = time.monotonic() - t0
        state = _export_state(out)
        assert state == (fmt, derived) and siblings(out) == []
    window = max(full - staged_after, 0.05)        # how long the export is staged
    rng = random.Random(20241125)
    outcomes = {"previous": 0, "new": 0}
    killed_while_staged = 0
    attempts = 8
    for attempt in range(attempts):
        fmt, derived = variants[(attempt + 2) % 3]
        if state == (fmt, derived):
            fmt, derived = variants[(attempt + 3) % 3]
        left = set(_staging(out))      # what killed runs left, for this run to recover
        proc = start(fmt, derived)
        if attempt % 2:      # any moment of the run
            time.sleep(rng.uniform(0.1, 1.1) * full)
        else:                # a moment of its export
            wait_for_staging(proc, left)
            time.sleep(rng.uniform(0.0, 1.0) * window)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        killed_while_staged += bool(set(_staging(out)) - left)
        if out.exists():
            now = _export_state(out)
        else:                  # killed between the two renames of the swap
            aside = [p for p in tmp_path.iterdir() if p.name.startswith(".out.previous-")]
            assert len(aside) == 1 and is_export(aside[0])
            assert "an interrupted export left the previous one" in validate_export(out)[0]
            now = _export_state(aside[0])
        assert now in (state, (fmt, derived)), (attempt, now)
        outcomes["previous" if now == state else "new"] += 1
        state = now
        if attempt % 2:        # else the next run recovers what this one left
            recover(out)
            assert siblings(out) == [] and _export_state(out) == now
    assert sum(outcomes.values()) == attempts
    assert killed_while_staged > 0, "no kill landed in the middle of an export"
    # A last run, not killed, replaces whatever is there.
    final = subprocess.run(_cli(str(data), "--calendar", NY, "--out", str(out), "--bars",
                                "csv", "--derived", "5m", "-q"),
                           check=False, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert _export_state(out) == ("csv", "5m") and siblings(out) == []


# ------------------------------------------------------------------------ tamper detection


@pytest.fixture(params=["parquet", "csv"])
def exported(request, tmp_path):
    """An export of three symbols over three sessions, base bars included, with gaps in every
    interval, in Parquet or CSV."""
    out = tmp_path / "exp"
    job.run(universe(3), ny(), derived=["5m", "15m"], out=out, fmt=request.param,
            export_base=True)
    assert validate_export(out) == []
    gaps = read_dataset(out, "gaps").to_pandas()
    assert set(gaps["interval"].astype(str)) == {"1m", "5m", "15m"}
    return out, request.param


def _part(out: Path, interval: str = "1m") -> Path:
    (part,) = (out / "bars" / f"interval={interval}").iterdir()
    return part


def _read_part(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pandas()
    df = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={
        "symbol": pa.string(), "session": pa.date32(), "ts": pa.timestamp("ns", tz="UTC"),
        "start": pa.timestamp("ns", tz="UTC"), "end": pa.timestamp("ns", tz="UTC")}))
    return df.to_pandas()


def _write_part(path: Path, df: pd.DataFrame) -> None:
    """Write a part file back as the exporter would (the same format and column types)."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        table = table.set_column(0, "symbol", table.column("symbol").cast(pa.string()))
        pacsv.write_csv(table, path)


def _edit_part(path: Path, edit) -> None:
    _write_part(path, edit(_read_part(path)))


def test_validate_reads_both_formats_back(exported):
    out, fmt = exported
    bars = read_dataset(out, "bars")
    assert bars.column_names == BAR_COLUMNS + ["interval"]
    assert bars.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert bars.schema.field("session").type == pa.date32()
    assert {p.suffix for p in out.rglob("part-*")} == {f".{fmt}"}
    data = universe(3)
    for sym, b in data.items():
        assert bitwise_equal(ohlcv_of(exported_bars(out, sym, "1m")), b)


def test_validate_catches_a_value_breaking_the_bar_invariants(exported):
    out, _fmt = exported
    path = _part(out, "5m")

    def edit(df):
        df.loc[3, "high"] = -1.0
        return df

    _edit_part(path, edit)
    problems = validate_export(out)
    assert len(problems) == 1 and "break the bar invariants" in problems[0]
    assert str(out / "bars") in problems[0]


def test_a_changed_value_shows_in_the_bars_read_back(exported):
    """A changed price that keeps the bar sound is not something validation can know (the
    bars held are gone); reading the export back gives the changed value, not the sent one."""
    out, _fmt = exported
    data = universe(3)
    assert bitwise_equal(ohlcv_of(exported_bars(out, "S01", "1m")), data["S01"])

    def edit(df):
        rows = np.flatnonzero(df["symbol"].astype(str) == "S01")
        df.loc[rows[6], "close"] = (df.loc[rows[6], "high"] + df.loc[rows[6], "low"]) / 2
        return df

    _edit_part(_part(out), edit)
    assert not bitwise_equal(ohlcv_of(exported_bars(out, "S01", "1m")), data["S01"])
    assert validate_export(out) == []


def test_validate_catches_reordered_rows(exported):
    out, _fmt = exported

    def edit(df):
        order = list(range(len(df)))
        order[10], order[11] = order[11], order[10]
        return df.iloc[order]

    _edit_part(_part(out), edit)
    problems = validate_export(out)
    assert len(problems) == 1 and str(out / "bars") in problems[0]


def test_validate_catches_a_ts_that_disagrees_with_its_session(exported):
    out, _fmt = exported

    def edit(df):
        df.loc[5, "ts"] = df.loc[5, "ts"] + pd.Timedelta(hours=12)  # evening, outside
        return df

    _edit_part(_part(out), edit)
    assert validate_export(out) != []


def test_validate_catches_a_bar_moved_to_another_session(exported):
    out, _fmt = exported

    def edit(df):
        df.loc[5, "session"] = df.loc[5, "session"] + pd.Timedelta(days=1)
        return df

    _edit_part(_part(out), edit)
    problems = validate_export(out)
    assert len(problems) == 3, problems     # the two counts, and the bar outside its session
    assert "1 bars lie outside the session their session column names" in problems[0]
    first = re.search(r"C/C 2024-03-11: (\d+) bars, sessions/2024-03-11.json says (\d+)",
                      problems[1])
    second = re.search(r"C/C 2024-03-12: (\d+) bars, sessions/2024-03-12.json says (\d+)",
                       problems[2])
    assert first and int(first.group(1)) == int(first.group(2)) - 1
    assert second and int(second.group(1)) == int(second.group(2)) + 1


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_validate_catches_a_missing_row(exported, where):
    out, _fmt = exported
    k = {"first": 0, "middle": 700, "last": -1}[where]
    _edit_part(_part(out), lambda df: df.drop(index=df.index[k]))
    problems = validate_export(out)
    assert len(problems) == 1 and ".json says" in problems[0]
    assert str(out / "bars" / "interval=1m") in problems[0]


def test_validate_catches_a_duplicated_row(exported):
    out, _fmt = exported
    _edit_part(_part(out, "15m"), lambda df: pd.concat([df.iloc[:8], df.iloc[7:]]))
    problems = validate_export(out)
    assert any("duplicate bars" in p for p in problems)
    counts = [re.search(r"(\d+) bars, sessions/\S+ says (\d+)", p) for p in problems]
    counts = [(int(m.group(1)), int(m.group(2))) for m in counts if m]
    assert len(counts) == 1 and counts[0][0] == counts[0][1] + 1, problems


def test_validate_catches_a_deleted_bar_file(exported):
    out, _fmt = exported
    _part(out, "5m").unlink()
    problems = validate_export(out)
    assert len(problems) == 9                                  # 3 symbols x 3 sessions
    assert all(re.search(r"interval=5m: \S+ 2024-03-1[123]: 0 bars, sessions/", p)
               for p in problems)


def test_validate_catches_a_truncated_bar_file(exported):
    out, fmt = exported
    path = _part(out, "5m")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if fmt == "parquet" else data[:-40])
    problems = validate_export(out)
    assert problems
    if fmt == "parquet":
        assert len(problems) == 1 and "cannot read the datasets" in problems[0]


def test_validate_catches_a_lost_gap_row(exported):
    out, _fmt = exported
    (gap_part,) = (out / "gaps" / "interval=1m").iterdir()
    _edit_part(gap_part, lambda df: df.iloc[1:])
    problems = validate_export(out)
    assert len(problems) == 1 and "gaps, the session document says" in problems[0]


def _edit_json(folder: Path, edit, label: str = "2024-03-11") -> None:
    path = folder / "sessions" / f"{label}.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("tamper, message", [
    (lambda iv: iv["gaps"].__setitem__("gap_count", iv["gaps"]["gap_count"] + 1), "gap_count"),
    (lambda iv: iv["gaps"].__setitem__("gap_count", 0), "gap_count"),
    (lambda iv: iv["gaps"].__setitem__("missing_bars", 1), "missing_bars"),
    (lambda iv: iv["gaps"]["ranges"][0].__setitem__("bar_count", 0), "range"),
    (lambda iv: iv["quality"].__setitem__("present", iv["quality"]["present"] + 1),
     "expected != present + missing"),
    (lambda iv: iv["quality"].__setitem__("score", 100.5), "out of [0, 100]"),
    (lambda iv: iv.__setitem__("bars", iv["bars"] + 1), "2024-03-11.json says"),
    (lambda iv: iv.__setitem__("bars", iv["quality"]["expected"] + 1), "more than the"),
    (lambda iv: iv.pop("gaps"), "no gaps object"),
])
def test_validate_catches_a_tampered_json(exported, tamper, message):
    out, _fmt = exported
    # S01 misses 17 minutes from 12:50 on 2024-03-11: one gap or more.
    _edit_json(out, lambda doc: tamper(doc["symbols"]["S01"]["intervals"]["1m"]))
    problems = validate_export(out)
    assert problems and all("S01" in p for p in problems), problems
    assert any(message in p for p in problems), problems


def test_validate_catches_a_tampered_bar_count(exported):
    out, _fmt = exported
    _edit_json(out, lambda doc: doc["symbols"]["C/C"]["intervals"]["5m"].__setitem__(
        "bars", doc["symbols"]["C/C"]["intervals"]["5m"]["bars"] - 1), "2024-03-12")
    problems = validate_export(out)
    assert len(problems) == 1
    found = re.search(r"interval=5m: C/C 2024-03-12: (\d+) bars, sessions/2024-03-12.json "
                      r"says (\d+)", problems[0])
    assert found and int(found.group(1)) == int(found.group(2)) + 1


def test_validate_catches_an_unreadable_or_incomplete_json(exported):
    out, _fmt = exported
    _edit_json(out, lambda doc: doc.pop("symbols"))
    problems = validate_export(out)
    assert any("missing key 'symbols'" in p for p in problems)
    assert any("no document lists" in p for p in problems)     # its bars are orphans
    path = out / "sessions" / "2024-03-11.json"
    path.write_text('{"session": "2024-03-11", "symbols": {')
    problems = validate_export(out)
    assert "cannot read" in problems[0] and str(path) in problems[0]
    path.unlink()
    assert "cannot read" in validate_export(out)[0]
    (out / "manifest.json").unlink()
    problems = validate_export(out)
    assert len(problems) == 1 and "not a sessiondata export" in problems[0]


def test_validate_catches_a_session_document_of_another_export(exported):
    out, _fmt = exported
    doc = json.loads((out / "sessions" / "2024-03-11.json").read_text())
    doc["session"] = "2024-03-08"
    (out / "sessions" / "2024-03-08.json").write_text(json.dumps(doc))
    assert validate_export(out) != []


def test_validate_catches_a_document_of_another_session(exported):
    out, _fmt = exported
    _edit_json(out, lambda doc: doc.__setitem__("session", "2024-03-12"))
    assert validate_export(out) != []


# ----------------------------------------------------------- the datasets in other readers


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """``sessiondata run`` on a folder of Parquet files (one per symbol), Parquet and CSV
    exports of the same run."""
    root = tmp_path_factory.mktemp("readers")
    _write_universe(root / "data", 5, DAYS)
    outs = {}
    for fmt in ("parquet", "csv"):
        outs[fmt] = root / fmt
        proc = subprocess.run(_cli(str(root / "data"), "--calendar", NY, "--out",
                                   str(outs[fmt]), "--bars", fmt, "--derived", "5m,15m,1h",
                                   "--export-base", "-q"),
                              check=False, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert validate_export(outs[fmt]) == []
    data = {s.replace("/", "_"): b for s, b in universe(5).items()}
    return outs, data


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["symbol"] = df["symbol"].astype(str)
    df["interval"] = df["interval"].astype(str)
    df["session"] = df["session"].astype(str)
    df["ts"] = pd.to_datetime(df["ts"], utc=True).astype("int64")
    return df.sort_values(["interval", "symbol", "ts"]).reset_index(drop=True)[
        BAR_COLUMNS + ["interval"]]


def test_bar_dataset_rows_equal_resample(folder_run):
    outs, data = folder_run
    cal = ny()
    for fmt, out in outs.items():
        for symbol, bars in data.items():
            for iv in ("1m", "5m", "15m", "1h"):
                got = exported_bars(out, symbol, iv)
                want = bars if iv == "1m" else resample(bars, iv, cal)
                assert bitwise_equal(ohlcv_of(got), ohlcv_of(want)), (fmt, symbol, iv)
                if iv != "1m":
                    np.testing.assert_array_equal(got.count, want.count)
                    assert got.coverage.tobytes() == want.coverage.tobytes(), (symbol, iv)


def test_gap_dataset_rows_equal_find_gaps(folder_run):
    outs, data = folder_run
    cal = ny()
    for out in outs.values():
        gaps = read_dataset(out, "gaps").to_pandas()
        for symbol, bars in data.items():
            for iv in ("1m", "5m", "15m", "1h"):
                want = find_gaps(bars if iv == "1m" else resample(bars, iv, cal), iv, cal)
                got = gaps[(gaps["symbol"].astype(str) == symbol) &
                           (gaps["interval"].astype(str) == iv)].sort_values("start")
                np.testing.assert_array_equal(got["start"].astype("int64"), want.start_ns)
                np.testing.assert_array_equal(got["end"].astype("int64"), want.end_ns)
                np.testing.assert_array_equal(got["bar_count"], want.bar_count)


def test_bar_dataset_reads_as_one_table_in_polars_pyarrow_and_pandas(folder_run):
    pl = pytest.importorskip("polars")
    outs, data = folder_run
    out = outs["parquet"]
    ours = _sorted(read_dataset(out, "bars").to_pandas())
    assert set(ours["symbol"]) == set(data) and set(ours["interval"]) == {"1m", "5m", "15m",
                                                                          "1h"}
    assert set(ours["session"]) == set(DAYS)
    frame = pl.scan_parquet(f"{out}/bars/**/*.parquet", hive_partitioning=True).collect()
    assert {"symbol", "session", "interval"} <= set(frame.columns)
    assert frame.height == len(ours)
    assert _sorted(frame.to_pandas()).equals(ours)
    table = ds.dataset(out / "bars", format="parquet", partitioning="hive").to_table()
    assert {"symbol", "session", "interval"} <= set(table.column_names)
    assert _sorted(table.to_pandas()).equals(ours)
    frame = pd.read_parquet(out / "bars")
    assert _sorted(frame).equals(ours)
    one = pl.scan_parquet(f"{out}/bars/**/*.parquet", hive_partitioning=True).filter(
        (pl.col("symbol") == "S01") & (pl.col("interval") == "15m")).collect()
    want = resample(data["S01"], "15m", ny())
    np.testing.assert_array_equal(one.sort("ts")["close"].to_numpy(), want.close)


def test_csv_bar_dataset_reads_as_one_table_in_polars_pyarrow_and_pandas(folder_run):
    pl = pytest.importorskip("polars")
    outs, _data = folder_run
    out = outs["csv"]
    ours = _sorted(read_dataset(out, "bars").to_pandas())
    reference = _sorted(read_dataset(outs["parquet"], "bars").to_pandas())
    assert ours.equals(reference)
    table = ds.dataset(out / "bars", format="csv", partitioning="hive").to_table()
    assert {"symbol", "session", "interval"} <= set(table.column_names)
    assert _sorted(table.to_pandas()).equals(ours)
    files = sorted((out / "bars").glob("*/*.csv"))
    frame = pd.concat([pd.read_csv(f).assign(interval=f.parent.name.split("=", 1)[1])
                       for f in files])
    assert _sorted(frame).equals(ours)
    frame = pl.scan_csv(f"{out}/bars/**/*.csv", try_parse_dates=True,
                        include_file_paths="path").collect()
    frame = frame.with_columns(pl.col("path").str.extract(r"interval=([^/]+)/").alias(
        "interval")).drop("path")
    assert frame.height == len(ours)
    got = _sorted(frame.to_pandas())
    for col in ("symbol", "session", "interval", "open", "high", "low", "close", "volume",
                "count", "coverage"):
        assert got[col].tolist() == ours[col].tolist(), col


def test_the_number_of_files_follows_the_input_not_symbols_x_sessions(tmp_path):
    """Twenty symbols over three sessions, four intervals: the bar files are at most the
    engine's partitions (plus its edge pass) per interval, not 20 x 3 x 4."""
    out = tmp_path / "out"
    job.run(universe(20), ny(), derived=["5m", "15m", "1h"], out=out, export_base=True,
            threads=2)
    files = [p for p in (out / "bars").rglob("*") if p.is_file()]
    assert 4 <= len(files) <= 4 * 3
    assert len(list((out / "sessions").iterdir())) == 3
    assert len([p for p in (out / "gaps").rglob("*") if p.is_file()]) == 4
    assert validate_export(out) == []


def test_a_stopped_session_exports_what_the_engine_exports(tmp_path):
    """Live streaming builds the same records at ``stop()`` as the engine over the same bars:
    the same session document and the same bars (volume to a few ulps), buckets cut by the
    scored span (a first bar at 02:03, a last at 10:26) counted over their slots inside it."""
    first, last = 123, 627
    cal = Calendar.always()
    c = SessionCoordinator(cal, derived_intervals=["5m", "15m", "1h"])
    sd = c.start("2024-03-15")
    o = int(sd.windows.open_ns[0])
    ts = o + np.arange(first, last, dtype=np.int64) * MINUTE
    data = {}
    for i, sym in enumerate(["AAA", "B/B", "CCC"]):
        keep = np.ones(len(ts), bool)
        keep[40 * (i + 1): 40 * (i + 1) + 9 * (i + 1)] = False
        data[sym] = ohlcv(ts[keep], i)
        c.add_symbol(sym)
        for k in range(0, len(data[sym]), 50):          # streamed in batches
            c.stream_bars(sym, data[sym][k:k + 50])
        c.mark_loaded(sym)
    c.stop(since_ns=o + first * MINUTE, until_ns=o + last * MINUTE,
           export_to=tmp_path / "live")
    # (a live session runs no anomaly detectors: the engine's without them, issue 22)
    job.run(data, cal, derived=["5m", "15m", "1h"], out=tmp_path / "engine", anomalies="none")
    docs = {k: json.loads((tmp_path / k / "sessions" / "2024-03-15.json").read_text())
            for k in ("live", "engine")}
    assert docs["live"] == docs["engine"]
    assert docs["live"]["symbols"]["AAA"]["scored_from"] == "2024-03-15T02:03:00+00:00"
    for sym, sent in data.items():
        for iv in ("1m", "5m", "15m", "1h"):
            live = exported_bars(tmp_path / "live", sym, iv)
            if iv == "1m":
                assert bitwise_equal(ohlcv_of(live), sent)
                continue
            engine = exported_bars(tmp_path / "engine", sym, iv)
            # Volume sums may associate differently (the stream builds 15m from 5m bars).
            assert_like_resample(live, engine, f"{sym} {iv}")
            # The first bucket starts at 02:00 and is scored from 02:03, the last ends after
            # 10:27 and is scored to it: counted over their slots inside the span.
            inside = {"5m": 2, "15m": 12, "1h": 57}[iv]
            assert live.coverage[0] == live.count[0] / inside
            assert live.coverage[-1] == 1.0 and live.count[-1] == {"5m": 2, "15m": 12,
                                                                    "1h": 27}[iv]


def test_a_previous_export_that_cannot_be_removed_is_said_with_its_place(tmp_path,
                                                                         monkeypatch):
    """Issue 18: after the swap, a previous export that cannot be fully removed (a read-only
    tree in a writable parent) was left half-deleted in a hidden ``.exp.previous-PID`` folder
    without a word.  The new export is in place, and a warning names what was left where."""
    out = tmp_path / "exp"
    with export_mod.staged(out) as tmp:
        (tmp / "manifest.json").write_text(json.dumps({"kind": export_mod.KIND}))
        (tmp / "sessions").mkdir()
        (tmp / "sessions" / "locked.json").write_text("old")
        (tmp / "sessions" / "free.json").write_text("old")
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):  # as a read-only folder refuses (root ignores chmod)
        if str(path).endswith("locked.json"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.warns(export_mod.ExportLeftoverWarning) as caught:
        with export_mod.staged(out) as tmp:
            (tmp / "manifest.json").write_text(json.dumps({"kind": export_mod.KIND, "n": 1}))
    monkeypatch.undo()
    message = str(caught[0].message)
    left = tmp_path / f".exp.previous-{os.getpid()}"
    assert json.loads((out / "manifest.json").read_text())["n"] == 1   # the new one is in place
    assert str(left) in message and "locked.json" in message and "PermissionError" in message
    assert (left / "sessions" / "locked.json").exists()
    assert not (left / "sessions" / "free.json").exists()


def test_a_previous_export_removed_whole_says_nothing(tmp_path, recwarn):
    out = tmp_path / "exp"
    for n in (0, 1):
        with export_mod.staged(out) as tmp:
            (tmp / "manifest.json").write_text(json.dumps({"kind": export_mod.KIND, "n": n}))
    assert json.loads((out / "manifest.json").read_text())["n"] == 1
    assert not list(tmp_path.glob(".exp.*"))
    assert not [w for w in recwarn if issubclass(w.category, export_mod.ExportLeftoverWarning)]


def test_the_manifest_says_where_the_export_came_from(tmp_path):
    """Issue 18 item 7: the version, the run's options, the input files with their sizes and
    modification times (said as such), and the versions of the libraries that move results."""
    from importlib import metadata

    data = tmp_path / "data"
    data.mkdir()
    ts = np.arange(30, dtype=np.int64) * 60_000_000_000 + 1_704_067_200_000_000_000
    for name in ("AAA", "BBB"):
        pd.DataFrame({"ts": pd.to_datetime(ts, utc=True), "open": 1.0, "high": 1.0,
                      "low": 1.0, "close": 1.0, "volume": 1.0}).to_csv(data / f"{name}.csv",
                                                                       index=False)
    out = tmp_path / "out"
    job.run(data, Calendar.always(), out=out, derived=("5m",), on_bad="drop")
    manifest = export_mod.read_manifest(out)
    origin = manifest["provenance"]
    assert origin["sessiondata"] == sessiondata.__version__
    assert origin["libraries"]["pyarrow"] == metadata.version("pyarrow")
    assert "exchange_calendars" in origin["libraries"]
    assert origin["options"]["derived_intervals"] == ["5m"]
    assert origin["options"]["on_bad"] == "drop" and origin["options"]["calendar"] == Calendar.always().name
    inputs = origin["inputs"]
    assert "not a content hash" in inputs["identity"]
    assert [(f["path"], f["bytes"]) for f in inputs["files"]] == [
        (f"{n}.csv", (data / f"{n}.csv").stat().st_size) for n in ("AAA", "BBB")]
    assert inputs["files"][0]["modified_ns"] == (data / "AAA.csv").stat().st_mtime_ns
    assert validate_export(out) == []


def test_held_back_sessions_do_not_break_the_files_time_order(tmp_path):
    """Files whose span is unknown before reading (the LEAN zips of ../shared/data) on one
    thread: each symbol's first and last sessions are finished after the middle ones; written
    into the thread's own files they came after later bars ("AAPL's bars are out of time
    order" from validate). They go to files of their own."""
    from pathlib import Path

    import sessiondata as sd
    from sessiondata.export import validate_export

    lean = Path(__file__).resolve().parents[2] / "shared" / "data" / "lean"
    if not lean.exists():
        pytest.skip("no ../shared/data/lean")
    pytest.importorskip("exchange_calendars")
    cal = sd.Calendar.exchange("XNYS")
    for threads in (1, 2):
        out = tmp_path / f"out{threads}"
        sd.run(lean, cal, out=out, threads=threads, read_options={"format": "lean"},
               anomalies="none")
        assert validate_export(out) == []
