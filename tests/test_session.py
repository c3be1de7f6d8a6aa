"""The session lifecycle (SessionCoordinator over SessionData) and the specification's edge cases.

Oracles: the batch functional API (``sessiondata.resample``, ``find_gaps``, ``quality``) on the
same bars, and a plain Python model of the registry for the add/remove property.
"""

from __future__ import annotations

import functools
import gc
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sessiondata
from sessiondata import BadBarError, Bars, Calendar, SessionCoordinator, SessionData
from sessiondata.bars import FAULTS
from sessiondata.export import validate_export

from conftest import LONG
from helpers import ohlcv, assert_bars_equal, assert_like_resample

MINUTE = 60_000_000_000
SECOND = 1_000_000_000
SRC = Path(sessiondata.__file__).resolve().parent
DERIVED = ("5m", "15m", "1h")


def fault(name: str) -> int:
    """The fault code whose description contains ``name``."""
    (code,) = [k for k, v in FAULTS.items() if name in v]
    return code


NONFINITE, HIGH_LOW, VOLUME = fault("non-finite price"), fault("high/low"), fault("volume")
UNSORTED, DUPLICATE = fault("out of order"), fault("duplicate")
OUTSIDE, MISALIGNED = fault("outside"), fault("grid")


@functools.lru_cache(maxsize=None)
def calendar(name: str) -> Calendar:
    return Calendar.always() if name == "always" else Calendar.exchange(name)


def slot_starts(windows, step_ns: int) -> np.ndarray:
    """Every slot start of the session's windows (the bars of a complete day)."""
    return np.concatenate([np.arange(o, c, step_ns, dtype=np.int64) for o, c in
                           zip(windows.open_ns.tolist(), windows.close_ns.tolist())])


def day_ts(cal_name: str, day: str, step_ns: int = MINUTE) -> np.ndarray:
    return slot_starts(calendar(cal_name).session_windows(day), step_ns)


def stream_all(c: SessionCoordinator, symbol: str, bars: Bars) -> None:
    cols = [bars.ts.tolist()] + [getattr(bars, k).tolist() for k in
                                 ("open", "high", "low", "close", "volume")]
    for row in zip(*cols):
        assert c.stream(symbol, *row) == 0


def all_bars(entry) -> dict[str, Bars]:
    return {iv: entry.bars(iv) for iv in entry.intervals()}


def close_ns(sd: SessionData) -> int:
    return int(sd.windows.close_ns[-1])


def drop_slots(ts: np.ndarray, runs) -> np.ndarray:
    """ts without the runs ``(first index, length)``."""
    keep = np.ones(len(ts), bool)
    for first, length in runs:
        keep[first:first + length] = False
    return ts[keep]


# ------------------------------------------------------------------------------------ lifecycle


def test_lifecycle_xnys_phases_stream_remove_stop():
    cal = calendar("XNYS")
    c = SessionCoordinator(cal)
    assert c.get_active_symbols() == []
    sd = c.start("2024-03-15")
    assert sd.is_active and str(sd.session) == "2024-03-15"
    ts = day_ts("XNYS", "2024-03-15")
    assert len(ts) == 390
    aapl, msft, ibm = ohlcv(ts, 1), ohlcv(ts, 2), ohlcv(ts, 3)

    # Phase 1: register.  Derived intervals are set, nothing is loaded yet.
    entry = c.add_symbol("AAPL")
    assert entry.base_interval == "1m" and entry.derived_intervals == list(DERIVED)
    assert entry.is_loaded is False
    c.add_symbol("MSFT", "1m", ["5m", "1d"])
    assert c.get_active_symbols() == ["AAPL", "MSFT"]
    assert c.get_loaded_symbols() == [] == sd.get_loaded_symbols()
    assert sorted(sd.get_symbols_with_derived()) == ["AAPL", "MSFT"]

    # Phase 2: load the morning in one batch.  Phase 3: mark loaded.
    assert c.load("AAPL", aapl[:120]) == 120
    assert not entry.is_loaded
    c.mark_loaded("AAPL")
    assert entry.is_loaded and entry.derived_intervals == list(DERIVED)
    assert c.get_loaded_symbols() == ["AAPL"] == sd.get_loaded_symbols()

    # The rest of the day bar by bar for AAPL, in batches for MSFT.
    stream_all(c, "AAPL", aapl[120:])
    for k in range(0, 390, 50):
        assert c.stream_bars("MSFT", msft[k:k + 50]) == min(50, 390 - k)
    c.mark_loaded("MSFT")

    # A symbol added and removed in the middle of the session.
    c.add_symbol("IBM")
    stream_all(c, "IBM", ibm[:200])
    assert c.remove_symbol("IBM") is True
    assert c.remove_symbol("IBM") is False
    row = [getattr(ibm, k)[200].item() for k in ("ts", "open", "high", "low", "close", "volume")]
    assert c.stream("IBM", *row) == -1              # a removed symbol: counted, not stored
    assert sd.unknown_bars == {"IBM": 1}
    assert c.get_active_symbols() == ["AAPL", "MSFT"]

    assert_bars_equal(sd.get_bars("AAPL"), aapl, "AAPL 1m")
    summary = c.stop()
    assert not sd.is_active
    assert c.get_active_symbols() == [] and c.get_loaded_symbols() == []
    assert summary.session == "2024-03-15" and summary.symbols == 2 and summary.bars == 780
    rows = {(r["symbol"], r["interval"]): r for r in summary.rows}
    assert set(rows) == {("AAPL", "1m"), ("AAPL", "5m"), ("AAPL", "15m"), ("AAPL", "1h"),
                         ("MSFT", "1m"), ("MSFT", "5m"), ("MSFT", "1d")}
    expected = {"1m": 390, "5m": 78, "15m": 26, "1h": 7, "1d": 1}
    for (sym, iv), r in rows.items():
        assert r["expected"] == expected[iv] == r["bars"], (sym, iv, r)
        assert r["gaps"] == 0 and r["missing"] == 0 and r["quality"] == 100.0
    assert summary.gaps == 0 and summary.missing == 0
    with pytest.raises(RuntimeError):
        c.stop()


def test_lifecycle_24_7_session():
    c = SessionCoordinator(Calendar.always(), base_interval="1m",
                           derived_intervals=["5m", "1h", "1d"])
    sd = c.start("2024-03-16")  # a Saturday: the always-open calendar trades
    ts = day_ts("always", "2024-03-16")
    assert len(ts) == 1440
    bars = ohlcv(ts, 7)
    c.add_symbol("BTC-USD")
    stream_all(c, "BTC-USD", bars[:1000])
    c.stream_bars("BTC-USD", bars[1000:])
    c.mark_loaded("BTC-USD")
    entry = sd.get_symbol_data("BTC-USD")
    c.processor.finish()
    for iv in ("5m", "1h", "1d"):
        assert_like_resample(entry.bars(iv), sessiondata.resample(bars, iv, Calendar.always()), iv)
    summary = c.stop()
    got = {r["interval"]: (r["bars"], r["expected"], r["quality"]) for r in summary.rows}
    assert got == {"1m": (1440, 1440, 100.0), "5m": (288, 288, 100.0),
                   "1h": (24, 24, 100.0), "1d": (1, 1, 100.0)}


