"""Hostile inputs: a catalogue of bad data, each case its own test.

Bad data is the normal case in market data, and a backtest that silently loses bars is worse
than one that stops.  Every case here asserts either a clear error (the right exception type,
with a message that names what was wrong and where: row, line, file, symbol) or a documented
handling (a UTF-8 BOM is read fine, a dropped bar is counted).  Registry cases also check that
nothing already held is lost.  Never a crash: the compiled kernels are called directly with
wrong shapes, dtypes and values in a forked child, so a segfault or a floating-point trap is
reported as a failure of that one case instead of killing the test run.

Areas: kernels (``sessiondata._core``), the functional API (``Bars``, ``resample``,
``find_gaps``, ``quality``) on real calendars, the readers (CSV, Parquet, DataFrames) and the
registry (``SessionData`` / ``SessionCoordinator``).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import pickle
import re
import signal
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sessiondata import (
    BadBarError,
    Bars,
    Calendar,
    SessionCoordinator,
    find_gaps,
    quality,
    resample,
)
from sessiondata._core import aggregation, gaps, quality as kquality, stream, validation
from sessiondata.export import read_dataset, validate_export
from sessiondata.job import run
from sessiondata.readers import ReadError, ReadWarning, read_csv, read_frame, read_parquet

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
I64_MAX = np.iinfo(np.int64).max
COLS = ("ts", "open", "high", "low", "close", "volume")
PRICES = COLS[1:]


@functools.lru_cache(maxsize=None)
def cal(code: str) -> Calendar:
    return Calendar.exchange(code)


@functools.lru_cache(maxsize=None)
def ny_24_7() -> Calendar:
    """Every day 00:00-24:00 in New York: 23 hours in March, 25 in November."""
    return Calendar.weekly("America/New_York", "00:00", "24:00", "Mon-Sun")


@functools.lru_cache(maxsize=None)
def chicago_overnight() -> Calendar:
    """Sessions that open at 17:00 the evening before and close at 16:00."""
    return Calendar.weekly("America/Chicago", "17:00", "16:00")


def ns(text: str, tz: str = "UTC") -> int:
    return int(pd.Timestamp(text, tz=tz).value)


def flat(ts, **kw) -> Bars:
    """Bars at ``ts`` with every price 1.0 and volume 1.0."""
    ts = np.asarray(ts, dtype=np.int64)
    one = np.ones(len(ts))
    return Bars.from_arrays(ts, one, one, one, one, one, **kw)


def columns(n: int = 5, start: int | None = None) -> dict[str, np.ndarray]:
    """Sound 1m bars as a dict of columns."""
    start = T0 if start is None else start
    ts = start + MINUTE * np.arange(n, dtype=np.int64)
    base = 1.0 + 0.01 * np.arange(n)
    return {"ts": ts, "open": base.copy(), "high": base + 0.5, "low": base - 0.5,
            "close": base.copy(), "volume": np.full(n, 10.0)}


def session_minutes(calendar: Calendar, day: str) -> np.ndarray:
    """Every 1m slot start of a session's windows (a complete day of bars)."""
    w = calendar.session_windows(day)
    return np.concatenate([np.arange(o, c, MINUTE, dtype=np.int64)
                           for o, c in zip(w.open_ns.tolist(), w.close_ns.tolist())])


def local_hhmm(ts_ns, tz: str) -> list[str]:
    return [pd.Timestamp(int(t), tz="UTC").tz_convert(tz).strftime("%H:%M") for t in ts_ns]


T0 = ns("2024-01-02 10:00")
DAY = "2024-01-02"


# ------------------------------------------------------------------------------------------
# Crash isolation for the kernels
# ------------------------------------------------------------------------------------------


