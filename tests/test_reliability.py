"""Reliability (issue 11): the classes of defect an outside review found, each with tests of
its own.

- The registry stays consistent when a symbol is removed (and maybe added again) while its
  quality is being calculated: a calculation stores only on the entry it read.
- Bars labelled with another interval than the symbol's base are refused, naming both.
- The kernels do not overflow at the int64 edges (checked against tests/reference.py, whose
  Python ints cannot overflow).
- Streamed values that cannot be a timestamp or a price say which field and which symbol.
- Empty input is valid input.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import sessiondata
import sessiondata.processing as processing
from sessiondata import Bars, Calendar, SessionCoordinator, SessionData, SymbolSessionData
from sessiondata.processing import DataQualityManager

from helpers import ohlcv

MINUTE = 60_000_000_000
DAY = "2024-03-15"
WAIT = 10.0  # seconds; a deterministic test never waits this long unless it is broken


def _day_start(sd: SessionData) -> int:
    return int(sd.windows.open_ns[0])


def _session_with_gaps(sd: SessionData, symbol: str = "X") -> int:
    """Register ``symbol`` (1m, derived 5m) with 60 minutes of bars, 10 of them missing;
    returns the end of the span."""
    sd.start_session(DAY)
    sd.add_symbol(symbol, "1m", ["5m"])
    t0 = _day_start(sd)
    ts = t0 + MINUTE * np.array([i for i in range(60) if not 20 <= i < 30], np.int64)
    sd.add_bars(symbol, ohlcv(ts))
    return t0 + 60 * MINUTE


# --------------------------------------------------------------------------------------------
# 1. A calculation is bound to the entry it read
# --------------------------------------------------------------------------------------------


class _Pause:
    """Pauses a calculation at one point: the first call of the wrapped function signals
    ``reached`` and waits for ``resume``, so that another thread can change the registry at
    exactly that point.  ``bars_until`` pauses right after the entry's bars were read; the
    functions of ``sessiondata.processing`` pause before the gaps or the score are made."""

    def __init__(self, monkeypatch, name: str):
        self.reached = threading.Event()
        self.resume = threading.Event()
        self.calls = 0
        after_read = name == "bars_until"
        owner = SymbolSessionData if after_read else processing
        original = getattr(owner, name)

        def pause() -> None:
            self.calls += 1
            if self.calls == 1:
                self.reached.set()
                assert self.resume.wait(WAIT), "the test never resumed the calculation"

        def paused(*args, **kwargs):
            if after_read:
                out = original(*args, **kwargs)
                pause()
                return out
            pause()
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, paused)


# Points between the read of the entry and the store of its results.
PAUSE_POINTS = ("bars_until",) + tuple(
    name for name in ("gaps_on_grid", "score_on_grid") if hasattr(processing, name))


def _interleave(monkeypatch, point, change, interval="1m"):
    """Run ``_calculate_quality`` on a thread, pause it at ``point``, run ``change(sd)`` on
    this thread, resume; returns (sd, the entry read, the result)."""
    sd = SessionData(Calendar.always())
    until = _session_with_gaps(sd)
    old = sd.get_symbol_data("X")
    pause = _Pause(monkeypatch, point)
    dq = DataQualityManager(sd)
    result: list = []
    errors: list = []

    def calc():
        try:
            result.append(dq._calculate_quality("X", interval, until))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    worker = threading.Thread(target=calc)
    worker.start()
    try:
        assert pause.reached.wait(WAIT), "the calculation never reached the pause point"
        change(sd)
    finally:
        pause.resume.set()
        worker.join(WAIT)
    assert not worker.is_alive()
    assert not errors, errors
    return sd, old, result[0]


def _remove_and_add(sd: SessionData) -> None:
    assert sd.remove_symbol("X")
    sd.add_symbol("X", "1m", ["5m"])


@pytest.mark.parametrize("point", PAUSE_POINTS)
@pytest.mark.parametrize("interval", ["1m", "5m"])
def test_quality_of_a_removed_entry_never_lands_on_its_successor(monkeypatch, point, interval):
    sd, old, report = _interleave(monkeypatch, point, _remove_and_add, interval)
    new = sd.get_symbol_data("X")
    assert new is not old
    # The new entry holds no bar: it must not show the old entry's 10 missing minutes.
    assert report is None
    assert new.bar_gaps == {} and new.quality == {}
    assert new.scored_span == (None, None)
    assert new.to_json()["intervals"][interval]["gaps"]["gap_count"] == 0
    # Calculated afresh, the new entry is scored on its own (empty) bars.
    report = DataQualityManager(sd)._calculate_quality("X", interval, _day_start(sd) + 60 * MINUTE)
    assert report is not None and report.present == 0


@pytest.mark.parametrize("point", PAUSE_POINTS)
def test_quality_of_a_removed_symbol_is_dropped(monkeypatch, point):
    sd, old, report = _interleave(monkeypatch, point, lambda sd: sd.remove_symbol("X"))
    assert report is None
    assert sd.get_symbol_data("X") is None
    assert old.bar_gaps == {} and old.quality == {}


def test_quality_of_an_ended_session_is_not_stored_on_the_next_one(monkeypatch):
    def next_session(sd: SessionData) -> None:
        sd.end_session()                    # keeps the buffers for the next session
        sd.start_session("2024-03-18")
        sd.add_symbol("X", "1m", ["5m"])    # gets the old entry's buffers, no bars

    sd, old, report = _interleave(monkeypatch, "gaps_on_grid", next_session)
    new = sd.get_symbol_data("X")
    assert report is None
    assert new.bar_gaps == {} and new.quality == {}


@pytest.mark.parametrize("point", PAUSE_POINTS)
def test_quality_is_stored_when_the_registry_did_not_change(monkeypatch, point):
    sd, old, report = _interleave(monkeypatch, point, lambda sd: None)
    assert sd.get_symbol_data("X") is old
    assert report is not None and report.missing == 10
    assert old.quality["1m"] is report
    assert [g.bar_count for g in old.bar_gaps["1m"]] == [10]


def test_calculate_all_races_remove_and_add_without_mixing_entries():
    """Many rounds, two threads, no pause: whatever the interleaving, an entry's stored gaps
    are those of its own bars (a new entry has no bar, so none or only whole-span gaps)."""
    sd = SessionData(Calendar.always())
    until = _session_with_gaps(sd)
    dq = DataQualityManager(sd)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            _remove_and_add(sd)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(200):
            dq.calculate_all(until_ns=until)
            entry = sd.get_symbol_data("X")
            if entry is None:       # between the remove and the add
                continue
            for iv, gaps in dict(entry.bar_gaps).items():
                held = entry.bar_count(iv)
                # An empty entry's only gap is the whole span; a 10-minute gap means the old
                # bars' results landed here.
                assert held > 0 or [g.bar_count for g in gaps] in ([], [60 if iv == "1m" else 12])
    finally:
        stop.set()
        worker.join(WAIT)


# --------------------------------------------------------------------------------------------
# 2. Bars of another interval are refused, naming both intervals
# --------------------------------------------------------------------------------------------


def _coordinator(base: str = "1m") -> SessionCoordinator:
    c = SessionCoordinator(Calendar.always(), base_interval=base, derived_intervals=["15m"])
    c.start(DAY)
    return c


def _five_minute_bars(c: SessionCoordinator, interval: str | None = "5m") -> Bars:
    t0 = int(c.session_data.windows.open_ns[0])
    return ohlcv(t0 + 5 * MINUTE * np.arange(12, dtype=np.int64), interval=interval)


LOADERS = {
    "add_bars": lambda c, s, b: c.session_data.add_bars(s, b),
    "process_bars": lambda c, s, b: c.processor.process_bars(s, b),
    "load": lambda c, s, b: c.load(s, b),
    "stream_bars": lambda c, s, b: c.stream_bars(s, b),
    "add_and_load": lambda c, s, b: c.add_and_load(s, b),
    "replay": lambda c, s, b: c.replay({s: b}),
    "columns_with_label": lambda c, s, b: c.session_data.add_bars(
        s, {**b.columns(), "interval": b.interval.name}),
    "keywords_with_label": lambda c, s, b: c.session_data.add_bars(
        s, interval=b.interval.name, **b.columns()),
}


@pytest.mark.parametrize("path", sorted(LOADERS))
@pytest.mark.parametrize("base,label", [("1m", "5m"), ("5m", "1m"), ("1m", "1h"),
                                        ("30s", "1m")])
def test_bars_of_another_interval_are_refused_naming_both(path, base, label):
    c = _coordinator(base)
    if path not in ("add_and_load", "replay"):
        c.add_symbol("X")
    bars = _five_minute_bars(c, label)
    with pytest.raises(ValueError) as info:
        LOADERS[path](c, "X", bars)
    message = str(info.value)
    assert "X" in message and f"{label} bars" in message and f"base interval {base}" in message
    entry = c.session_data.get_symbol_data("X")
    assert entry is not None and entry.bar_count() == 0 and entry.bar_count("15m") == 0


@pytest.mark.parametrize("path", sorted(set(LOADERS) - {"columns_with_label",
                                                        "keywords_with_label"}))
def test_bars_of_the_base_interval_or_unlabelled_are_taken(path):
    c = _coordinator("5m")
    if path not in ("add_and_load", "replay"):
        c.add_symbol("X")
    LOADERS[path](c, "X", _five_minute_bars(c, "5m"))
    c2 = _coordinator("5m")
    if path not in ("add_and_load", "replay"):
        c2.add_symbol("X")
    LOADERS[path](c2, "X", _five_minute_bars(c2, None))
    for co in (c, c2):
        entry = co.session_data.get_symbol_data("X")
        assert entry.bar_count() == 12 and entry.bar_count("15m") == 4


def test_a_mislabelled_batch_for_an_unknown_symbol_is_counted_as_unknown():
    c = _coordinator("1m")
    assert c.session_data.add_bars("NOPE", _five_minute_bars(c, "5m")) == 0
    assert c.session_data.unknown_bars == {"NOPE": 12}


# --------------------------------------------------------------------------------------------
# 5. Empty input is valid input
# --------------------------------------------------------------------------------------------

EMPTY_UNLABELLED = Bars.empty()


@pytest.mark.parametrize("target", ["1m", "5m", "1h", "1d"])
@pytest.mark.parametrize("calendar", ["always", "XNYS"])
def test_resample_of_empty_unlabelled_bars_is_empty(target, calendar):
    cal = Calendar.always() if calendar == "always" else Calendar.exchange("XNYS")
    for bars in (EMPTY_UNLABELLED, Bars.empty("1m"), EMPTY_UNLABELLED[0:0]):
        out = sessiondata.resample(bars, target, cal)
        assert len(out) == 0 and out.interval.name == target
        assert out.ts.dtype == np.int64 and out.count.dtype == np.int64
        assert out.coverage.dtype == np.float64


def test_resample_of_empty_bars_still_checks_what_it_can():
    with pytest.raises(ValueError, match="not a whole multiple"):
        sessiondata.resample(Bars.empty("5m"), "7m")
    with pytest.raises(ValueError, match="not understood"):
        sessiondata.resample(EMPTY_UNLABELLED, "5x")
    with pytest.raises(ValueError, match="fewer than two bars"):  # one bar: no interval to see
        sessiondata.resample(ohlcv(np.array([0], np.int64), interval=None), "5m")


@pytest.mark.parametrize("target", ["1m", "5m", "1d"])
@pytest.mark.parametrize("base", [None, "1m"])
def test_find_gaps_and_quality_of_empty_input(target, base):
    for bars in (EMPTY_UNLABELLED, Bars.empty("1m")):
        assert sessiondata.find_gaps(bars, target, base=base) == []
        q = sessiondata.quality(bars, target, base=base)
        assert (q.expected, q.present, q.score) == (0, 0, 100.0)
        # Over a given span every slot is missing.
        span = dict(start="2024-03-15", end="2024-03-16")
        gaps = sessiondata.find_gaps(bars, target, base=base, **span)
        per_day = {"1m": 1440, "5m": 288, "1d": 1}[target]
        assert sum(g.bar_count for g in gaps) == per_day
        q = sessiondata.quality(bars, target, base=base, **span)
        assert (q.expected, q.present, q.missing, q.score) == (per_day, 0, per_day, 0.0)


# --------------------------------------------------------------------------------------------
# 9. A streamed value that is no timestamp or no price says which field and which symbol
# --------------------------------------------------------------------------------------------

STREAMERS = {
    "add_bar": lambda c, *bar: c.session_data.add_bar(*bar),
    "stream": lambda c, *bar: c.stream(*bar),
    "process_bar": lambda c, *bar: c.processor.process_bar(*bar),
}
FIELDS = ("ts", "open", "high", "low", "close", "volume")
BAD_TS = [(2**63, ValueError, "int64"), (-(2**63) - 1, ValueError, "int64"),
          (10**30, ValueError, "int64"), ("2024-03-15T00:00", TypeError, "integer"),
          (1.7e18, TypeError, "integer"), (None, TypeError, "integer")]
BAD_PRICE = [("1.5", TypeError, "real number"), (b"1.5", TypeError, "real number"),
             (None, TypeError, "real number"), ([1.0], TypeError, "real number"),
             (10**400, ValueError, "too large")]


def _streaming_coordinator():
    c = SessionCoordinator(Calendar.always(), base_interval="1m", derived_intervals=["5m"])
    c.start(DAY)
    c.add_symbol("ACME")
    t0 = int(c.session_data.windows.open_ns[0])
    return c, [t0, 10.0, 11.0, 9.0, 10.5, 100.0]


@pytest.mark.parametrize("path", sorted(STREAMERS))
@pytest.mark.parametrize("field", FIELDS)
def test_a_streamed_value_that_cannot_be_converted_names_field_and_symbol(path, field):
    cases = BAD_TS if field == "ts" else BAD_PRICE
    for value, error, words in cases:
        c, bar = _streaming_coordinator()
        bar[FIELDS.index(field)] = value
        with pytest.raises(error) as info:
            STREAMERS[path](c, "ACME", *bar)
        message = str(info.value)
        assert message.startswith("ACME: ") and field in message and words in message, message
        # Nothing was stored, counted or clocked.
        entry = c.session_data.get_symbol_data("ACME")
        assert entry.bar_count() == 0 and sum(entry._stream.rejected) == 0
        assert c.session_data.clock_ns is None
        # The stream goes on: a good bar is taken afterwards.
        good = _streaming_coordinator()[1]
        assert STREAMERS[path](c, "ACME", *good) == 0


def test_numbers_of_other_types_are_still_taken():
    from decimal import Decimal
    from fractions import Fraction

    c, bar = _streaming_coordinator()
    t0 = bar[0]
    rows = [
        (np.int64(t0), np.float64(10.0), np.float32(11.0), 9, Decimal("10.5"), Fraction(1, 2)),
        (t0 + MINUTE, 10.0, 11, np.int32(9), 10.5, True),
        (np.uint64(t0 + 2 * MINUTE), 10.0, 11.0, 9.0, 10.5, 0),
    ]
    for row in rows:
        assert c.stream("ACME", *row) == 0
    assert c.session_data.get_symbol_data("ACME").bar_count() == 3


def test_a_bad_value_for_an_unknown_symbol_names_it_too():
    c, bar = _streaming_coordinator()
    bar[1] = "ten"
    with pytest.raises(TypeError, match="^NOPE: open must be a real number"):
        c.stream("NOPE", *bar)


def test_check_bars_interval_is_the_one_rule():
    from sessiondata.intervals import check_bars_interval, parse_interval

    check_bars_interval("X", None, "1m")               # unlabelled: taken
    check_bars_interval("X", "1m", parse_interval("1m"))
    check_bars_interval("X", parse_interval("60s"), "1m")   # the same interval, spelled apart
    with pytest.raises(ValueError, match=r"^X: the bars are 5m bars, but 'X' has base interval 1m"):
        check_bars_interval("X", "5m", "1m")


def test_the_engine_refuses_bars_of_another_interval():
    t0 = int(np.datetime64(DAY, "ns").astype(np.int64))
    bars = ohlcv(t0 + 5 * MINUTE * np.arange(24, dtype=np.int64), interval="5m")
    with pytest.raises(ValueError, match="5m bars"):
        sessiondata.run({"X": bars}, Calendar.always(), base="1m")


@pytest.mark.parametrize("field,value,error", [
    ("ts", [2**63], ValueError), ("ts", ["2024-03-15"], TypeError),
    ("open", ["x"], TypeError), ("volume", [None], TypeError), ("close", [b"1"], TypeError),
])
def test_a_batch_value_that_cannot_be_converted_names_field_and_symbol(field, value, error):
    c, bar = _streaming_coordinator()
    cols = dict(zip(FIELDS, ([v] for v in bar)))
    cols[field] = value
    for send in (c.stream_bars, c.load, c.session_data.add_bars):
        with pytest.raises(error) as info:
            send("ACME", **cols)
        assert str(info.value).startswith("ACME: ") and field in str(info.value)
    assert c.session_data.get_symbol_data("ACME").bar_count() == 0


@pytest.mark.parametrize("now", [2**63, -(2**63) - 1, 1.5e18])
def test_advancing_the_clock_beyond_int64_names_the_argument(now):
    c, _bar = _streaming_coordinator()
    with pytest.raises(ValueError, match="now_ns"):
        c.session_data.advance(now)
    assert c.session_data.clock_ns is None