def test_replay_a_days_arrays():
    c = SessionCoordinator(calendar("XNYS"))
    sd = c.start("2024-03-15")
    ts = day_ts("XNYS", "2024-03-15")
    day = {f"S{i}": ohlcv(ts, i) for i in range(5)}
    day["DICT"] = {k: v for k, v in ohlcv(ts, 99).columns().items()}  # plain columns too
    assert c.replay(day) == 390 * 6
    assert sorted(c.get_loaded_symbols()) == sorted(day)
    for sym, bars in day.items():
        expected = bars if isinstance(bars, Bars) else Bars.from_dict(bars)
        assert_bars_equal(sd.get_bars(sym), expected, sym)
        assert sd.get_symbol_data(sym).derived_intervals == list(DERIVED)


def test_get_loaded_symbols_delegates_to_session_data(monkeypatch):
    c = SessionCoordinator()
    assert c.get_loaded_symbols() == [] and c.get_active_symbols() == []
    c.start("2024-03-15")
    for s in ("A", "B", "C"):
        c.add_symbol(s)
    c.mark_loaded("B")
    assert c.get_loaded_symbols() == c.session_data.get_loaded_symbols() == ["B"]
    calls = []
    monkeypatch.setattr(c.session_data, "get_loaded_symbols",
                        lambda: calls.append(1) or ["sentinel"])
    assert c.get_loaded_symbols() == ["sentinel"] and calls == [1]


def test_an_entry_kept_from_an_ended_session_never_shows_another_symbols_bars():
    """Streams may be recycled for the next session's symbols; an entry a caller kept from
    the session before must then either still show its own bars or refuse, never show the
    bars of whichever symbol got its buffers."""
    c = SessionCoordinator(calendar("XNYS"), derived_intervals=["5m"])
    c.start("2024-03-14")
    ts1 = day_ts("XNYS", "2024-03-14")
    a_bars = ohlcv(ts1[:50], 1)
    c.add_and_load("A", a_bars)
    kept = c.session_data.get_symbol_data("A")
    c.stop()
    c.start("2024-03-15")
    c.add_and_load("B", ohlcv(day_ts("XNYS", "2024-03-15")[:7], 2))
    for iv, own in (("1m", a_bars), ("5m", sessiondata.resample(a_bars, "5m", c.calendar))):
        try:
            got = kept.bars(iv)
        except RuntimeError as exc:     # refusing is fine
            assert "A" in str(exc)
            continue
        assert len(got) == len(own) and int(got.ts[0]) == int(ts1[0]), (iv, got)
        assert_like_resample(got, own, iv)   # or its own bars, still
    assert "A" in repr(kept)
    assert c.get_active_symbols() == ["B"]


def test_active_symbols_empty_without_a_session():
    sd = SessionData()
    assert sd.get_active_symbols() == [] and not sd.is_active
    with pytest.raises(RuntimeError, match="no active session"):
        sd.add_symbol("A")
    sd.start_session("2024-03-15")
    sd.add_symbol("A")
    with pytest.raises(RuntimeError, match="still active"):
        sd.start_session("2024-03-18")
    sd.end_session()
    assert sd.get_active_symbols() == [] and sd.get_loaded_symbols() == []


def test_backtest_run_sessions_with_out_dir(tmp_path):
    cal = calendar("XNYS")
    sessions = cal.sessions("2024-11-26", "2024-12-02")  # 2024-11-29 closes at 13:00
    assert [str(s) for s in sessions] == ["2024-11-26", "2024-11-27", "2024-11-29",
                                          "2024-12-02"]
    held_out = {"2024-11-27": [(60, 7), (200, 1)]}  # gaps on one day

    def bars_for(day):
        ts = drop_slots(day_ts("XNYS", str(day)), held_out.get(str(day), []))
        return {"AAA": ohlcv(ts, 1), "BBB": ohlcv(ts, 2)}

    c = SessionCoordinator(cal, derived_intervals=["5m", "1h", "1d"])
    seen = []
    summaries = c.run_sessions(sessions, bars_for, out_dir=tmp_path, on_session=seen.append)
    assert seen == summaries and len(summaries) == 4
    assert not c.session_data.is_active
    slots = {"2024-11-26": 390, "2024-11-27": 390, "2024-11-29": 210, "2024-12-02": 390}
    for s in summaries:
        base_rows = [r for r in s.rows if r["interval"] == "1m"]
        assert [r["expected"] for r in base_rows] == [slots[s.session]] * 2
        missing = 8 if s.session == "2024-11-27" else 0
        assert [r["missing"] for r in base_rows] == [missing] * 2
        doc = json.loads((tmp_path / "sessions" / f"{s.session}.json").read_text())
        assert doc["session"] == s.session and sorted(doc["symbols"]) == ["AAA", "BBB"]
        assert doc["symbols"]["AAA"]["is_loaded"] is True
        one_day = doc["symbols"]["AAA"]["intervals"]["1d"]
        assert one_day["bars"] == 1 and one_day["quality"]["expected"] == 1
    # One export for the run: a document per session, one bar file per derived interval.
    assert validate_export(tmp_path) == []
    assert sorted(p.parent.name for p in (tmp_path / "bars").glob("*/*.parquet")) == \
        ["interval=1d", "interval=1h", "interval=5m"]


def test_run_sessions_caps_the_last_session_and_cleans_up_on_error(tmp_path):
    cal = calendar("XNYS")
    c = SessionCoordinator(cal, derived_intervals=["5m"])
    day2 = cal.session_windows("2024-03-15")
    until = int(day2.open_ns[0]) + 100 * MINUTE  # the data ends at 11:10 on the last day

    def bars_for(day):
        ts = day_ts("XNYS", str(day))
        return {"A": ohlcv(ts[ts < until], 3)}

    s1, s2 = c.run_sessions(["2024-03-14", "2024-03-15"], bars_for, until_ns=until)
    assert {r["interval"]: r["expected"] for r in s1.rows} == {"1m": 390, "5m": 78}
    assert {r["interval"]: r["expected"] for r in s2.rows} == {"1m": 100, "5m": 20}
    assert s2.missing == 0

    def broken(day):
        raise OSError("feed down")

    with pytest.raises(OSError, match="feed down"):
        c.run_sessions(["2024-03-18"], broken)
    assert not c.session_data.is_active  # the failed session was ended
    c.run_sessions(["2024-03-18"], bars_for)


# ----------------------------------------------------------------------------------- edge cases