def in_child(func):
    """Run ``func`` in a forked child; return ("ok", repr), ("raised", type, message) or
    ("signal", name) when the child died of a signal (a crash)."""
    if not hasattr(os, "fork"):  # pragma: no cover - Windows
        pytest.skip("crash isolation needs os.fork")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            try:
                out = ("ok", repr(func())[:500])
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                out = ("raised", type(exc).__name__, str(exc)[:500])
            os.write(w, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return ("signal", signal.Signals(os.WTERMSIG(status)).name)
    return pickle.loads(data)


def assert_kernel_raises(func, exc_type: str, pattern: str):
    """The kernel call raises ``exc_type`` with a message matching ``pattern`` (no crash, no
    silent result)."""
    got = in_child(func)
    assert got[0] != "signal", f"the kernel crashed the interpreter ({got[1]})"
    assert got[0] == "raised", f"no error, the kernel returned {got[1]}"
    assert got[1] == exc_type and re.search(pattern, got[2]), got


def i64(*v):
    return np.array(v, dtype=np.int64)


TS5 = T0 + MINUTE * np.arange(5, dtype=np.int64)
ONE5 = np.ones(5)
E_I64 = np.empty(0, np.int64)
E_U8 = np.empty(0, np.uint8)
W_OPEN, W_CLOSE = i64(T0), i64(T0 + 10 * MINUTE)


def _outs(n, short_col=None):
    out = [np.empty(n, np.int64)] + [np.empty(n) for _ in range(5)]
    out += [np.empty(n, np.int64), np.empty(n)]
    if short_col is not None:
        out[short_col] = np.empty(1, out[short_col].dtype)
    return out


def _validate(ts=TS5, o=ONE5, w_open=E_I64, w_close=E_I64, base=0, faults=E_U8):
    return validation.validate_bars(ts, o, ONE5, ONE5, ONE5, ONE5, w_open, w_close, base,
                                    faults, True)


_ro_faults = np.zeros(5, np.uint8)
_ro_faults.flags.writeable = False

KERNEL_CASES = {
    # validate_bars: wrong dtypes and layouts
    "validate-ts-int32": (lambda: _validate(ts=TS5.astype(np.int32)),
                          "ValueError", r"dtype mismatch.*i64"),
    "validate-ts-float": (lambda: _validate(ts=TS5.astype(np.float64)),
                          "ValueError", r"dtype mismatch.*i64.*double"),
    "validate-open-object": (lambda: _validate(o=ONE5.astype(object)),
                             "ValueError", r"dtype mismatch.*f64.*object"),
    "validate-open-complex": (lambda: _validate(o=ONE5.astype(complex)),
                              "ValueError", r"dtype mismatch"),
    "validate-open-strings": (lambda: _validate(o=np.array(["1"] * 5)),
                              "ValueError", r"dtype"),
    "validate-non-contiguous": (lambda: _validate(o=np.ones(10)[::2]),
                                "ValueError", r"not C-contiguous"),
    "validate-2d-ts": (lambda: _validate(ts=TS5.reshape(5, 1)),
                       "ValueError", r"wrong number of dimensions"),
    "validate-read-only-faults": (lambda: _validate(faults=_ro_faults),
                                  "ValueError", r"read-only"),
    "validate-faults-too-short": (lambda: _validate(faults=np.zeros(3, np.uint8)),
                                  "ValueError", r"faults has 3 slots for 5 bars"),
    # a price column shorter than ts: the kernel must not read past its end
    "validate-open-shorter-than-ts": (lambda: _validate(o=ONE5[:3]),
                                      "ValueError", r"(?i)length|rows|differ"),
    "validate-windows-differ-in-length": (
        lambda: _validate(w_open=W_OPEN, w_close=E_I64, base=MINUTE),
        "ValueError", r"(?i)length|differ|match"),
    # gaps
    "gaps-outputs-differ": (
        lambda: gaps.find_gaps_slots(TS5, W_OPEN, W_CLOSE, MINUTE, I64_MAX,
                                     np.empty(4, np.int64), np.empty(0, np.int64)),
        "ValueError", r"out_start and out_count differ"),
    "gaps-windows-differ-in-length": (
        lambda: gaps.find_gaps_slots(TS5, W_OPEN, E_I64, MINUTE, I64_MAX,
                                     np.empty(8, np.int64), np.empty(8, np.int64)),
        "ValueError", r"(?i)length|differ|match"),
    "gaps-ts-float": (
        lambda: gaps.find_gaps_slots(TS5.astype(float), W_OPEN, W_CLOSE, MINUTE, I64_MAX,
                                     np.empty(8, np.int64), np.empty(8, np.int64)),
        "ValueError", r"dtype mismatch"),
    # quality
    "quality-coverage-length": (
        lambda: kquality.score_quality(TS5, np.ones(3), W_OPEN, W_CLOSE, MINUTE, I64_MAX),
        "ValueError", r"coverage has 3 values for 5 bars"),
    "quality-windows-differ-in-length": (
        lambda: kquality.score_quality(TS5, np.empty(0), W_OPEN, E_I64, MINUTE, I64_MAX),
        "ValueError", r"(?i)length|differ|match"),
    # a zero-length window on a session grid (step 0): a division by zero in C
    "quality-empty-window-session-step": (
        lambda: kquality.score_quality(TS5, np.empty(0), W_OPEN, W_OPEN.copy(), 0, I64_MAX),
        "ValueError", r"(?i)window|empty|close"),
    "quality-groups-outputs-short": (
        lambda: kquality.score_groups(TS5, np.empty(0), W_OPEN, E_I64, np.empty(1),
                                      np.empty(1, np.int64)),
        "ValueError", r"outputs are shorter than the groups"),
    # aggregation
    "aggregate-base-ns-zero": (
        lambda: aggregation.aggregate_bars(TS5, ONE5, ONE5, ONE5, ONE5, ONE5, W_OPEN, W_CLOSE,
                                           i64(10), 5 * MINUTE, 0, *_outs(5)),
        "ValueError", r"(?i)base"),
    "aggregate-open-shorter-than-ts": (
        lambda: aggregation.aggregate_bars(TS5, ONE5[:2], ONE5, ONE5, ONE5, ONE5, W_OPEN,
                                           W_CLOSE, i64(10), 5 * MINUTE, MINUTE, *_outs(5)),
        "ValueError", r"(?i)length|rows|differ"),
    "aggregate-output-columns-differ": (
        lambda: aggregation.aggregate_bars(TS5, ONE5, ONE5, ONE5, ONE5, ONE5, W_OPEN, W_CLOSE,
                                           i64(10), MINUTE, MINUTE, *_outs(5, short_col=3)),
        "ValueError", r"(?i)length|differ|short"),
    "aggregate-base-slots-missing": (
        lambda: aggregation.aggregate_bars(TS5, ONE5, ONE5, ONE5, ONE5, ONE5, W_OPEN, W_CLOSE,
                                           E_I64, 5 * MINUTE, MINUTE, *_outs(5)),
        "ValueError", r"(?i)length|differ|match"),
    "aggregator-base-ns-zero": (
        lambda: aggregation.Aggregator(W_OPEN, W_CLOSE, i64(10), 5 * MINUTE, 0),
        "ValueError", r"bad grid steps: step_ns=300000000000, base_ns=0"),
    "aggregator-grid-arrays-differ": (
        lambda: aggregation.Aggregator(W_OPEN, E_I64, i64(10), 5 * MINUTE, MINUTE),
        "ValueError", r"grid arrays differ in length"),
    "aggregator-columns-differ": (
        lambda: aggregation.Aggregator(W_OPEN, W_CLOSE, i64(10), 5 * MINUTE, MINUTE)
        .update_many(TS5, ONE5[:2], ONE5, ONE5, ONE5, ONE5),
        "ValueError", r"columns differ in length"),
    # the per-symbol stream
    "stream-base-ns-zero": (lambda: stream.SymbolStream(W_OPEN, W_CLOSE, 0),
                            "ValueError", r"base_ns must be positive, got 0"),
    "stream-base-ns-negative": (lambda: stream.SymbolStream(W_OPEN, W_CLOSE, -MINUTE),
                                "ValueError", r"base_ns must be positive"),
    "stream-windows-differ": (lambda: stream.SymbolStream(i64(T0, T0), W_CLOSE, MINUTE),
                              "ValueError", r"session windows"),
    "stream-push-many-columns-differ": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE)
        .push_many(TS5, ONE5, ONE5, ONE5[:2], ONE5, ONE5),
        "ValueError", r"columns differ in length"),
    "stream-push-many-string-volume": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE)
        .push_many(TS5, ONE5, ONE5, ONE5, ONE5, np.array(["a"] * 5)),
        "ValueError", r"could not convert string to float"),
    # float timestamps with a fraction of a nanosecond: truncated without a word
    "stream-push-many-float-ts": (
        lambda: stream.SymbolStream(i64(0), i64(10 * SECOND), SECOND)
        .push_many(np.arange(5) * float(SECOND) + 0.5, ONE5, ONE5, ONE5, ONE5, ONE5),
        "TypeError", r"ts"),
    "stream-push-string-ts": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE).push("x", 1, 1, 1, 1, 1),
        "TypeError", r"integer is required"),
    "stream-push-ts-beyond-int64": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE).push(2**63, 1, 1, 1, 1, 1),
        "OverflowError", r"too large"),
    "stream-push-complex-price": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE).push(T0, 1j, 1, 1, 1, 1),
        "TypeError", r"complex"),
    "stream-bars-unknown-interval": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE).bars(5),
        "IndexError", r"no derived interval 5"),
    "stream-count-rejected-unknown-fault": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE).count_rejected(99),
        "ValueError", r"unknown fault code 99"),
    "stream-add-derived-arrays-differ": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE)
        .add_derived(W_OPEN, E_I64, i64(10), 5 * MINUTE),
        "ValueError", r"matching arrays"),
    "stream-add-derived-not-a-multiple": (
        lambda: stream.SymbolStream(W_OPEN, W_CLOSE, MINUTE)
        .add_derived(W_OPEN, W_CLOSE, i64(10), 90 * SECOND),
        "ValueError", r"not a whole multiple of the base"),
}


@pytest.mark.parametrize("case", list(KERNEL_CASES))
def test_kernel_rejects_bad_arguments_without_crashing(case):
    func, exc_type, pattern = KERNEL_CASES[case]
    assert_kernel_raises(func, exc_type, pattern)


def test_kernel_accepts_read_only_inputs():
    """Bars hand the kernels read-only views: they must be accepted as they are."""
    ts, o = TS5.copy(), ONE5.copy()
    ts.flags.writeable = o.flags.writeable = False
    got = in_child(lambda: validation.validate_bars(ts, o, o, o, o, o, W_OPEN, W_CLOSE,
                                                    MINUTE, E_U8, True))
    assert got == ("ok", repr((-1, [0] * len(validation.FAULTS) + [0])))


# ------------------------------------------------------------------------------------------
# The functional API: Bars.from_arrays
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [object, str, complex, bool, np.float64],
                         ids=["object", "str", "complex", "bool", "float"])
def test_bars_reject_timestamps_of_a_wrong_dtype(dtype):
    with pytest.raises(TypeError, match=r"ts must be int64 nanoseconds or datetime64, got "):
        Bars.from_arrays(TS5.astype(dtype), ONE5, ONE5, ONE5, ONE5, ONE5)


@pytest.mark.parametrize("column,dtype", [("open", object), ("high", str), ("low", complex),
                                          ("close", bool), ("volume", bool)],
                         ids=["open-object", "high-str", "low-complex", "close-bool",
                              "volume-bool"])
def test_bars_reject_price_columns_of_a_wrong_dtype(column, dtype):
    cols = columns()
    cols[column] = cols[column].astype(dtype)
    with pytest.raises(TypeError, match=rf"^{column} must be numeric, got "):
        Bars.from_arrays(*(cols[c] for c in COLS))


def test_bars_accept_non_contiguous_and_read_only_columns():
    cols = columns()
    strided = {k: np.repeat(v, 2)[::2] for k, v in cols.items()}
    assert not strided["open"].flags.c_contiguous
    for v in strided.values():
        v.flags.writeable = False
    bars = Bars.from_arrays(*(strided[c] for c in COLS))
    assert bars.equals(Bars.from_arrays(*(cols[c] for c in COLS)))
    assert bars.open.flags.c_contiguous