def test_process_bar_data_on_a_removed_symbol_is_skipped_quietly(monkeypatch):
    c = SessionCoordinator(calendar("XNYS"), derived_intervals=["5m", "15m"])
    sd = c.start("2024-03-15")
    ts = day_ts("XNYS", "2024-03-15")
    a, b = ohlcv(ts, 1), ohlcv(ts, 2)
    c.add_symbol("A")
    c.add_symbol("B")
    stream_all(c, "A", a[:3])      # 09:30..09:32 of the first 5m bucket
    stream_all(c, "B", b[:11])     # the session clock moves to 09:41
    assert sd.clock_ns == int(ts[10]) + MINUTE
    # The clock does not close A's bucket: A's feed may only lag.  What A's latest base
    # bar closed is what _process_bar_data reports.
    assert c.processor._process_bar_data("A", "1m") == 0
    assert sd.get_symbol_data("A").bar_count("5m") == 0
    stream_all(c, "A", a[3:5])     # 09:33, 09:34: the last slot closes the 09:30 bucket
    assert c.processor._process_bar_data("A", "1m") == 1
    five = sd.get_bars("A", "5m")
    assert five.ts.tolist() == [int(ts[0])] and five.count.tolist() == [5]
    assert c.processor._process_bar_data("A", "5m") == 0   # not the base interval
    # Mid-session quality counts B's buckets by the clock, without closing them: the ended
    # 09:35 bucket, and the 09:40 one over its slot that closed (09:40).
    assert c.quality._calculate_quality("B", "5m") is not None
    assert sd.get_symbol_data("B").quality["5m"].present == 3
    assert sd.get_symbol_data("B").quality["5m"].expected == 3

    # Removed (or never added): skipped quietly.
    c.remove_symbol("A")
    assert c.processor._process_bar_data("A", "1m") == 0
    assert c.processor._process_bar_data("NEVER", "1m") == 0
    assert c.quality._calculate_quality("A", "1m") is None
    assert "A" not in sd.get_active_symbols()

    # The processor reads the symbol and its stream under the registry lock, in one step, so
    # a removal is seen either before (skipped) or after (the bar's count is reported).
    sd.remove_symbol("B")
    assert c.processor._process_bar_data("B", "1m") == 0
    assert sd.get_active_symbols() == []
    monkeypatch.undo()
    assert sd.add_bar("B", int(ts[20]), 1.0, 1.0, 1.0, 1.0, 1.0) == -1
    assert sd.unknown_bars == {"B": 1}