@pytest.mark.parametrize("order,row,what", [
    ([0, 2, 1, 3, 4], 2, "timestamp out of order"),
    ([0, 1, 1, 3, 4], 2, "duplicate timestamp"),
], ids=["unsorted", "duplicated"])
def test_bars_name_the_row_of_an_unsorted_or_duplicated_timestamp(order, row, what):
    cols = columns()
    cols["ts"] = cols["ts"][order]
    with pytest.raises(BadBarError, match=rf"^row {row}: {what} \(ts=") as info:
        Bars.from_arrays(*(cols[c] for c in COLS))
    assert info.value.row == row


@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_bars_reject_non_finite_prices_naming_row_and_value(column, value):
    cols = columns()
    cols[column][2] = value
    with pytest.raises(BadBarError, match=r"^row 2: non-finite price") as info:
        Bars.from_arrays(*(cols[c] for c in COLS))
    assert re.search(rf"\b{column}=\S*{re.escape(repr(float(value)))}", str(info.value))


@pytest.mark.parametrize("column,value,what", [
    ("high", 0.1, "high/low inconsistent with open/close"),     # high below low
    ("low", 5.0, "high/low inconsistent with open/close"),      # low above open
    ("volume", -1.0, "negative or non-finite volume"),
    ("volume", np.nan, "negative or non-finite volume"),
    ("volume", np.inf, "negative or non-finite volume"),
], ids=["high-below-low", "low-above-open", "negative-volume", "nan-volume",
        "infinite-volume"])
def test_bars_reject_impossible_bars(column, value, what):
    cols = columns()
    cols[column][2] = value
    with pytest.raises(BadBarError, match=rf"^row 2: ({what})"):
        Bars.from_arrays(*(cols[c] for c in COLS))


def test_bars_column_length_mismatch_names_the_column():
    cols = columns()
    cols["close"] = cols["close"][:3]
    with pytest.raises(ValueError, match=r"column 'close' has 3 rows, ts has 5"):
        Bars.from_arrays(*(cols[c] for c in COLS))


def test_bars_timestamps_beyond_int64_are_refused():
    ts = np.full(5, 2**63 + 5, dtype=np.uint64)
    with pytest.raises(ValueError, match=r"ts does not fit int64 nanoseconds"):
        Bars.from_arrays(ts, ONE5, ONE5, ONE5, ONE5, ONE5)


def test_empty_bars_have_no_gaps_and_a_full_score():
    bars = flat([], interval="1m")
    assert len(bars) == 0
    assert find_gaps(bars) == []
    report = quality(bars)
    assert (report.expected, report.present, report.score) == (0, 0, 100.0)
    assert len(resample(bars, "5m")) == 0


def test_single_bar_needs_its_interval_and_then_works():
    bars = flat([T0])
    with pytest.raises(ValueError, match=r"fewer than two bars.*pass base="):
        resample(bars, "5m")
    with pytest.raises(ValueError, match=r"find_gaps on fewer than two bars needs interval="):
        find_gaps(bars)
    out = resample(bars, "5m", base="1m")
    assert out.count.tolist() == [1] and out.coverage.tolist() == [0.2]
    assert quality(bars, "1m").present == 1


@pytest.mark.parametrize("year", ["1900", "2200"])
def test_far_past_and_future_work_on_an_unbounded_calendar(year):
    bars = flat(ns(f"{year}-01-02 10:00") + MINUTE * np.arange(5), interval="1m")
    out = resample(bars, "5m")
    assert out.count.tolist() == [5]
    assert quality(bars).present == 5


@pytest.mark.parametrize("year", ["1900", "2200"])
def test_far_past_and_future_widen_an_exchange_schedule(year):
    # Issue 10 changed this on purpose: an exchange calendar builds its schedule over the
    # range the data needs (it used to stop ~20 years back and a year ahead).
    bars = flat(ns(f"{year}-01-02 15:00") + MINUTE * np.arange(5), interval="1m")
    out = resample(bars, "5m", cal("XNYS"))
    assert out.count.tolist() == [5]


@pytest.mark.parametrize("start", [-(2**63) + 1, I64_MAX - 10 * MINUTE],
                         ids=["int64-min", "int64-max"])
@pytest.mark.parametrize("call", ["resample", "find_gaps", "quality"])
def test_timestamps_near_the_int64_limits_are_refused_clearly(start, call):
    bars = flat(start + MINUTE * np.arange(5), interval="1m")
    func = {"resample": lambda: resample(bars, "5m"), "find_gaps": lambda: find_gaps(bars),
            "quality": lambda: quality(bars)}[call]
    with pytest.raises(ValueError, match=r"session dates must lie in the years 1678\.\.2261"):
        func()


@pytest.mark.parametrize("call", ["resample", "resample-1d", "find_gaps", "quality"])
def test_bar_outside_every_session_names_row_and_calendar(call):
    # a Saturday bar among Friday's
    ts = np.r_[ns("2024-01-05 15:00") + MINUTE * np.arange(3), ns("2024-01-06 15:00")]
    bars = flat(ts, interval="1m")
    func = {"resample": lambda: resample(bars, "5m", cal("XNYS")),
            "resample-1d": lambda: resample(bars, "1d", cal("XNYS")),
            "find_gaps": lambda: find_gaps(bars, calendar=cal("XNYS")),
            "quality": lambda: quality(bars, calendar=cal("XNYS"))}[call]
    with pytest.raises(BadBarError, match=r"on calendar XNYS: row 3: outside every session "
                                          r"window \(ts=2024-01-06T15:00"):
        func()


@pytest.mark.parametrize("day,hours", [("2024-03-10", 23), ("2024-11-03", 25)],
                         ids=["march-23h", "november-25h"])
def test_24_7_new_york_across_daylight_saving_changes(day, hours):
    calendar = ny_24_7()
    ts = session_minutes(calendar, day)
    assert len(ts) == hours * 60
    bars = flat(ts, interval="1m")
    hourly = resample(bars, "1h", calendar)
    assert hourly.count.tolist() == [60] * hours
    local = local_hhmm(hourly.ts[:4], "America/New_York")
    assert local == (["00:00", "01:00", "03:00", "04:00"] if hours == 23
                     else ["00:00", "01:00", "01:00", "02:00"])
    daily = resample(bars, "1d", calendar)
    assert daily.count.tolist() == [hours * 60] and daily.coverage.tolist() == [1.0]
    report = quality(bars, calendar=calendar)
    assert (report.expected, report.score) == (hours * 60, 100.0)
    assert find_gaps(bars, calendar=calendar) == []
    # two bars missing in the doubled or skipped hour: one gap of two bars, local times
    holes = flat(np.delete(ts, [100, 101]), interval="1m")
    (gap,) = find_gaps(holes, calendar=calendar)
    assert gap.to_dict() == {"start_time": "01:40:00", "end_time": "01:42:00", "bar_count": 2}


@pytest.mark.parametrize("month,bad", [("03", "2024-03-11 13:00"), ("11", "2024-11-04 14:00")],
                         ids=["march", "november"])
def test_xnys_across_daylight_saving_changes(month, bad):
    calendar = cal("XNYS")
    before = "2024-03-08" if month == "03" else "2024-11-01"
    after = "2024-03-11" if month == "03" else "2024-11-04"
    ts = np.r_[session_minutes(calendar, before), session_minutes(calendar, after)]
    bars = flat(ts, interval="1m")
    assert resample(bars, "1d", calendar).count.tolist() == [390, 390]
    assert find_gaps(bars, calendar=calendar) == []
    # 09:00 local on the Monday after the change: before the open, outside every window
    with pytest.raises(BadBarError, match=rf"row 1: outside every session window "
                                          rf"\(ts={bad.replace(' ', 'T')}"):
        resample(flat([ts[0], ns(bad)], interval="1m"), "5m", calendar)


def test_xnys_half_day():
    calendar = cal("XNYS")
    ts = session_minutes(calendar, "2024-11-29")
    assert len(ts) == 210                        # 09:30-13:00
    bars = flat(ts, interval="1m")
    assert resample(bars, "1h", calendar).count.tolist() == [60, 60, 60, 30]
    assert quality(bars, calendar=calendar).score == 100.0
    late = flat(np.r_[ts, ns("2024-11-29 13:00", "America/New_York")], interval="1m")
    with pytest.raises(BadBarError, match=r"row 210: outside every session window"):
        resample(late, "5m", calendar)