def test_a_bar_for_a_bucket_the_clock_already_closed_never_doubles_a_derived_bar():
    """The session clock is shared: B running ahead closes A's 09:30 5m bucket (partial).  A's
    09:33 and 09:34 bars that come afterwards must not open a second 09:30 bar: derived
    timestamps stay strictly increasing, every base bar held is in exactly one derived bar,
    and gaps and quality can still be computed."""
    c = SessionCoordinator(calendar("XNYS"), derived_intervals=["5m", "15m"], on_bad="drop")
    sd = c.start("2024-03-15")
    o = int(sd.windows.open_ns[0])
    c.add_symbol("A")
    c.add_symbol("B")
    for i in range(3):
        assert c.stream("A", o + i * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    for i in range(11):
        assert c.stream("B", o + i * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    assert c.processor._process_bar_data("A", "1m") == 0   # the clock closes nothing
    assert c.quality._calculate_quality("A", "5m") is not None  # nor does scoring
    for i in range(3, 30):
        assert c.stream("A", o + i * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0) == 0  # none is late
    c.processor.finish()
    entry = sd.get_symbol_data("A")
    held = entry.bar_count()
    for iv in ("5m", "15m"):
        b = entry.bars(iv)
        assert (np.diff(b.ts) > 0).all(), (iv, b.ts)
        assert int(b.count.sum()) == held, iv
        assert c.quality._calculate_quality("A", iv, close_ns(sd)) is not None
    assert held == 30 and not entry.rejected


def test_add_symbol_twice_is_idempotent_and_fills_new_derived_intervals():
    cal = calendar("XNYS")
    c = SessionCoordinator(cal)
    sd = c.start("2024-03-15")
    ts = day_ts("XNYS", "2024-03-15")
    bars = ohlcv(ts, 5)
    first = c.add_symbol("A", "1m", ["5m"])
    stream_all(c, "A", bars[:200])
    before = all_bars(first)
    again = c.add_symbol("A", "1m", ["5m"])
    assert again is first and first.derived_intervals == ["5m"]
    for iv, b in before.items():
        assert_bars_equal(first.bars(iv), b, iv)

    # New derived intervals are filled from the base bars already held.
    third = c.add_symbol("A", "1m", ["15m", "5m", "1h", "1d"])
    assert third is first and first.derived_intervals == ["5m", "15m", "1h", "1d"]
    assert_bars_equal(first.bars(), bars[:200], "base kept")
    stream_all(c, "A", bars[200:])
    c.processor.finish()
    for iv in ("5m", "15m", "1h", "1d"):
        assert_like_resample(first.bars(iv), sessiondata.resample(bars, iv, cal), iv)

    # A different base interval is an error, and changes nothing.
    with pytest.raises(ValueError, match="base interval"):
        c.add_symbol("A", "5m", ["15m"])
    with pytest.raises(ValueError, match="multiple"):
        c.add_symbol("A", "1m", ["90s"])
    assert sd.get_symbol_data("A") is first and first.base_interval == "1m"
    assert first.derived_intervals == ["5m", "15m", "1h", "1d"]
    assert_bars_equal(first.bars(), bars, "base after errors")
    assert sd.get_active_symbols() == ["A"]


def test_empty_session_exports_and_stops(tmp_path):
    c = SessionCoordinator(calendar("XNYS"))
    sd = c.start("2024-03-15")
    doc = sd.to_json()
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc
    assert doc["symbols"] == {} and doc["unknown_bars"] == {}
    assert doc["session"] == "2024-03-15" and doc["timezone"] == "America/New_York"
    assert c.quality.calculate_all() == 0
    summary = c.stop(export_to=tmp_path / "empty")
    assert summary.symbols == 0 and summary.bars == 0 and summary.rows == []
    assert summary.gaps == 0 and summary.missing == 0
    assert validate_export(tmp_path / "empty") == []
    assert json.loads((tmp_path / "empty" / "sessions" / "2024-03-15.json").read_text()
                      )["symbols"] == {}
    # No session at all: still valid JSON.
    assert json.loads(json.dumps(sd.to_json()))["session"] is None


def test_all_symbols_removed_mid_session(tmp_path):
    c = SessionCoordinator(calendar("XNYS"))
    sd = c.start("2024-03-15")
    ts = day_ts("XNYS", "2024-03-15")
    names = [f"S{i}" for i in range(6)]
    for i, s in enumerate(names):
        c.add_symbol(s)
        c.load(s, ohlcv(ts[:100], i))
        c.mark_loaded(s)
    for s in names:
        assert c.remove_symbol(s)
    assert c.get_active_symbols() == [] and c.get_loaded_symbols() == []
    assert sd.get_symbols_with_derived() == []
    late = ohlcv(ts[100:110], 1)
    assert c.stream_bars("S0", late) == 0
    stream_bars_one = [c.stream("S1", int(t), 1.0, 1.0, 1.0, 1.0, 1.0) for t in ts[100:103]]
    assert stream_bars_one == [-1, -1, -1]
    assert sd.unknown_bars == {"S0": 10, "S1": 3}
    assert sd.to_json()["symbols"] == {}
    summary = c.stop(export_to=tmp_path)
    assert summary.symbols == 0 and summary.rows == []
    doc = json.loads((tmp_path / "sessions" / "2024-03-15.json").read_text())
    assert doc["unknown_bars"] == {"S0": 10, "S1": 3} and doc["symbols"] == {}


def test_ten_thousand_rapid_add_remove_cycles_keep_a_consistent_registry():
    """10,000 add/remove cycles, with bars streamed and loads marked in between, against a
    plain model of the registry."""
    sd = SessionData(Calendar.always())
    sd.start_session("2024-03-15")
    o = int(sd.windows.open_ns[0])
    rng = np.random.default_rng(42)
    pool = [f"SYM{i}" for i in range(40)]
    derived_choices = [[], ["5m"], ["5m", "15m"], ["1h"], ["15m", "1d"]]
    model: dict[str, dict] = {}
    unknown: dict[str, int] = {}
    for cycle in range(10_000):
        s = pool[rng.integers(len(pool))]
        derived = derived_choices[rng.integers(len(derived_choices))]
        entry = sd.add_symbol(s, "1m", derived)
        m = model.setdefault(s, {"derived": [], "bars": 0, "loaded": False, "next": 0})
        for d in derived:
            if d not in m["derived"]:
                m["derived"].append(d)
        assert entry.derived_intervals == m["derived"]
        for _ in range(int(rng.integers(0, 3))):
            assert sd.add_bar(s, o + m["next"] * MINUTE, 1.0, 2.0, 0.5, 1.5, 3.0) == 0
            m["next"] += 1
            m["bars"] += 1
        if rng.random() < 0.3:
            sd.mark_loaded(s)
            m["loaded"] = True
        # remove one symbol (maybe the same one)
        r = pool[rng.integers(len(pool))]
        assert sd.remove_symbol(r) is (r in model)
        model.pop(r, None)
        if rng.random() < 0.1:
            assert sd.add_bar(r, o, 1.0, 1.0, 1.0, 1.0, 1.0) == -1
            unknown[r] = unknown.get(r, 0) + 1
        if cycle % 1000 == 0:
            assert sorted(sd.get_active_symbols()) == sorted(model)
    assert sorted(sd.get_active_symbols()) == sorted(model)
    assert sorted(sd.get_loaded_symbols()) == sorted(s for s, m in model.items() if m["loaded"])
    assert sorted(sd.get_symbols_with_derived()) == sorted(s for s, m in model.items()
                                                           if m["derived"])
    for s, m in model.items():
        e = sd.get_symbol_data(s)
        assert e.derived_intervals == m["derived"] == sd.get_derived_intervals(s)
        assert e.bar_count() == m["bars"] and e.is_loaded == m["loaded"]
    assert sd.unknown_bars == unknown
    doc = json.loads(json.dumps(sd.to_json()))
    assert sorted(doc["symbols"]) == sorted(model)


def test_no_duplicate_tracking_of_symbols_in_the_sources():
    """``SessionData._symbols`` is the only record: no component keeps its own."""
    forbidden = re.compile(r"\b(_active_symbols|_loaded_symbols|_streamed_data|_generated_data)"
                           r"\b|\bself\._derived_intervals\b")
    files = [p for p in SRC.rglob("*") if p.suffix in (".py", ".pyx", ".pxd", ".pyi")]
    assert any(p.name == "session.py" for p in files) and len(files) >= 8
    hits = [f"{p.relative_to(SRC)}:{i}: {line.strip()}"
            for p in files
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if forbidden.search(line)]
    assert hits == []


# --------------------------------------------------------------------------- JSON gaps/quality


@pytest.mark.parametrize("cal_name, day, runs", [
    ("XNYS", "2024-03-15", [(0, 2), (35, 3), (301, 2), (380, 10)]),   # incl. open and close
    ("XNYS", "2024-11-29", [(10, 1), (50, 30), (150, 60)]),            # early close, tail
    ("always", "2024-03-15", [(0, 30), (700, 45), (1430, 10)]),
    ("CME_GLOBEX", "2024-03-15", [(0, 5), (400, 61), (1370, 10)]),      # starts the evening before
])
def test_json_gaps_and_quality_equal_the_functional_api(tmp_path, cal_name, day, runs):
    cal = calendar(cal_name)
    ts = drop_slots(day_ts(cal_name, day), runs)
    bars = ohlcv(ts, 11)
    c = SessionCoordinator(cal, derived_intervals=["5m", "15m", "1h", "1d"])
    c.start(day)
    c.add_symbol("X")
    stream_all(c, "X", bars)
    c.mark_loaded("X")
    c.stop(export_to=tmp_path)
    doc = json.loads((tmp_path / "sessions" / f"{day}.json").read_text())
    assert doc["timezone"] == str(cal.tz.key)
    assert doc["starts_previous_day"] is (cal_name == "CME_GLOBEX")
    intervals = doc["symbols"]["X"]["intervals"]
    assert sorted(intervals) == sorted(["1m", "5m", "15m", "1h", "1d"])
    for iv, got in intervals.items():
        gaps = sessiondata.find_gaps(bars, iv, cal, base="1m")
        for g in gaps:
            assert g.start_time.tzinfo is not None and g.start_time.utcoffset() is not None
            assert str(g.start_time.tzinfo) == str(cal.tz.key)
        kinds = got["gaps"].pop("kinds")  # gap kinds (classify.py) beside the seed's fields
        assert sum(v["gap_count"] for v in kinds.values()) == len(gaps)
        for r in got["gaps"]["ranges"]:
            assert r.pop("kind") in sessiondata.classify.KINDS
            r.pop("activity"), r.pop("share_missing")
        assert got["gaps"] == {
            "gap_count": len(gaps),
            "missing_bars": sum(g.bar_count for g in gaps),
            "ranges": [g.to_dict() for g in gaps],
        }, iv
        lost = got["quality"].pop("lost")
        assert got["quality"].pop("data_quality") == round(
            100.0 * (got["quality"]["expected"] - lost) / got["quality"]["expected"], 4)
        assert got["quality"] == sessiondata.quality(bars, iv, cal, base="1m").to_dict(), iv
    base = intervals["1m"]["gaps"]
    assert base["missing_bars"] == sum(n for _, n in runs)
    assert base["gap_count"] == len(runs)


def test_json_gap_schema_times_of_day():
    """The specification's example: gaps 10:05-10:08 (3 bars) and 14:31-14:33 (2 bars)."""
    cal = calendar("XNYS")
    ts = day_ts("XNYS", "2024-03-15")
    ts = drop_slots(ts, [(35, 3), (301, 2)])
    c = SessionCoordinator(cal, derived_intervals=[])
    sd = c.start("2024-03-15")
    c.add_symbol("X")
    c.load("X", ohlcv(ts))
    c.quality.calculate_all(close_ns(sd))
    gaps = sd.to_json()["symbols"]["X"]["intervals"]["1m"]["gaps"]
    # Beside the seed's fields, the gap kinds (classify.py): quiet minutes of one symbol.
    assert gaps.pop("kinds") == {"no_trade": {"gap_count": 2, "missing_bars": 5}}
    assert [r.pop("kind") for r in gaps["ranges"]] == ["no_trade", "no_trade"]
    for r in gaps["ranges"]:
        assert set(r.pop(k) is None for k in ("share_missing",)) == {True}
        assert 0.0 <= r.pop("activity") <= 1.0
    assert gaps == {"gap_count": 2, "missing_bars": 5, "ranges": [
        {"start_time": "10:05:00", "end_time": "10:08:00", "bar_count": 3},
        {"start_time": "14:31:00", "end_time": "14:33:00", "bar_count": 2}]}
    info = sd.get_symbol_data("X").bar_gaps["1m"]
    assert [(g.end_time - g.start_time).total_seconds() for g in info] == [180.0, 120.0]
    assert info[0].start_time.hour == 10 and str(info[0].start_time.tzinfo) == "America/New_York"


def test_stop_scores_the_whole_session_when_the_feed_ends_early():
    """Without ``until_ns`` stop() counts every slot of the session: a feed that died at
    14:30 has a missing tail, not a perfect score."""
    c = SessionCoordinator(calendar("XNYS"))
    c.start("2024-03-15")
    ts = day_ts("XNYS", "2024-03-15")[:300]
    c.add_symbol("A")
    c.load("A", ohlcv(ts))
    summary = c.stop()
    rows = {r["interval"]: r for r in summary.rows}
    assert (rows["1m"]["expected"], rows["1m"]["missing"]) == (390, 90)
    assert (rows["5m"]["expected"], rows["5m"]["missing"]) == (78, 18)
    assert (rows["1h"]["expected"], rows["1h"]["missing"]) == (7, 2)
    assert rows["1m"]["quality"] == pytest.approx(100 * 300 / 390)


# ------------------------------------------------------------------------ streaming == batch


@pytest.mark.parametrize("cal_name, day, base, runs", [
    ("XNYS", "2024-03-15", "1m", [(3, 4), (100, 17), (389, 1)]),
    ("XNYS", "2024-11-29", "1m", [(0, 1), (200, 10)]),
    ("always", "2024-03-16", "1m", []),
    ("always", "2024-03-16", "30s", [(5, 200), (2000, 3)]),
    ("CME_GLOBEX", "2024-03-15", "1m", [(60, 120)]),
])
def test_streaming_bar_by_bar_equals_loading_in_one_batch(cal_name, day, base, runs):
    cal = calendar(cal_name)
    step = sessiondata.parse_interval(base).ns
    bars = ohlcv(drop_slots(day_ts(cal_name, day, step), runs), 4, base)
    derived = ["5m", "15m", "1h", "1d"]
    results = []
    for mode in ("stream", "batch"):
        c = SessionCoordinator(cal, base_interval=base, derived_intervals=derived)
        sd = c.start(day)
        c.add_symbol("X")
        if mode == "stream":
            stream_all(c, "X", bars)
        else:
            assert c.load("X", bars) == len(bars)
        c.processor.finish()
        c.quality.calculate_all(close_ns(sd))
        entry = sd.get_symbol_data("X")
        results.append((all_bars(entry), dict(entry.bar_gaps), dict(entry.quality),
                        sd.to_json()))
        c.stop()
    (b1, g1, q1, j1), (b2, g2, q2, j2) = results
    assert b1.keys() == b2.keys() == {base, *derived}
    for iv in b1:
        assert_bars_equal(b1[iv], b2[iv], iv)
    assert g1 == g2 and q1 == q2 and j1 == j2
    assert_bars_equal(b1[base], bars, "base")


_SESSION_SLOTS = {"2024-03-15": 390, "2024-11-29": 210}


@st.composite
def gappy_days(draw):
    day = draw(st.sampled_from(sorted(_SESSION_SLOTS)))
    n = _SESSION_SLOTS[day]
    runs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 80)), max_size=6))
    derived = draw(st.lists(st.sampled_from(["2m", "5m", "7m", "15m", "30m", "1h", "1d"]),
                            min_size=1, max_size=4, unique=True))
    return day, runs, derived, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=2000 if LONG else 60)