@pytest.mark.parametrize("call", ["resample", "resample-1d", "find_gaps", "quality"])
def test_xhkg_bar_inside_the_lunch_break_is_outside_every_window(call):
    calendar = cal("XHKG")
    ts = session_minutes(calendar, "2024-03-12")
    full = flat(ts, interval="1m")
    assert resample(full, "1h", calendar).count.tolist() == [60, 60, 30, 60, 60, 60]
    assert find_gaps(full, calendar=calendar) == []
    lunch = flat(np.r_[ts[:3], ns("2024-03-12 12:30", "Asia/Hong_Kong")], interval="1m")
    func = {"resample": lambda: resample(lunch, "5m", calendar),
            "resample-1d": lambda: resample(lunch, "1d", calendar),
            "find_gaps": lambda: find_gaps(lunch, calendar=calendar),
            "quality": lambda: quality(lunch, calendar=calendar)}[call]
    with pytest.raises(BadBarError, match=r"XHKG: row 3: outside every session window "
                                          r"\(ts=2024-03-12T04:30"):
        func()


def test_cme_globex_session_crosses_midnight():
    calendar = cal("CME_GLOBEX")
    ts = session_minutes(calendar, "2024-03-12")
    assert local_hhmm(ts[:1], "America/Chicago") == ["17:00"]      # the evening before
    bars = flat(ts, interval="1m")
    daily = resample(bars, "1d", calendar)
    assert daily.count.tolist() == [23 * 60] and int(daily.ts[0]) == int(ts[0])
    assert find_gaps(bars, calendar=calendar) == []
    pause = flat(np.r_[ts[-2:], ns("2024-03-12 16:30", "America/Chicago")], interval="1m")
    with pytest.raises(BadBarError, match=r"CME_GLOBEX: row 2: outside every session window"):
        resample(pause, "5m", calendar)


def test_weekly_overnight_calendar_gap_across_midnight():
    calendar = chicago_overnight()
    ts = session_minutes(calendar, "2024-03-12")
    bars = flat(np.delete(ts, np.arange(400, 430)), interval="1m")
    (gap,) = find_gaps(bars, calendar=calendar)
    assert gap.to_dict() == {"start_time": "23:40:00", "end_time": "00:10:00", "bar_count": 30}
    saturday = flat([ns("2024-03-09 12:00", "America/Chicago")], interval="1m")
    with pytest.raises(BadBarError, match=r"row 0: outside every session window"):
        resample(saturday, "5m", calendar)


@pytest.mark.parametrize("call", ["resample", "find_gaps", "quality"])
def test_interval_that_is_not_a_multiple_of_the_base(call):
    bars = flat(TS5, interval="1m")
    func = {"resample": resample, "find_gaps": find_gaps, "quality": quality}[call]
    with pytest.raises(ValueError, match=r"interval '90s' is not a whole multiple of the base "
                                         r"interval '1m'"):
        func(bars, "90s")


@pytest.mark.parametrize("interval,exc,pattern", [
    ("7x", ValueError, r"interval '7x' is not understood"),
    ("0m", ValueError, r"interval '0m' must be positive"),
    ("2d", ValueError, r"interval '2d': only '1d'"),
    (5, TypeError, r"interval must be a string such as '5m', got int"),
], ids=["unit", "zero", "two-days", "int"])
def test_malformed_interval(interval, exc, pattern):
    with pytest.raises(exc, match=pattern):
        resample(flat(TS5, interval="1m"), interval)


@pytest.mark.parametrize("code,exc,pattern", [
    ("XXXX", ValueError, r"unknown calendar code 'XXXX'; known codes include"),
    ("", ValueError, r"unknown calendar code ''"),
    (None, TypeError, r"code must be a str, got NoneType"),
], ids=["unknown", "empty", "none"])
def test_unknown_calendar_code(code, exc, pattern):
    with pytest.raises(exc, match=pattern):
        Calendar.exchange(code)


def test_calendar_given_as_a_code_string_is_a_type_error():
    """``calendar=`` takes a Calendar; a code string must not fail deep inside the library."""
    with pytest.raises(TypeError, match=r"calendar"):
        resample(flat(TS5, interval="1m"), "5m", calendar="XNYS")


# ------------------------------------------------------------------------------------------
# Readers: CSV
# ------------------------------------------------------------------------------------------

HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = [
    "2024-01-02 10:00:00,1.0,1.5,0.5,1.2,10\n",
    "2024-01-02 10:01:00,1.2,1.6,1.1,1.3,11\n",
    "2024-01-02 10:02:00,1.3,1.4,1.0,1.1,12\n",
    "2024-01-02 10:03:00,1.1,1.2,1.0,1.1,13\n",
    "2024-01-02 10:04:00,1.1,1.3,1.0,1.2,14\n",
]
GOOD = HEADER + "".join(ROWS)
BAD_ROW3 = "2024-01-02 10:02:00,{open},{high},{low},1.1,{volume}\n"


def with_row3(**fields) -> str:
    values = {"open": "1.3", "high": "1.4", "low": "1.0", "volume": "12"}
    values.update(fields)
    return HEADER + "".join(ROWS[:2]) + BAD_ROW3.format(**values) + "".join(ROWS[3:])


def write(tmp_path, name, data) -> os.PathLike:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


@functools.lru_cache(maxsize=1)
def good_bars() -> Bars:
    """The bars of GOOD, read from a plain comma-separated file."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "X.csv"
        path.write_text(GOOD)
        return read_csv(path).bars["X"]


def csv_error(tmp_path, name, text, **options) -> ReadError:
    path = write(tmp_path, name, text)
    with pytest.raises(ReadError) as info:
        read_csv(path, **options)
    assert info.value.path == str(path)
    return info.value


def test_csv_truncated_mid_line(tmp_path):
    text = HEADER + "".join(ROWS[:4]) + "2024-01-02 10:04:00,1.1,1."
    err = csv_error(tmp_path, "X.csv", text)
    assert err.line == 6
    assert re.search(r"X\.csv, line 6: 3 fields, the header has 6 \(a truncated line\?\)",
                     str(err))


def test_csv_truncated_line_under_drop_is_counted(tmp_path):
    text = HEADER + "".join(ROWS[:2]) + "2024-01-02 10:02:00,1.3\n" + "".join(ROWS[3:])
    result = read_csv(write(tmp_path, "X.csv", text), on_bad="drop")
    assert len(result.bars["X"]) == 4
    assert result.dropped == {"wrong field count": 1}


@pytest.mark.parametrize("header,pattern", [
    # Volume is optional since issue 10: a missing price is the error (low, here).
    ("timestamp,open,high,lo,close\n", r"missing column 'low' \(columns: 'timestamp', "),
    ("open,high,low,close,volume\n", r"no timestamp column"),
], ids=["low", "timestamp"])
def test_csv_missing_column(tmp_path, header, pattern):
    body = "".join(r.rsplit(",", 1)[0] + "\n" for r in ROWS) if "volume" not in header else \
        "".join(r.split(",", 1)[1] for r in ROWS)
    err = csv_error(tmp_path, "X.csv", header + body)
    assert err.line is None and re.search(pattern, str(err))


@pytest.mark.parametrize("fields,pattern", [
    ({"open": "1.2.3"}, r"line 4: bad number '1\.2\.3' in column 'open'"),
    ({"high": "abc"}, r"line 4: bad number 'abc' in column 'high'"),
    ({"low": ""}, r"line 4: missing field 'low' \(empty\)"),
    ({"high": "1.4\x00"}, r"line 4: bad number '1\.4\\x00' in column 'high'"),
], ids=["1.2.3", "abc", "empty", "nul-byte"])
def test_csv_bad_number_names_line_and_column(tmp_path, fields, pattern):
    err = csv_error(tmp_path, "X.csv", with_row3(**fields))
    assert err.line == 4 and re.search(pattern, str(err)), str(err)
    result = read_csv(tmp_path / "X.csv", on_bad="drop")
    assert len(result.bars["X"]) == 4 and sum(result.dropped.values()) == 1


@pytest.mark.parametrize("variant", ["semicolon", "tab", "bom", "crlf", "bom+crlf"])
def test_csv_other_delimiters_bom_and_crlf_read_the_same_bars(tmp_path, variant):
    text = GOOD
    if variant == "semicolon":
        text = text.replace(",", ";")
    elif variant == "tab":
        text = text.replace(",", "\t")
    if "crlf" in variant:
        text = text.replace("\n", "\r\n")
    if "bom" in variant:
        text = "\ufeff" + text
    bars = read_csv(write(tmp_path, "X.csv", text)).bars["X"]
    assert bars.equals(good_bars())


def test_csv_header_with_more_fields_than_the_rows(tmp_path):
    """A field count that differs from the header's is an error naming the line."""
    text = "timestamp,open,high,low,close,volume,extra\n" + "".join(ROWS)
    err = csv_error(tmp_path, "X.csv", text)
    assert err.line == 2 and re.search(r"6 fields, the header has 7", str(err))