@given(gappy_days())
def test_streaming_with_random_gaps_equals_batch_resample(case):
    day, runs, derived, seed = case
    cal = calendar("XNYS")
    ts = drop_slots(day_ts("XNYS", day), runs)
    sd = SessionData(cal)
    sd.start_session(day)
    entry = sd.add_symbol("X", "1m", derived)
    bars = ohlcv(ts, seed)
    cols = [bars.ts.tolist()] + [getattr(bars, k).tolist() for k in
                                 ("open", "high", "low", "close", "volume")]
    for row in zip(*cols):
        assert sd.add_bar("X", *row) == 0
    dq = sessiondata.DataQualityManager(sd)
    sessiondata.DataProcessor(sd).finish()
    for iv in derived:
        assert_like_resample(entry.bars(iv), sessiondata.resample(bars, iv, cal, base="1m"), iv)
    if len(bars):
        for iv in ["1m"] + derived:
            report = dq._calculate_quality("X", iv, close_ns(sd))
            assert report == sessiondata.quality(bars, iv, cal, base="1m"), iv
            assert entry.bar_gaps[iv] == sessiondata.find_gaps(bars, iv, cal, base="1m"), iv


# ------------------------------------------------------------------ only closed slots count


def test_mid_session_quality_counts_only_slots_closed_by_the_clock():
    cal = calendar("XNYS")
    c = SessionCoordinator(cal, derived_intervals=["5m", "15m", "1h"])
    sd = c.start("2024-03-15")
    day = day_ts("XNYS", "2024-03-15")
    ts = drop_slots(day[:107], [(40, 3), (50, 10)])  # last bar 11:16, clock 11:17
    bars = ohlcv(ts, 3)
    c.add_symbol("X")
    stream_all(c, "X", bars)
    clock = sd.clock_ns
    assert clock == int(day[106]) + MINUTE
    # A bucket is expected once a base slot of it has closed, and counts over those slots:
    # the 11:15 5m bucket over 11:15 and 11:16, the 11:15 15m and the 10:30 1h buckets too.
    closed = {"1m": 107, "5m": 22, "15m": 8, "1h": 2}
    for iv, n in closed.items():
        report = c.quality._calculate_quality("X", iv)
        assert report.expected == n, iv                      # the future is not expected
        assert report == sessiondata.quality(bars, iv, cal, base="1m", until=clock), iv
        gaps = sd.get_symbol_data("X").bar_gaps[iv]
        assert gaps == sessiondata.find_gaps(bars, iv, cal, base="1m", until=clock), iv
        assert all(g.end_time.timestamp() * 1e9 <= clock for g in gaps)
    q = sd.get_symbol_data("X").quality
    assert (q["1m"].missing, q["5m"].missing, q["15m"].missing, q["1h"].missing) == (13, 2, 0, 0)
    assert q["5m"].partial == 1 and q["5m"].coverage_sum == pytest.approx(18 + 0.4 + 1.0)

    # Thirty silent minutes later the clock has moved: those slots are now missing.
    assert sd.advance(clock + 30 * MINUTE) >= 1
    report = c.quality._calculate_quality("X", "1m")
    assert (report.expected, report.missing) == (137, 43)
    last = sd.get_symbol_data("X").bar_gaps["1m"][-1]
    assert (last.start_time.strftime("%H:%M"), last.end_time.strftime("%H:%M"),
            last.bar_count) == ("11:17", "11:47", 30)
    # Explicit bounds and the coordinator's until_ns agree.
    assert c.quality._calculate_quality("X", "5m", clock).expected == 22
    summary = c.stop(until_ns=clock)
    assert {r["interval"]: r["expected"] for r in summary.rows} == closed


# ---------------------------------------------------------------------------------- bad input


def test_bars_for_unknown_or_removed_symbols_are_counted_never_stored():
    c = SessionCoordinator(calendar("XNYS"))
    sd = c.start("2024-03-15")
    ts = day_ts("XNYS", "2024-03-15")
    assert c.stream("NOPE", int(ts[0]), 1.0, 1.0, 1.0, 1.0, 1.0) == -1
    assert c.stream_bars("NOPE", ohlcv(ts[:5])) == 0
    c.add_symbol("GONE")
    c.load("GONE", ohlcv(ts[:5]))
    c.remove_symbol("GONE")
    assert c.stream("GONE", int(ts[5]), 1.0, 1.0, 1.0, 1.0, 1.0) == -1
    # Even a bad bar for an unknown symbol is only counted (never a crash).
    assert c.stream("GONE", int(ts[0]), math.nan, -1.0, 5.0, math.inf, -3.0) == -1
    assert sd.unknown_bars == {"NOPE": 6, "GONE": 2}
    assert c.get_active_symbols() == []
    assert sd.to_json()["unknown_bars"] == {"NOPE": 6, "GONE": 2}
    assert c.processor._process_bar_data("GONE", "1m") == 0


_GOOD = dict(open=10.0, high=11.0, low=9.0, close=10.5, volume=100.0)
# The symbol holds 09:30 .. 10:00.  Each case: (name, price overrides, ts of the bad bar given
# the session open ``o`` and the last bar held ``last``, fault).
_FAULT_CASES = [
    ("nan open", dict(open=math.nan), lambda o, last: last + MINUTE, NONFINITE),
    ("inf close", dict(close=math.inf), lambda o, last: last + MINUTE, NONFINITE),
    ("-inf low", dict(low=-math.inf), lambda o, last: last + MINUTE, NONFINITE),
    ("high below low", dict(high=8.0), lambda o, last: last + MINUTE, HIGH_LOW),
    ("low above open", dict(low=10.2), lambda o, last: last + MINUTE, HIGH_LOW),
    ("high below close", dict(high=10.4), lambda o, last: last + MINUTE, HIGH_LOW),
    ("negative volume", dict(volume=-1.0), lambda o, last: last + MINUTE, VOLUME),
    ("nan volume", dict(volume=math.nan), lambda o, last: last + MINUTE, VOLUME),
    ("at the close", {}, lambda o, last: o + 390 * MINUTE, OUTSIDE),
    ("evening", {}, lambda o, last: o + 600 * MINUTE, OUTSIDE),
    ("next session", {}, lambda o, last: o + 3 * 24 * 60 * MINUTE, OUTSIDE),
    ("off the grid", {}, lambda o, last: last + MINUTE + 30 * SECOND, MISALIGNED),
    ("out of order", {}, lambda o, last: last - 20 * MINUTE, UNSORTED),
    ("duplicated", {}, lambda o, last: last, DUPLICATE),
]
_IDS = [case[0] for case in _FAULT_CASES]


def _session_with_31_bars(on_bad):
    c = SessionCoordinator(calendar("XNYS"), on_bad=on_bad)
    sd = c.start("2024-03-15")
    c.add_symbol("ACME.L")
    o = int(sd.windows.open_ns[0])
    c.load("ACME.L", ohlcv(o + np.arange(31) * MINUTE))  # 09:30 .. 10:00
    return c, sd, o


def _one(row: dict) -> dict:
    return {k: [v] for k, v in row.items()}


@pytest.mark.parametrize("path", ["bar", "batch"])
@pytest.mark.parametrize("name, kw, when, code", _FAULT_CASES, ids=_IDS)
def test_bad_bar_raise_names_the_symbol_and_loses_nothing(name, kw, when, code, path):
    c, sd, o = _session_with_31_bars("raise")
    entry = sd.get_symbol_data("ACME.L")
    before = all_bars(entry)
    row = {**_GOOD, **kw}
    with pytest.raises(BadBarError, match="ACME.L") as info:
        if path == "bar":
            c.stream("ACME.L", when(o, o + 30 * MINUTE), *row.values())
        else:  # a good bar (10:01), then the bad one
            good_ts = o + 31 * MINUTE
            cols = {k: [_GOOD[k], row[k]] for k in _GOOD}
            c.stream_bars("ACME.L", ts=[good_ts, when(o, good_ts)], **cols)
    assert info.value.fault == code, str(info.value)
    assert FAULTS[code] in str(info.value)
    if path == "bar":
        for iv, b in before.items():
            assert_bars_equal(entry.bars(iv), b, iv)
    else:
        assert info.value.row == 1 and "row 1" in str(info.value)
        assert entry.bar_count() == 32                # the good bar before it was stored
        assert_bars_equal(entry.bars()[:31], before["1m"], "held bars")
        for iv in DERIVED:
            assert_bars_equal(entry.bars(iv), before[iv], iv)  # no bucket closed yet
    # Nothing held was lost and the stream goes on.
    assert c.stream("ACME.L", o + 50 * MINUTE, *_GOOD.values()) == 0


@pytest.mark.parametrize("path", ["bar", "batch"])
@pytest.mark.parametrize("policy", ["raise", "drop"])
def test_a_bar_before_the_first_window_is_outside(path, policy):
    c = SessionCoordinator(calendar("XNYS"), on_bad=policy)
    sd = c.start("2024-03-15")
    o = int(sd.windows.open_ns[0])
    c.add_symbol("X")
    for ts in (o - MINUTE, o - 12 * 60 * MINUTE):
        if policy == "raise":
            with pytest.raises(BadBarError, match="X") as info:
                if path == "bar":
                    c.stream("X", ts, *_GOOD.values())
                else:
                    c.stream_bars("X", ts=[ts], **_one(_GOOD))
            assert info.value.fault == OUTSIDE
        elif path == "bar":
            assert c.stream("X", ts, *_GOOD.values()) == OUTSIDE
        else:
            assert c.stream_bars("X", ts=[ts], **_one(_GOOD)) == 0
    assert sd.get_symbol_data("X").bar_count() == 0
    if policy == "drop":
        assert sd.get_symbol_data("X").rejected == {FAULTS[OUTSIDE]: 2}
    assert c.stream("X", o, *_GOOD.values()) == 0