def test_csv_row_with_more_fields_than_the_header(tmp_path):
    text = HEADER + "".join(ROWS[:2]) + ROWS[2].rstrip("\n") + ",7\n" + "".join(ROWS[3:])
    err = csv_error(tmp_path, "X.csv", text)
    assert err.line == 4 and re.search(r"line 4: 7 fields, the header has 6$", str(err))


def test_csv_empty_file(tmp_path):
    err = csv_error(tmp_path, "X.csv", "")
    assert re.search(r"X\.csv: no header line \(the file is empty\)", str(err))


def test_csv_header_only_gives_the_symbol_with_no_bars(tmp_path):
    with pytest.warns(ReadWarning, match=r"X\.csv: no data rows \(only a header line\)"):
        result = read_csv(write(tmp_path, "X.csv", HEADER))
    assert list(result.bars) == ["X"] and len(result.bars["X"]) == 0 and result.rows == 0


def test_csv_not_utf8(tmp_path):
    text = (GOOD + "2024-01-02 10:05:00,1.1,1.3,1.0,1.2,14\xe9\n").encode("latin-1")
    err = csv_error(tmp_path, "X.csv", text)
    assert re.search(r"not utf-8 text", str(err))


def test_csv_unparseable_time(tmp_path):
    text = HEADER + "".join(ROWS[:2]) + "2024-13-45 10:02:00,1.3,1.4,1.0,1.1,12\n"
    err = csv_error(tmp_path, "X.csv", text)
    assert re.search(r"line 4: unparseable time '2024-13-45 10:02:00' \(expected ISO 8601\)",
                     str(err))


@pytest.mark.parametrize("order,line,pattern", [
    ([0, 1, 2, 2, 3, 4], 5, r"duplicate timestamp 2024-01-02 10:02:00 UTC of X \(also on "
                            r"line 4\)"),
    ([0, 2, 1, 3, 4], 4, r"timestamp out of order: 2024-01-02 10:01:00 UTC of X comes after "
                         r"2024-01-02 10:02:00 UTC \(line 3\)"),
], ids=["duplicated", "unsorted"])
def test_csv_duplicate_and_unsorted_name_both_lines(tmp_path, order, line, pattern):
    err = csv_error(tmp_path, "X.csv", HEADER + "".join(ROWS[i] for i in order))
    assert err.line == line and re.search(pattern, str(err))


@pytest.mark.parametrize("fields,reason", [
    ({"open": "nan"}, r"non-finite price: X at 2024-01-02 10:02:00 UTC \(open=nan "),
    ({"high": "inf"}, r"non-finite price: X at .*high=inf "),
    ({"volume": "-12"}, r"negative or non-finite volume: X at .*volume=-12\.0\)"),
    ({"high": "0.9"}, r"high/low inconsistent with open/close: X at .*high=0\.9 low=1\.0"),
], ids=["nan-open", "inf-high", "negative-volume", "high-below-low"])
def test_csv_impossible_bar_names_the_line(tmp_path, fields, reason):
    err = csv_error(tmp_path, "X.csv", with_row3(**fields))
    assert err.line == 4 and re.search(reason, str(err)), str(err)


@pytest.mark.parametrize("year", ["1900", "2200"])
def test_csv_far_past_and_future_read_exactly(tmp_path, year):
    text = HEADER + "".join(r.replace("2024", year, 1) for r in ROWS)
    bars = read_csv(write(tmp_path, "X.csv", text)).bars["X"]
    assert int(bars.ts[0]) == ns(f"{year}-01-02 10:00")


@pytest.mark.parametrize("stamp", ["2300-01-02 10:00:00", "1650-01-02 10:00:00",
                                   "2262-04-12 00:00:00"],
                         ids=["2300", "1650", "just-past-int64"])
def test_csv_times_beyond_int64_nanoseconds_are_an_error_not_wrapped(tmp_path, stamp):
    """Times outside 1677-09-21 .. 2262-04-11 cannot be int64 ns: they must not wrap around
    into another century."""
    text = HEADER + ROWS[0].replace("2024-01-02 10:00:00", stamp)
    path = write(tmp_path, "X.csv", text)
    try:
        result = read_csv(path)
    except ReadError as err:
        assert err.line == 2 and re.search(r"(?i)range|unparseable", str(err))
        return
    got = str(np.datetime64(int(result.bars["X"].ts[0]), "ns"))
    pytest.fail(f"{stamp!r} was read as {got}")


@functools.lru_cache(maxsize=1)
def _week_of_minutes_csv() -> bytes:
    lines = [HEADER] + [f"2024-01-0{d} {h:02d}:{m:02d}:00,1.0,1.5,0.5,1.2,10\n"
                        for d in range(2, 9) for h in range(24) for m in range(60)]
    return "".join(lines).encode()


def _corrupt_gzip(kind: str) -> bytes:
    good = gzip.compress(_week_of_minutes_csv(), mtime=0)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "not-gzip":
        return _week_of_minutes_csv()
    bad = bytearray(good)
    if kind == "crc":
        bad[-8:-4] = b"\0\0\0\0"
    elif kind == "early-deflate-damage":       # inside the first 64 KiB of text
        bad[20:28] = b"\xff" * 8
    elif kind == "late-deflate-damage":        # far into the stream
        bad[-100:-92] = b"\xff" * 8
    return bytes(bad)


@pytest.mark.parametrize("kind", ["truncated", "not-gzip", "crc", "early-deflate-damage",
                                  "late-deflate-damage"])
def test_corrupt_gzip_is_a_read_error_naming_the_file(tmp_path, kind):
    path = write(tmp_path, "X.csv.gz", _corrupt_gzip(kind))
    with pytest.raises(ReadError, match=rf"^{re.escape(str(path))}: cannot read: "):
        read_csv(path)


def test_csv_symbol_column_with_path_separators_and_control_characters(tmp_path):
    text = "symbol," + HEADER + "".join(f"{s},{r}" for s, r in zip(
        ["../evil", "a/b", "C:\\x", "A", "A"], ROWS))
    result = read_csv(write(tmp_path, "mixed.csv", text))
    assert sorted(result.bars) == ["../evil", "A", "C:\\x", "a/b"]   # names, not paths
    bad = "symbol," + HEADER + "A," + ROWS[0] + "B\x01," + ROWS[1]
    err = csv_error(tmp_path, "bad.csv", bad)
    assert err.line == 3 and re.search(r"bad symbol: symbol 'B\\x01' contains control", str(err))


@pytest.mark.parametrize("symbol,exc,pattern", [
    ("", ValueError, r"symbol '' is empty"),
    ("A\n", ValueError, r"symbol 'A\\n' is empty or has surrounding spaces"),
    ("A\x00B", ValueError, r"symbol 'A\\x00B' contains control characters"),
    (5, TypeError, r"symbol must be a string, got int"),
], ids=["empty", "newline", "nul", "int"])
def test_reader_symbol_option_is_checked(tmp_path, symbol, exc, pattern):
    with pytest.raises(exc, match=pattern):
        read_csv(write(tmp_path, "X.csv", GOOD), symbol=symbol)