@pytest.mark.parametrize("path", ["bar", "batch"])
def test_raise_policy_does_not_count_the_raised_bar_as_rejected(path):
    """Under ``raise`` the caller gets the error; ``rejected`` counts what the ``drop`` policy
    dropped (QualityReport, push_many).  The per-bar and the batch path must agree."""
    c, sd, o = _session_with_31_bars("raise")
    with pytest.raises(BadBarError):
        if path == "bar":
            c.stream("ACME.L", o + 30 * MINUTE, *_GOOD.values())
        else:
            c.stream_bars("ACME.L", ts=[o + 30 * MINUTE], **_one(_GOOD))
    assert sd.get_symbol_data("ACME.L").rejected == {}


@pytest.mark.parametrize("path", ["bar", "batch"])
@pytest.mark.parametrize("name, kw, when, code", _FAULT_CASES, ids=_IDS)
def test_bad_bar_drop_is_dropped_and_counted_in_the_quality_report(name, kw, when, code, path):
    c, sd, o = _session_with_31_bars("drop")
    entry = sd.get_symbol_data("ACME.L")
    before = all_bars(entry)
    row = {**_GOOD, **kw}
    ts = when(o, o + 30 * MINUTE)
    if path == "bar":
        assert c.stream("ACME.L", ts, *row.values()) == code
    else:
        assert c.stream_bars("ACME.L", ts=[ts], **_one(row)) == 0
    for iv, b in before.items():
        assert_bars_equal(entry.bars(iv), b, iv)
    assert entry.rejected == {FAULTS[code]: 1}
    assert c.stream("ACME.L", o + 50 * MINUTE, *_GOOD.values()) == 0
    c.quality.calculate_all(close_ns(sd))
    for iv in entry.intervals():
        assert entry.quality[iv].rejected == {FAULTS[code]: 1}
    doc = json.loads(json.dumps(sd.to_json()))
    sym = doc["symbols"]["ACME.L"]
    assert sym["rejected"] == {FAULTS[code]: 1}
    assert sym["intervals"]["1m"]["quality"]["rejected"] == {FAULTS[code]: 1}
    assert sym["intervals"]["1m"]["bars"] == 32


def test_drop_policy_in_a_batch_keeps_every_good_bar():
    c = SessionCoordinator(calendar("XNYS"), on_bad="drop", derived_intervals=["5m"])
    sd = c.start("2024-03-15")
    o = int(sd.windows.open_ns[0])
    bars = ohlcv(o + np.arange(20) * MINUTE)
    cols = {k: np.array(v, copy=True) for k, v in bars.columns().items()}
    cols["high"][3] = math.nan
    cols["volume"][7] = -5.0
    cols["ts"][12] = cols["ts"][11]       # duplicate
    cols["ts"][15] = o + 600 * MINUTE     # in the evening, after the close
    cols["ts"][17] = o                    # out of order
    c.add_symbol("X")
    assert c.stream_bars("X", cols) == 15
    keep = np.ones(20, bool)
    keep[[3, 7, 12, 15, 17]] = False
    assert_bars_equal(sd.get_bars("X"), Bars(*(cols[k][keep] for k in
                                               ("ts", "open", "high", "low", "close",
                                                "volume"))), "kept")
    assert sd.get_symbol_data("X").rejected == {
        FAULTS[NONFINITE]: 1, FAULTS[VOLUME]: 1, FAULTS[DUPLICATE]: 1, FAULTS[OUTSIDE]: 1,
        FAULTS[UNSORTED]: 1}


def test_bad_policy_argument_and_symbol_validation():
    with pytest.raises(ValueError, match="on_bad"):
        SessionData(on_bad="ignore")
    sd = SessionData()
    sd.start_session("2024-03-15")
    for bad in ("", " A", "A ", "A\nB", "\x00", "A\tB", "\x1b[31m", "zero\u200bwidth"):
        with pytest.raises(ValueError):
            sd.add_symbol(bad)
    with pytest.raises(TypeError):
        sd.add_symbol(42)
    with pytest.raises(ValueError):
        sd.add_symbol("A", "1d")
    assert sd.get_active_symbols() == []


# -------------------------------------------------------------------------------------- memory


@pytest.mark.parametrize("cal_name, day", [("XNYS", "2024-03-15"), ("always", "2024-03-16")])
def test_memory_allocated_stays_close_to_the_bars_held(cal_name, day, capsys):
    """After streaming a full day for many symbols, allocated / held <= 1.25."""
    c = SessionCoordinator(calendar(cal_name))
    sd = c.start(day)
    ts = day_ts(cal_name, day)
    bars = ohlcv(ts)
    n_symbols = 100
    for i in range(n_symbols):
        c.add_symbol(f"S{i:03d}")
    cols = [bars.ts.tolist()] + [getattr(bars, k).tolist() for k in
                                 ("open", "high", "low", "close", "volume")]
    add = sd.add_bar
    for row in zip(*cols):
        for i in range(n_symbols):
            add(f"S{i:03d}", *row)
    c.processor.finish()
    mem = sd.memory()
    n_derived = sum(sd.get_symbol_data(f"S{i:03d}").bar_count(iv)
                    for i in range(n_symbols) for iv in DERIVED)
    assert mem["held"] == n_symbols * len(ts) * 48 + n_derived * 64
    ratio = mem["allocated"] / mem["held"]
    with capsys.disabled():
        print(f"\n[memory] {cal_name} {day}: {n_symbols} symbols x {len(ts)} bars streamed, "
              f"derived {DERIVED}: allocated {mem['allocated']} B, held {mem['held']} B, "
              f"ratio {ratio:.3f}")
    assert ratio <= 1.25


# ------------------------------------------------------------------ the per-bar fast path

def test_the_lookup_cache_answers_only_what_the_registry_holds():
    """add_bar remembers the stream of each symbol string object it was given (a cache of
    the registry's lookups): removing the symbol, adding it again, ending and starting a
    session, or setting ``_symbols`` must never let a bar reach a stream that is no longer
    the symbol's, nor lose one."""
    cal = Calendar.always()
    sd = SessionData(cal)
    sd.start_session("2024-01-02")
    o = int(sd.windows.open_ns[0])
    minute = 60_000_000_000
    sym = "".join(["A", "B"])           # one string object, passed every time
    sd.add_symbol(sym, "1m", ["5m"])
    assert sd.add_bar(sym, o, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    first = sd.get_symbol_data(sym)
    assert sd.remove_symbol(sym)
    assert sd.add_bar(sym, o + minute, 1.0, 1.0, 1.0, 1.0, 1.0) == -1   # unknown now
    assert sd.unknown_bars == {"AB": 1}
    sd.add_symbol("AB", "1m", ["5m"])   # back, as a new entry (a different string object)
    assert sd.add_bar(sym, o + 2 * minute, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    assert sd.get_symbol_data("AB").bar_count() == 1
    assert first.bar_count() == 1       # the removed entry kept its own bar, nothing more
    sd.end_session()
    sd.start_session("2024-01-03")
    o3 = int(sd.windows.open_ns[0])
    assert sd.add_bar(sym, o3, 1.0, 1.0, 1.0, 1.0, 1.0) == -1   # a new, empty registry
    sd.add_symbol("AB")
    assert sd.add_bar(sym, o3, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    assert sd.get_symbol_data("AB").bars().ts.tolist() == [o3]
    sd._symbols = {}
    assert sd.add_bar(sym, o3 + minute, 1.0, 1.0, 1.0, 1.0, 1.0) == -1
    with pytest.raises(TypeError):
        sd._symbols = None


def test_interleaved_symbols_with_prefetch_hints_match_one_symbol_at_a_time():
    """add_bar's cache slots remember where the bar after each symbol's bar went and fetch it
    ahead (issue 21): a symbol removed mid-stream (its stream freed), added again, and
    symbols skipping slots must change nothing: every interval's bars equal those of the
    same bars fed one symbol at a time, in a repeating and in a shuffled order."""
    cal = Calendar.always()
    minute = 60_000_000_000
    names = [f"S{i:02d}" for i in range(40)]
    rng = np.random.default_rng(7)
    present = rng.random((300, len(names))) > 0.05

    def bar(i, m):
        p = 100.0 + i + 0.01 * m + (m % 7) * 0.1
        return p, p + 0.5, p - 0.5, p + 0.25, float(1 + (m * 31 + i) % 97)

    for shuffled in (False, True):
        live = SessionData(cal)
        live.start_session("2024-01-02")
        o = int(live.windows.open_ns[0])
        for s in names:
            live.add_symbol(s, "1m", ["5m", "15m", "1h"])
        fed: dict[str, list] = {s: [] for s in names}
        for m in range(300):
            order = rng.permutation(len(names)) if shuffled else range(len(names))
            for i in order:
                s = names[i]
                if m == 100 and i == 3:
                    assert live.remove_symbol(s)
                    fed[s] = []
                    gc.collect()
                if m == 150 and i == 3:
                    live.add_symbol(s, "1m", ["5m", "15m", "1h"])
                if not present[m, i] or (i == 3 and 100 <= m < 150):
                    continue
                row = (o + m * minute, *bar(i, m))
                assert live.add_bar(s, *row) == 0
                fed[s].append(row)
        live.advance(o + 300 * minute)
        one = SessionData(cal)
        one.start_session("2024-01-02")
        for s in names:
            one.add_symbol(s, "1m", ["5m", "15m", "1h"])
            for row in fed[s]:
                assert one.add_bar(s, *row) == 0
        one.advance(o + 300 * minute)
        for s in names:
            for interval in (None, "5m", "15m", "1h"):
                a = live.get_symbol_data(s).bars(interval)
                b = one.get_symbol_data(s).bars(interval)
                for col in ("ts", "open", "high", "low", "close", "volume"):
                    assert np.array_equal(getattr(a, col), getattr(b, col)), (s, interval, col)


def test_many_symbols_and_new_string_objects_every_bar_land_where_they_belong():
    """Hundreds of symbols (the cache grows and is emptied when it fills), the symbols
    passed as new string objects every bar, and as a str subclass: every bar goes to its
    symbol, bit for bit."""
    cal = Calendar.always()
    sd = SessionData(cal)
    sd.start_session("2024-01-02")
    o = int(sd.windows.open_ns[0])
    minute = 60_000_000_000
    names = [f"S{i:03d}" for i in range(300)]
    for s in names:
        sd.add_symbol(s)

    class Sym(str):
        pass

    for m in range(12):
        for i, s in enumerate(names):
            key = s if m % 3 == 0 else ("".join(list(s)) if m % 3 == 1 else Sym(s))
            assert sd.add_bar(key, o + m * minute, 100.0 + i, 100.0 + i, 100.0 + i,
                              100.0 + i, float(m)) == 0
    for i, s in enumerate(names):
        bars = sd.get_symbol_data(s).bars()
        assert bars.ts.tolist() == [o + m * minute for m in range(12)]
        assert bars.close.tolist() == [100.0 + i] * 12
        assert bars.volume.tolist() == [float(m) for m in range(12)]


@pytest.mark.parametrize("ts", [0, 1, -1, 2**30 - 1, 2**30, 2**60 - 1, 2**60, 2**63 - 1,
                                -(2**63), -(2**60) - 5, np.int64(7), True])
def test_timestamps_at_the_digit_edges_convert_exactly(ts):
    """The per-bar path reads Python ints of up to three 30-bit digits itself: every int64
    value gets the fault the batch path (NumPy's conversion) gives it; none of these lies in
    the session (INT64_MIN, the stream's no-bar marker, included)."""
    faults = []
    for batch in (False, True):
        sd = SessionData(Calendar.always(), on_bad="drop")
        sd.start_session("2024-01-02")
        sd.add_symbol("X", "1s")
        if batch:
            one = np.ones(1)
            sd.add_bars("X", ts=np.array([int(ts)], dtype=np.int64), open=one, high=one,
                        low=one, close=one, volume=one)
        else:
            sd.add_bar("X", ts, 1.0, 1.0, 1.0, 1.0, 1.0)
        entry = sd.get_symbol_data("X")
        assert entry.bar_count() == 0
        faults.append(entry.rejected)
    assert faults[0] == faults[1]
    assert sum(faults[0].values()) == 1


def test_session_bars_read_by_the_fast_path_are_stored_exactly():
    one = 1.0
    ts = int(np.datetime64("2024-01-02T00:00", "ns").astype(np.int64))
    sd = SessionData(Calendar.always())
    sd.start_session("2024-01-02")
    sd.add_symbol("X", "1m")
    for k in (0, 1, 1439):
        assert sd.add_bar("X", ts + k * 60_000_000_000, one, one, one, one, one) == 0
    assert sd.get_symbol_data("X").bars().ts.tolist() == [
        ts + k * 60_000_000_000 for k in (0, 1, 1439)]


@pytest.mark.parametrize("ts", [2**63, -(2**63) - 1, 2**64, 2**90])
def test_timestamps_outside_int64_are_refused_by_name(ts):
    sd = SessionData(Calendar.always())
    sd.start_session("2024-01-02")
    sd.add_symbol("X", "1s")
    with pytest.raises(ValueError, match="X: ts .* outside the int64"):
        sd.add_bar("X", ts, 1.0, 1.0, 1.0, 1.0, 1.0)