# ------------------------------------------------------------------------------------------
# Readers: Parquet
# ------------------------------------------------------------------------------------------


def parquet(tmp_path, name, **override) -> os.PathLike:
    data = {
        "timestamp": pa.array(pd.date_range("2024-01-02 10:00", periods=5, freq="1min",
                                            tz="UTC").as_unit("ns")),
        "open": [1.0, 1.2, 1.3, 1.1, 1.1], "high": [1.5, 1.6, 1.4, 1.2, 1.3],
        "low": [0.5, 1.1, 1.0, 1.0, 1.0], "close": [1.2, 1.3, 1.1, 1.1, 1.2],
        "volume": [10.0, 11, 12, 13, 14],
    }
    data.update(override)
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / name
    pq.write_table(pa.table(data), path)
    return path


@pytest.mark.parametrize("override,pattern", [
    ({"close": None}, r"missing column 'close' \(columns: 'timestamp', "),   # volume: optional
    ({"close": ["1.2", "1.3", "1.1", "1.1", "1.2"]},
     r"wrong schema: column 'close' is string, expected a number"),
    ({"timestamp": [True] * 5},
     r"wrong schema: column 'timestamp' is bool, expected a timestamp"),
    ({"open": [[1.0]] * 5}, r"wrong schema: column 'open' is list<"),
], ids=["missing-column", "string-prices", "bool-timestamps", "list-prices"])
def test_parquet_wrong_schema(tmp_path, override, pattern):
    path = parquet(tmp_path, "X.parquet", **override)
    with pytest.raises(ReadError, match=rf"^{re.escape(str(path))}: {pattern}"):
        read_parquet(path)


def test_parquet_timestamps_as_strings(tmp_path):
    texts = [f"2024-01-02 10:0{i}:00" for i in range(5)]
    bars = read_parquet(parquet(tmp_path, "X.parquet", timestamp=texts)).bars["X"]
    assert bars.equals(good_bars())
    texts[2] = "garbage"
    path = parquet(tmp_path, "Y.parquet", timestamp=texts)
    with pytest.raises(ReadError, match=r"Y\.parquet, row 3: unparseable time 'garbage'"):
        read_parquet(path)
    result = read_parquet(path, on_bad="drop")
    assert len(result.bars["Y"]) == 4 and result.dropped == {"unparseable time": 1}


def test_parquet_null_price_names_the_row(tmp_path):
    path = parquet(tmp_path, "X.parquet", open=[1.0, 1.2, None, 1.1, 1.1])
    with pytest.raises(ReadError, match=r"X\.parquet, row 3: missing value in 'open'"):
        read_parquet(path)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_parquet_that_is_not_parquet(tmp_path, kind):
    good = parquet(tmp_path, "good.parquet").read_bytes()
    data = {"garbage": b"PAR1 not a parquet file", "truncated": good[: len(good) // 2],
            "empty": b""}[kind]
    path = write(tmp_path, "X.parquet", data)
    with pytest.raises(ReadError, match=rf"^{re.escape(str(path))}: not a readable Parquet"):
        read_parquet(path)


@pytest.mark.parametrize("as_text", [False, True], ids=["timestamp-us", "text"])
def test_parquet_times_beyond_int64_nanoseconds_are_an_error_not_wrapped(tmp_path, as_text):
    stamps = [f"2300-01-02 10:0{i}:00" for i in range(5)]
    ts = stamps if as_text else pa.array(pd.to_datetime(stamps).as_unit("us"))
    path = parquet(tmp_path, "X.parquet", timestamp=ts)
    try:
        result = read_parquet(path)
    except ReadError as err:
        assert re.search(r"(?i)range|unparseable|out of bounds", str(err))
        return
    got = str(np.datetime64(int(result.bars["X"].ts[0]), "ns"))
    pytest.fail(f"'2300-01-02 10:00:00' was read as {got}")


# ------------------------------------------------------------------------------------------
# Readers: DataFrames
# ------------------------------------------------------------------------------------------


def frame(**override) -> pd.DataFrame:
    data = {
        "timestamp": pd.date_range("2024-01-02 10:00", periods=5, freq="1min", tz="UTC"),
        "open": [1.0, 1.2, 1.3, 1.1, 1.1], "high": [1.5, 1.6, 1.4, 1.2, 1.3],
        "low": [0.5, 1.1, 1.0, 1.0, 1.0], "close": [1.2, 1.3, 1.1, 1.1, 1.2],
        "volume": [10.0, 11, 12, 13, 14],
    }
    data.update(override)
    return pd.DataFrame({k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize("override,pattern", [
    ({"close": [1.2, 1.3, "abc", 1.1, 1.2]}, r"^<DataFrame>, row 2: bad number 'abc' in column 'close'$"),
    ({"close": [1.2, 1.3, "1.2.3", 1.1, 1.2]}, r"^<DataFrame>, row 2: bad number '1\.2\.3' in column 'close'$"),
    ({"timestamp": pd.to_datetime(["2024-01-02 10:00", "2024-01-02 10:01", None,
                                   "2024-01-02 10:03", "2024-01-02 10:04"])},
     r"^<DataFrame>, row 2: missing time$"),
    ({"timestamp": [str(t) for t in pd.date_range("2024-01-02 10:00", periods=5,
                                                  freq="1min")[[0, 2, 1, 3, 4]]]},
     r"^<DataFrame>, row 2: timestamp out of order: 2024-01-02 10:01:00 UTC of A "),
    ({"close": None}, r"^<DataFrame>: missing column 'close' \(columns: "),   # volume: optional
], ids=["abc", "1.2.3", "NaT", "unsorted", "missing-column"])
def test_frame_bad_values_name_the_row(override, pattern):
    with pytest.raises(ReadError, match=pattern):
        read_frame(frame(**override), symbol="A")


def test_frame_without_symbol_and_not_a_frame():
    with pytest.raises(ReadError, match=r"the frame has no symbol column; give symbol="):
        read_frame(frame())
    with pytest.raises(TypeError, match=r"expected a pandas or polars DataFrame, got str"):
        read_frame("timestamp,open", symbol="A")


@pytest.mark.parametrize("column,values", [
    ("close", np.array([1.2, 1.3, 1.1 + 5j, 1.1, 1.2])),
    ("volume", [True, True, False, True, True]),
], ids=["complex-close", "bool-volume"])
def test_frame_non_real_prices_are_refused(column, values):
    """A complex price (its imaginary part would be discarded) or a bool volume is not a
    number of the data contract; Bars.from_arrays refuses both."""
    with pytest.raises((ReadError, TypeError), match=rf"{column}"):
        read_frame(frame(**{column: values}), symbol="A")


def test_frame_times_beyond_int64_nanoseconds_are_an_error_not_wrapped():
    stamps = pd.to_datetime([f"2300-01-02 10:0{i}" for i in range(5)]).as_unit("us")
    try:
        result = read_frame(frame(timestamp=stamps), symbol="A")
    except ReadError as err:
        assert re.search(r"(?i)range|out of bounds", str(err))
        return
    got = str(np.datetime64(int(result.bars["A"].ts[0]), "ns"))
    pytest.fail(f"2300-01-02 10:00 was read as {got}")


def test_bars_from_pandas_does_not_take_a_range_index_as_timestamps():
    """A frame with a 'timestamp' column (not 'ts') and the default RangeIndex: the index
    0, 1, 2 ... is not a time."""
    with pytest.raises(ValueError, match=r"ts|DatetimeIndex"):
        Bars.from_pandas(frame())


# ------------------------------------------------------------------------------------------
# The registry: SessionData / SessionCoordinator
# ------------------------------------------------------------------------------------------


def held(coord: SessionCoordinator, symbol: str = "A") -> dict[str, dict[str, list]]:
    """Every interval's bars held for ``symbol``, as plain lists (a snapshot)."""
    entry = coord.session_data.get_symbol_data(symbol)
    return {iv: {k: v.tolist() for k, v in entry.bars(iv).columns().items()}
            for iv in entry.intervals()}


def session_with_a(on_bad="raise", calendar=None, day=DAY, start=None, n=5):
    coord = SessionCoordinator(calendar, on_bad=on_bad)
    coord.start(day)
    coord.add_symbol("A")
    coord.load("A", columns(n, start))
    return coord


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("symbol", ["../evil", "a/b", "C:\\x", "..", ".", "/etc/passwd",
                                    "..\\..\\evil", "~/evil", "*"])
def test_symbol_with_path_separators_stays_inside_the_export_folder(tmp_path, symbol, fmt):
    """A symbol is a value of the export's ``symbol`` column, never a file name: nothing is
    written outside OUT, and the files inside are the layout's own."""
    coord = SessionCoordinator(derived_intervals=["5m"])
    coord.start(DAY)
    coord.add_symbol(symbol)
    assert coord.load(symbol, columns()) == 5
    out = tmp_path / "deep" / "out"
    coord.stop(since_ns=T0, until_ns=T0 + 5 * MINUTE, export_to=out, fmt=fmt)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(out in p.parents for p in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"]
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["out"]   # no staging
    names = sorted(str(p.relative_to(out)) for p in written)
    for name in names:
        assert re.fullmatch(rf"manifest\.json|sessions/{DAY}\.json|"
                            rf"(bars|gaps)/interval=(1m|5m)/part-\d{{5}}\.{fmt}", name), name
    assert [n.split("/")[1] for n in names if n.startswith("bars/")] == ["interval=1m",
                                                                          "interval=5m"]
    bars = read_dataset(out, "bars")
    assert bars.column("symbol").cast(pa.string()).to_pylist() == [symbol] * (5 + 1)
    assert sorted(bars.column("interval").to_pylist()) == ["1m"] * 5 + ["5m"]
    doc = json.loads((out / "sessions" / f"{DAY}.json").read_text())
    assert list(doc["symbols"]) == [symbol]
    assert json.loads((out / "manifest.json").read_text())["symbols"] == [symbol]
    assert validate_export(out) == []


def test_symbols_with_path_separators_in_a_data_file_stay_values(tmp_path):
    """The main job: a data file whose symbol column holds path-like symbols exports them as
    values of the symbol column, inside OUT."""
    text = "symbol,timestamp,open,high,low,close,volume\n" + "".join(
        f"{sym},2024-01-02 10:0{k}:00,1,2,0.5,1.5,1\n"
        for sym in ("../evil", "a/b", "..", "C:\\x") for k in range(5))
    data = tmp_path / "data"
    data.mkdir()
    (data / "mixed.csv").write_text(text)
    out = tmp_path / "out"
    for fmt in ("parquet", "csv"):
        run(data, Calendar.always(), out=out, fmt=fmt, export_base=True, derived=["5m"])
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert all(out in p.parents or p.parent == data for p in written)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out"]
        assert not [p for p in written if "evil" in str(p)]
        assert validate_export(out) == []
        symbols = read_dataset(out, "bars", "1m").column("symbol").cast(pa.string())
        assert sorted(set(symbols.to_pylist())) == ["..", "../evil", "C:\\x", "a/b"]
        assert len(symbols) == 20


@pytest.mark.parametrize("symbol,exc,pattern", [
    ("\x00", ValueError, r"symbol '\\x00' contains control characters"),
    ("A\nB", ValueError, r"symbol 'A\\nB' contains control characters"),
    ("\n", ValueError, r"symbol '\\n' is empty or has surrounding spaces"),
    ("", ValueError, r"symbol '' is empty"),
    (" A", ValueError, r"symbol ' A' is empty or has surrounding spaces"),
    (5, TypeError, r"symbol must be a string, got int"),
    (None, TypeError, r"symbol must be a string, got NoneType"),
    (b"AB", TypeError, r"symbol must be a string, got bytes"),
], ids=["nul", "newline-inside", "newline", "empty", "space", "int", "none", "bytes"])
def test_bad_symbol_is_refused_and_nothing_held_is_lost(symbol, exc, pattern):
    coord = session_with_a()
    before = held(coord)
    with pytest.raises(exc, match=pattern):
        coord.add_symbol(symbol)
    assert coord.get_active_symbols() == ["A"] and held(coord) == before


@pytest.mark.parametrize("symbol", [None, 5], ids=["none", "int"])
def test_bars_offered_for_a_non_string_symbol_are_refused(symbol):
    """A non-string symbol is a caller's bug, not an unknown symbol to count (it would show
    in the JSON as the key "null" or "5", mixed up with real symbols of those names)."""
    coord = session_with_a()
    with pytest.raises(TypeError, match=r"symbol must be a string"):
        coord.stream(symbol, T0 + 10 * MINUTE, 1, 1, 1, 1, 1)
    with pytest.raises(TypeError, match=r"symbol must be a string"):
        coord.load(symbol, columns(3, T0 + 20 * MINUTE))


def test_bars_for_an_unknown_symbol_are_counted_not_stored():
    coord = session_with_a()
    before = held(coord)
    assert coord.stream("NOPE", T0 + 10 * MINUTE, 1, 1, 1, 1, 1) == -1
    assert coord.load("NOPE", columns(3, T0 + 20 * MINUTE)) == 0
    assert coord.session_data.unknown_bars == {"NOPE": 4}
    assert coord.get_active_symbols() == ["A"] and held(coord) == before
    assert coord.session_data.to_json()["unknown_bars"] == {"NOPE": 4}


def test_bars_for_a_removed_symbol_are_counted_not_stored():
    coord = session_with_a()
    coord.add_symbol("B")
    coord.load("B", columns(3))
    before = held(coord)
    assert coord.remove_symbol("B") is True
    assert coord.stream("B", T0 + 10 * MINUTE, 1, 1, 1, 1, 1) == -1
    assert coord.load("B", columns(3, T0 + 20 * MINUTE)) == 0
    assert coord.session_data.unknown_bars == {"B": 4}
    assert coord.get_active_symbols() == ["A"] and held(coord) == before
    assert coord.processor._process_bar_data("B", "1m") == 0      # skipped quietly
    with pytest.raises(KeyError, match=r"unknown symbol 'B'"):
        coord.session_data.get_bars("B")


BATCH_FAULTS = {
    "nan-open": (lambda c: c["open"].__setitem__(2, np.nan), "non-finite price"),
    "inf-high": (lambda c: c["high"].__setitem__(2, np.inf), "non-finite price"),
    "-inf-close": (lambda c: c["close"].__setitem__(2, -np.inf), "non-finite price"),
    "high-below-low": (lambda c: c["high"].__setitem__(2, 0.0),
                       "high/low inconsistent with open/close"),
    "low-above-open": (lambda c: c["low"].__setitem__(2, 9.0),
                       "high/low inconsistent with open/close"),
    "negative-volume": (lambda c: c["volume"].__setitem__(2, -1.0), "negative or non-finite volume"),
    "nan-volume": (lambda c: c["volume"].__setitem__(2, np.nan), "negative or non-finite volume"),
    "duplicate": (lambda c: c["ts"].__setitem__(2, c["ts"][1]), "duplicate timestamp"),
    "unsorted": (lambda c: c["ts"].__setitem__(2, c["ts"][0] - MINUTE),
                 "timestamp out of order"),
    "before-held": (lambda c: c["ts"].__setitem__(2, T0), "timestamp out of order"),
    "outside-session": (lambda c: c["ts"].__setitem__(2, T0 + 3 * 86_400 * SECOND),
                        "outside every session window"),
    "off-grid": (lambda c: c["ts"].__setitem__(2, c["ts"][2] + 1),
                 "not on the base-interval grid"),
}


def third_bad(kind: str) -> dict[str, np.ndarray]:
    cols = columns(5, T0 + 10 * MINUTE)
    BATCH_FAULTS[kind][0](cols)
    return cols


@pytest.mark.parametrize("kind", list(BATCH_FAULTS))
def test_batch_with_a_bad_third_bar_under_raise_keeps_the_first_two(kind):
    coord = session_with_a()
    before = held(coord)
    bad = third_bad(kind)
    with pytest.raises(BadBarError, match=rf"^A: row 2: {BATCH_FAULTS[kind][1]} \(ts=.*\); "
                                          r"2 bars before it were stored$") as info:
        coord.load("A", bad)
    assert info.value.row == 2
    after = coord.session_data.get_bars("A")
    assert after.ts.tolist() == before["1m"]["ts"] + bad["ts"][:2].tolist()
    assert after.close.tolist() == before["1m"]["close"] + bad["close"][:2].tolist()
    # the rest of the batch was not stored, and the derived intervals lost nothing
    coord.processor.finish()
    five = coord.session_data.get_bars("A", "5m")
    assert five.count.tolist() == [5, 2]


@pytest.mark.parametrize("kind", list(BATCH_FAULTS))
def test_batch_with_a_bad_third_bar_under_drop_is_counted(kind):
    coord = session_with_a(on_bad="drop")
    bad = third_bad(kind)
    assert coord.load("A", bad) == 4
    expected_ts = columns()["ts"].tolist() + np.delete(bad["ts"], 2).tolist()
    assert coord.session_data.get_bars("A").ts.tolist() == expected_ts
    reason = BATCH_FAULTS[kind][1]
    entry = coord.session_data.get_symbol_data("A")
    assert entry.rejected == {reason: 1}
    coord.quality.calculate_all(until_ns=T0 + 15 * MINUTE)
    assert {r["interval"]: r["rejected"] for r in coord.summary().rows}["1m"] == 1
    assert entry.quality["1m"].rejected == {reason: 1}
    assert entry.to_json()["intervals"]["1m"]["quality"]["rejected"] == {reason: 1}


@pytest.mark.parametrize("kind", ["nan-open", "duplicate", "outside-session"])
def test_streamed_bad_bar_under_raise_names_the_symbol_and_loses_nothing(kind):
    coord = session_with_a()
    bad = third_bad(kind)
    for i in range(2):
        assert coord.stream("A", *(bad[c][i] for c in COLS)) == 0
    before = held(coord)
    with pytest.raises(BadBarError, match=rf"^A: {BATCH_FAULTS[kind][1]} \(ts="):
        coord.stream("A", *(bad[c][2] for c in COLS))
    assert held(coord) == before


def test_streamed_infinite_volume_is_refused():
    coord = session_with_a()
    before = held(coord)
    with pytest.raises(BadBarError, match=r"^A: .*volume"):
        coord.stream("A", T0 + 10 * MINUTE, 1.0, 1.0, 1.0, 1.0, float("inf"))
    assert held(coord) == before


def test_streamed_float_timestamp_is_refused_like_a_batch():
    """``load`` refuses float timestamps (TypeError); one bar at a time must not take them
    either: a float cannot hold a nanosecond timestamp of today exactly."""
    coord = session_with_a()
    before = held(coord)
    with pytest.raises(TypeError, match=r"ts|integer"):
        coord.stream("A", float(T0 + 10 * MINUTE), 1.0, 1.0, 1.0, 1.0, 1.0)
    assert held(coord) == before


@pytest.mark.parametrize("change,exc,pattern", [
    (lambda c: c.pop("volume"), ValueError, r"missing columns: volume"),
    (lambda c: c.__setitem__("close", c["close"].astype(str)), TypeError,
     r"close must be numeric, got <U"),
    (lambda c: c.__setitem__("close", c["close"][:2]), ValueError,
     r"column 'close' has 2 rows, ts has 3"),
    (lambda c: c.__setitem__("ts", c["ts"].astype(float)), TypeError,
     r"ts must be int64 nanoseconds or datetime64, got float64"),
    (lambda c: c.__setitem__("ts", c["ts"].astype(object)), TypeError,
     r"ts must be int64 nanoseconds or datetime64, got object"),
], ids=["missing-column", "string-prices", "short-column", "float-ts", "object-ts"])
def test_malformed_batch_is_refused_whole_and_nothing_held_is_lost(change, exc, pattern):
    coord = session_with_a()
    before = held(coord)
    cols = columns(3, T0 + 10 * MINUTE)
    change(cols)
    with pytest.raises(exc, match=pattern):
        coord.load("A", cols)
    assert held(coord) == before


def test_interval_that_is_not_a_multiple_is_refused_and_the_entry_unchanged():
    coord = session_with_a()
    before = held(coord)
    with pytest.raises(ValueError, match=r"interval '90s' is not a whole multiple of the base "
                                         r"interval '1m'"):
        coord.add_symbol("A", derived_intervals=["5m", "90s"])
    with pytest.raises(ValueError, match=r"'A' is registered with base interval 1m, not 5m"):
        coord.add_symbol("A", base_interval="5m")
    with pytest.raises(ValueError, match=r"not a whole multiple"):
        coord.add_symbol("B", derived_intervals=["90s"])
    assert coord.get_active_symbols() == ["A"] and held(coord) == before


def test_session_that_is_not_a_trading_day_and_unknown_policy():
    with pytest.raises(ValueError, match=r"2024-01-06 is not a session of XNYS"):
        SessionCoordinator(cal("XNYS")).start("2024-01-06")
    with pytest.raises(ValueError, match=r"on_bad must be one of \('raise', 'drop', "
                                         r"'revise'\), got 'ignore'"):
        SessionCoordinator(on_bad="ignore")


def test_registry_lunch_break_bar_is_refused_and_held_bars_kept():
    calendar = cal("XHKG")
    ts = session_minutes(calendar, "2024-03-12")
    coord = SessionCoordinator(calendar)
    coord.start("2024-03-12")
    coord.add_symbol("A")
    cols = columns(3, int(ts[0]))
    coord.load("A", cols)
    before = held(coord)
    with pytest.raises(BadBarError, match=r"^A: row 0: outside every session window "
                                          r"\(ts=2024-03-12T04:30"):
        coord.load("A", columns(2, ns("2024-03-12 12:30", "Asia/Hong_Kong")))
    assert held(coord) == before


def test_registry_half_day_bar_after_the_early_close_is_refused():
    calendar = cal("XNYS")
    coord = SessionCoordinator(calendar)
    coord.start("2024-11-29")
    coord.add_symbol("A")
    ts = session_minutes(calendar, "2024-11-29")
    coord.load("A", columns(len(ts), int(ts[0])))
    before = held(coord)
    with pytest.raises(BadBarError, match=r"outside every session window"):
        coord.stream("A", ns("2024-11-29 13:00", "America/New_York"), 1, 1, 1, 1, 1)
    assert held(coord) == before
    summary = coord.stop()
    row = next(r for r in summary.rows if r["interval"] == "1m")
    assert (row["bars"], row["expected"], row["quality"]) == (210, 210, 100.0)


@pytest.mark.parametrize("day,hours", [("2024-03-10", 23), ("2024-11-03", 25)],
                         ids=["march-23h", "november-25h"])
def test_registry_24_7_new_york_across_daylight_saving_changes(day, hours):
    calendar = ny_24_7()
    coord = SessionCoordinator(calendar)
    coord.start(day)
    coord.add_symbol("A")
    ts = session_minutes(calendar, day)
    assert coord.load("A", columns(len(ts), int(ts[0]))) == hours * 60
    summary = coord.stop()
    rows = {r["interval"]: r for r in summary.rows}
    assert rows["1h"]["bars"] == hours and rows["1h"]["quality"] == 100.0
    assert rows["1m"]["expected"] == hours * 60 and summary.missing == 0


def test_registry_overnight_session_pause_bar_is_refused():
    calendar = cal("CME_GLOBEX")
    coord = SessionCoordinator(calendar)
    coord.start("2024-03-12")
    coord.add_symbol("A")
    ts = session_minutes(calendar, "2024-03-12")
    coord.load("A", columns(len(ts), int(ts[0])))
    before = held(coord)
    assert local_hhmm([before["1m"]["ts"][0]], "America/Chicago") == ["17:00"]
    with pytest.raises(BadBarError, match=r"^A: row 0: outside every session window"):
        coord.load("A", columns(1, ns("2024-03-12 16:30", "America/Chicago")))
    assert held(coord) == before
    summary = coord.stop()
    assert summary.missing == 0 and summary.bars == 23 * 60
