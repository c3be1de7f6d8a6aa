"""Live sessions: events as they happen (gap_opened, gap_closed, stale, bar_closed, revised)
and the revise policy for late bars (issue 14).

The property tests compare a stream fed in any arrival order with the batch functions on the
sorted data (revise), or on the bars that arrived in order (drop).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiondata import Bars, Calendar, SessionData, find_gaps, quality, resample
from sessiondata.coordinator import SessionCoordinator
from sessiondata.processing import DataProcessor, DataQualityManager

M = 60_000_000_000
DAY = "2024-01-02"
T0 = int(np.datetime64(DAY, "ns").astype(np.int64))
DERIVED = ("5m", "7m", "15m", "1h")     # 7m is fed from the base; 15m and 1h are cascaded
SLOTS = 150
# A session of two windows (a break at 01:07-01:22 UTC, a close at 02:33): short last buckets,
# buckets that never span the break, and the session's own bar.
BROKEN = Calendar.weekly("UTC", "00:00", "02:33", "Mon-Sun", breaks=[("01:07", "01:22")])
BROKEN_DERIVED = ("5m", "7m", "15m", "1h", "1d")
BROKEN_SLOTS = np.concatenate([np.arange(o, c, M) for o, c in zip(
    BROKEN.session_windows(DAY).open_ns.tolist(), BROKEN.session_windows(DAY).close_ns.tolist())])


def _bar(i: int, slots=None) -> tuple[int, float, float, float, float, float]:
    """The bar of slot i (minute i of the day, or slots[i]): prices and an integer volume that
    depend on i only (sums exact)."""
    o = 100.0 + (i * 7919) % 13
    c = 100.0 + (i * 104729) % 11
    ts = T0 + i * M if slots is None else int(slots[i])
    return ts, o, max(o, c) + (i % 3), min(o, c) - (i % 5), c, float(1 + i % 17)


def _bars(minutes, slots=None) -> Bars:
    rows = [_bar(i, slots) for i in sorted(minutes)]
    cols = list(zip(*rows)) if rows else [[]] * 6
    return Bars.from_arrays(np.array(cols[0], dtype=np.int64),
                            *(np.array(c, dtype=np.float64) for c in cols[1:]))


def _session(on_bad: str, calendar=None, derived=DERIVED, **kw) -> SessionData:
    sd = SessionData(calendar or Calendar.always(), on_bad=on_bad, **kw)
    sd.start_session(DAY)
    sd.add_symbol("X", "1m", derived)
    return sd


def _counters(ref: Bars, name: str, held: Bars, cal) -> tuple[int, int, int]:
    """(present, missing, runs) of the slots (buckets) from the session's open up to the last
    bar held, by the batch find_gaps."""
    if len(held) == 0:
        return 0, 0, 0
    closes = cal.session_windows(DAY).close_ns
    last = int(held.ts[-1])
    close = int(closes[np.searchsorted(closes, last, side="right")])
    step = {"1m": M, "5m": 5 * M, "7m": 7 * M, "15m": 15 * M, "1h": 60 * M}.get(name)
    end = int(closes[-1]) if step is None else min(last + step, close)  # the last bucket's end
    gaps = find_gaps(ref, name, cal, base="1m", until=end)
    return len(held), int(gaps.bar_count.sum()), len(gaps)


def _gap_rows(gaps) -> list[tuple]:
    return [(g.start_time, g.end_time, g.bar_count) for g in gaps]


def _assert_equals_batch(sd: SessionData, minutes, slots=None) -> None:
    """The stream's bars, gaps, quality and live gap counters equal the batch functions'."""
    cal = sd.calendar
    entry = sd.get_symbol_data("X")
    assert entry is not None
    ref = _bars(minutes, slots)
    # Live counters of the base, as the bars stand (before the session's end closes buckets).
    assert entry._stream.gap_counters() == _counters(ref, "1m", ref, cal)
    DataProcessor(sd).finish()
    close = int(sd.windows.close_ns[-1])
    dq = DataQualityManager(sd)
    for name in ["1m"] + entry.derived_intervals:
        got = sd.get_bars("X", name)
        want = ref if name == "1m" else resample(ref, name, cal, base="1m")
        np.testing.assert_array_equal(got.ts, want.ts, err_msg=name)
        for col in ("open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(got, col), getattr(want, col),
                                          err_msg=f"{name} {col}")
        if name != "1m":
            np.testing.assert_array_equal(got.count, want.count, err_msg=name)
            np.testing.assert_allclose(got.coverage, want.coverage, err_msg=name)
            k = entry._slot[name]
            assert entry._stream.gap_counters(k) == _counters(ref, name, got, cal), name
        dq._calculate_quality("X", name, until_ns=close)
        assert _gap_rows(entry.bar_gaps[name]) == _gap_rows(find_gaps(ref, name, cal, base="1m")), name
        q, w = entry.quality[name], quality(ref, name, cal, base="1m")
        assert (q.expected, q.present, q.missing, q.partial) == \
            (w.expected, w.present, w.missing, w.partial), name
        assert q.score == pytest.approx(w.score) and \
            q.coverage_sum == pytest.approx(w.coverage_sum), name


# -- the revise and drop policies ----------------------------------------------------------

arrivals = st.lists(st.integers(0, SLOTS - 1), unique=True, min_size=1, max_size=SLOTS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=arrivals, advances=st.sets(st.integers(0, SLOTS - 1), max_size=10),
       dup=st.lists(st.integers(0, SLOTS - 1), max_size=5), subscribed=st.booleans())
def test_revise_any_arrival_order_equals_batch_on_sorted(order, advances, dup, subscribed):
    sd = _session("revise")
    seen: list = []
    if subscribed:
        sd.subscribe(seen.append)
    sent = set()
    for pos, i in enumerate(order):
        assert sd.add_bar("X", *_bar(i)) == 0
        sent.add(i)
        if pos in advances:         # the user's clock closes buckets: later bars are late
            sd.advance(T0 + (max(sent) + 1) * M)
    for i in dup:                   # a bar sent again replaces its slot (same values here)
        if i in sent:
            assert sd.add_bar("X", *_bar(i)) == 0
    assert sd.get_symbol_data("X").rejected == {}
    _assert_equals_batch(sd, sent)
    if subscribed:
        assert not sd.event_errors
        assert sum(e.kind == "revised" for e in seen) >= sum(
            1 for p, i in enumerate(order) if i < max(order[:p], default=-1))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), subscribed=st.booleans())
def test_revise_across_a_break_and_a_short_close(data, subscribed):
    n = len(BROKEN_SLOTS)
    order = data.draw(st.lists(st.integers(0, n - 1), unique=True, min_size=1, max_size=n))
    advances = data.draw(st.sets(st.integers(0, len(order) - 1), max_size=8))
    sd = _session("revise", BROKEN, BROKEN_DERIVED)
    if subscribed:
        sd.subscribe(lambda event: None)
    for pos, i in enumerate(order):
        assert sd.add_bar("X", *_bar(i, BROKEN_SLOTS)) == 0
        if pos in advances:
            sd.advance(int(BROKEN_SLOTS[max(order[:pos + 1])]) + M)
    _assert_equals_batch(sd, set(order), BROKEN_SLOTS)


@settings(max_examples=60, deadline=None)
@given(order=arrivals)
def test_drop_equals_batch_on_the_bars_that_arrived_in_order(order):
    sd = _session("drop")
    kept, last = [], -1
    for i in order:
        sd.add_bar("X", *_bar(i))
        if i > last:
            kept.append(i)
            last = i
    assert sum(sd.get_symbol_data("X").rejected.values()) == len(order) - len(kept)
    _assert_equals_batch(sd, kept)


def test_revise_in_a_batch_equals_batch_on_sorted():
    rng = np.random.default_rng(3)
    minutes = rng.choice(SLOTS, size=120, replace=False)
    sd = _session("revise")
    cols = _bars(minutes)
    order = rng.permutation(len(minutes))
    assert sd.add_bars("X", {c: getattr(cols, c)[order] for c in
                             ("ts", "open", "high", "low", "close", "volume")}) == 120
    _assert_equals_batch(sd, minutes)


def test_revise_other_bad_bars_are_dropped_and_counted():
    sd = _session("revise")
    assert sd.add_bar("X", *_bar(5)) == 0
    assert sd.add_bar("X", T0 + 3 * M + 1, 1.0, 1.0, 1.0, 1.0, 1.0) == 7    # misaligned
    assert sd.add_bar("X", T0 + 2 * M, 1.0, 0.5, 1.0, 1.0, 1.0) == 2        # high < open
    assert sd.get_symbol_data("X").rejected == {
        "not on the base-interval grid": 1, "high/low inconsistent with open/close": 1}
    assert sd.get_symbol_data("X").revised == 0


def test_late_bar_revises_a_closed_5m_bar_and_says_so():
    sd = _session("revise")
    events: list = []
    sd.subscribe(events.append, kinds=["revised"])
    for i in (0, 1, 3, 4, 5, 6):
        sd.add_bar("X", *_bar(i))
    before = sd.get_bars("X", "5m")
    assert before.count.tolist() == [4]
    sd.add_bar("X", *_bar(2))          # its 5m bucket closed when minute 4 came
    after = sd.get_bars("X", "5m")
    assert after.count.tolist() == [5] and after.coverage.tolist() == [1.0]
    assert sd.get_symbol_data("X").revised == 1
    five = [e for e in events if e.interval == "5m"]
    assert len(five) == 1
    assert five[0].old["count"] == 4 and five[0].bar["count"] == 5
    assert five[0].ts == T0
    base = [e for e in events if e.interval == "1m"]
    assert base[0].old is None and base[0].bar["ts"] == T0 + 2 * M


# -- events -------------------------------------------------------------------------------

def _two_symbols(**kw) -> SessionData:
    sd = SessionData(Calendar.always(), **kw)
    sd.start_session(DAY)
    sd.add_symbol("A", "1m", ("5m",))
    sd.add_symbol("B", "1m", ("5m",))
    return sd


def test_no_subscriber_collects_nothing():
    sd = _two_symbols()
    for i in range(10):
        sd.add_bar("A", *_bar(i))
    assert sd._pending == [] and not sd._events_on


def test_gap_opened_within_one_slot_of_its_end_by_the_other_symbols_bars():
    sd = _two_symbols()
    events: list = []
    sd.subscribe(events.append, kinds=("gap_opened", "gap_closed"))
    for i in range(3):
        sd.add_bar("A", *_bar(i))
        sd.add_bar("B", *_bar(i))
    sd.add_bar("A", *_bar(3))           # B's minute 3 is missing ...
    assert events == []
    sd.add_bar("A", *_bar(4))           # ... and the clock is a slot past its end
    assert [(e.kind, e.symbol, e.interval, e.ts) for e in events] == \
        [("gap_opened", "B", "1m", T0 + 3 * M)]
    sd.add_bar("B", *_bar(5))
    closed = events[-1]
    assert closed.kind == "gap_closed" and closed.bar_count == 2
    assert closed.gap.bar_count == 2
    assert closed.gap.start_time == np.datetime64(T0 + 3 * M, "ns").astype("datetime64[us]") \
        .astype(object).replace(tzinfo=closed.gap.start_time.tzinfo)
    assert closed.end_ns - closed.ts == 2 * M


def test_advance_announces_gaps_and_stale_symbols():
    sd = _two_symbols(stale_after=3)
    events: list = []
    sd.subscribe(events.append)
    sd.add_bar("A", *_bar(0))
    sd.add_bar("B", *_bar(0))
    sd.advance(T0 + 3 * M)              # minutes 1 ended by a slot of grace: missing
    opened = [(e.symbol, e.ts) for e in events if e.kind == "gap_opened"]
    assert opened == [("A", T0 + M), ("B", T0 + M)]
    assert not [e for e in events if e.kind == "stale"]
    sd.advance(T0 + 5 * M)              # minutes 1..3 missing: 3 slots, stale
    stale = [e for e in events if e.kind == "stale"]
    assert [(e.symbol, e.bar_count) for e in stale] == [("A", 3), ("B", 3)]
    sd.advance(T0 + 6 * M)              # reported once per silence
    assert len([e for e in events if e.kind == "stale"]) == 2
    assert len([e for e in events if e.kind == "gap_opened"]) == 2
    # The 5m bars closed by the clock are events too.
    assert [e.symbol for e in events if e.kind == "bar_closed"] == ["A", "B"]
    sd.add_bar("A", *_bar(7))
    closed = [e for e in events if e.kind == "gap_closed"]
    assert [(e.symbol, e.ts, e.end_ns, e.bar_count) for e in closed] == \
        [("A", T0 + M, T0 + 7 * M, 6)]


def test_an_announced_slot_whose_bar_comes_after_all_is_revised():
    sd = _two_symbols()
    events: list = []
    sd.subscribe(events.append, kinds=("gap_opened", "gap_closed", "gap_revised"))
    sd.add_bar("A", *_bar(0))
    sd.advance(T0 + 2 * M)              # A's minute 1 ended, but not by a slot of grace yet
    assert [(e.kind, e.symbol, e.ts) for e in events] == [("gap_opened", "B", T0)]
    sd.advance(T0 + 3 * M)
    assert [(e.kind, e.symbol, e.ts) for e in events] == [("gap_opened", "B", T0),
                                                          ("gap_opened", "A", T0 + M)]
    sd.add_bar("A", *_bar(1))           # the slot announced: no gap after all
    assert [(e.kind, e.symbol, e.ts, e.end_ns, e.bar_count) for e in events[2:]] == \
        [("gap_revised", "A", T0 + M, T0 + 2 * M, 1)]


def test_a_failing_callback_loses_no_bar_and_no_event_of_the_others():
    sd = _two_symbols()
    good: list = []

    def bad(event):
        raise ValueError("boom")

    sd.subscribe(bad)
    sd.subscribe(good.append)
    for i in range(12):
        assert sd.add_bar("A", *_bar(i)) == 0      # collected: the feed goes on
    assert sd.get_symbol_data("A").bar_count() == 12
    assert len(good) > 0 and len(sd.event_errors) == len(good)
    assert all(isinstance(exc, ValueError) for _, _, exc in sd.event_errors)


def test_a_callback_that_raises_on_request_is_raised_after_the_bar_is_stored():
    sd = _two_symbols()
    got: list = []

    def bad(event):
        raise KeyError("boom")

    sd.subscribe(bad, kinds=["bar_closed"], errors="raise")
    sd.subscribe(got.append, kinds=["bar_closed"])
    for i in range(4):
        sd.add_bar("A", *_bar(i))
    with pytest.raises(KeyError):
        sd.add_bar("A", *_bar(4))      # closes the first 5m bar
    assert sd.get_symbol_data("A").bar_count() == 5
    assert len(sd.get_bars("A", "5m")) == 1 and len(got) == 1   # the others heard of it
    sd.add_bar("A", *_bar(5))          # and the registry goes on


def test_a_callback_may_call_back_into_the_session():
    sd = _two_symbols()
    seen: list = []

    def mirror(event):
        # Reads, writes and the clock from inside a callback: no deadlock, events in order.
        seen.append((event.kind, event.symbol, event.ts))
        if event.kind == "bar_closed" and event.symbol == "A":
            sd.get_bars("A", "5m")
            sd.add_bars("B", _bars(range(event.ts // M - T0 // M, event.ts // M - T0 // M + 5)))
            sd.advance(event.ts + 5 * M)
            sd.to_json()

    sd.subscribe(mirror)
    for i in range(15):
        sd.add_bar("A", *_bar(i))
    assert sd.get_symbol_data("A").bar_count() == 15
    assert sd.get_symbol_data("B").bar_count() == 15
    assert [k for k, s, _ in seen if k == "bar_closed" and s == "B"]
    assert not sd.event_errors


def test_a_slow_callback_blocks_no_other_thread():
    sd = _two_symbols()
    entered, release = threading.Event(), threading.Event()

    def slow(event):
        if event.symbol == "A":
            entered.set()
            release.wait(5)

    sd.subscribe(slow, kinds=["bar_closed"])
    t = threading.Thread(target=lambda: [sd.add_bar("A", *_bar(i)) for i in range(5)])
    t.start()
    assert entered.wait(5)
    # While A's callback sleeps, B streams and the registry answers.
    for i in range(10):
        assert sd.add_bar("B", *_bar(i)) == 0
    assert sd.get_active_symbols() == ["A", "B"]
    sd.advance(T0 + 11 * M)
    release.set()
    t.join(5)
    assert not t.is_alive()
    assert sd.get_symbol_data("B").bar_count() == 10


def test_subscribe_arguments_and_unsubscribe():
    sd = _two_symbols()
    with pytest.raises(ValueError, match="unknown event kind"):
        sd.subscribe(print, kinds=["gap"])
    with pytest.raises(ValueError, match="errors"):
        sd.subscribe(print, errors="ignore")
    with pytest.raises(TypeError):
        sd.subscribe(42)  # type: ignore[arg-type]
    got: list = []
    sd.subscribe(got.append)
    assert sd.unsubscribe(got.append) is False      # a new bound method: not the same object
    cb = got.append
    sd.subscribe(cb)
    assert sd.unsubscribe(cb)
    with pytest.raises(ValueError, match="on_bad"):
        SessionData(on_bad="fix")
    with pytest.raises(ValueError, match="stale_after"):
        SessionData(stale_after=-1)


def test_coordinator_streams_with_events_and_revise():
    co = SessionCoordinator(Calendar.always(), derived_intervals=("5m",), on_bad="revise",
                            stale_after=2)
    events: list = []
    co.subscribe(events.append)
    co.start(DAY)
    co.add_symbol("X")
    for i in (0, 1, 2, 4, 5, 6):
        co.stream("X", *_bar(i))
    co.stream("X", *_bar(3))
    co.advance(T0 + 10 * M)
    kinds = {e.kind for e in events}
    assert {"gap_opened", "gap_closed", "bar_closed", "revised", "stale"} <= kinds
    summary = co.stop()
    rows = {r["interval"]: r for r in summary.rows}
    assert rows["5m"]["bars"] == 2 and rows["1m"]["bars"] == 7
    assert [e for e in events if e.kind == "bar_closed"][-1].ts == T0 + 5 * M


def test_the_docs_live_example_runs_as_written():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "live.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    printed = re.search(r"prints\n\n```text\n(.*?)```", doc, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/live.md", "exec"), {"__name__": "__main__"})
    assert out.getvalue() == printed


def test_a_silent_symbol_is_announced_within_one_slot_in_a_steady_feed():
    # Many minutes where every symbol sends (the scans then skip the registry), then one
    # stops: the next scan must still find it.
    sd = SessionData(Calendar.always(), stale_after=2)
    sd.start_session(DAY)
    for s in ("A", "B", "C"):
        sd.add_symbol(s, "1m", ("5m",))
    opened: list = []
    sd.subscribe(opened.append, kinds=["gap_opened", "stale"])
    for m in range(30):
        for s in ("A", "B", "C"):
            if s == "B" and m >= 20:
                continue
            sd.add_bar(s, *_bar(m)[0:6])
            if s == "A" and m == 21:    # the first bar one slot past B's 20 ended
                assert [(e.kind, e.symbol, e.ts) for e in opened] == \
                    [("gap_opened", "B", T0 + 20 * M)]
    assert [(e.kind, e.symbol) for e in opened] == [("gap_opened", "B"), ("stale", "B")]
    assert opened[1].ts == T0 + 20 * M and opened[1].bar_count == 2


@pytest.mark.parametrize("grace", [0, 2, 2**31 - 1])
def test_gap_grace(grace):
    sd = _two_symbols(gap_grace=grace)
    opened: list = []
    sd.subscribe(opened.append, kinds=["gap_opened"])
    sd.add_bar("A", *_bar(0))
    sd.advance(T0 + 2 * M)
    # grace 0: B's minute 0 is missing as soon as A's bar ends it; A's minute 1 at 00:02.
    assert [e.symbol for e in opened] == (["B", "A"] if grace == 0 else [])
    sd.advance(T0 + 3 * M)
    assert [e.symbol for e in opened] == {0: ["B", "A"], 2: ["B"]}.get(grace, [])


def test_threads_streaming_out_of_order_with_callbacks_equal_the_batch():
    # Four producers, each a symbol in its own shuffled order under revise, a callback that
    # reads the registry back: nothing lost, nothing doubled, every stream equals the batch.
    sd = SessionData(Calendar.always(), on_bad="revise")
    sd.start_session(DAY)
    symbols = [f"S{i}" for i in range(4)]
    for s in symbols:
        sd.add_symbol(s, "1m", DERIVED)
    seen: list = []

    def reader(event):
        seen.append(event.kind)
        if event.kind == "revised":
            sd.get_bars(event.symbol, event.interval)

    sd.subscribe(reader)
    rng = np.random.default_rng(7)
    orders = {s: rng.permutation(SLOTS)[: SLOTS - 10].tolist() for s in symbols}

    def produce(symbol):
        for i in orders[symbol]:
            assert sd.add_bar(symbol, *_bar(i)) == 0

    threads = [threading.Thread(target=produce, args=(s,)) for s in symbols]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not sd.event_errors and "revised" in seen
    DataProcessor(sd).finish()
    for s in symbols:
        ref = _bars(orders[s])
        for name in DERIVED:
            got, want = sd.get_bars(s, name), resample(ref, name, sd.calendar, base="1m")
            np.testing.assert_array_equal(got.ts, want.ts)
            np.testing.assert_array_equal(got.volume, want.volume)
            np.testing.assert_array_equal(got.count, want.count)


# -- every gap opened once and closed once (issue 21) -------------------------------------

def _replay(events) -> dict:
    """The gaps the events tell, replayed in order as docs/live.md says: ``gap_opened`` adds
    an open gap at ``ts``, ``gap_closed`` gives it its final range, ``gap_revised`` takes the
    gap told at ``ts`` back.  Checks that each event refers to a gap in the right state.
    Returns {(symbol, interval): {start: (end, count) or None while open}}."""
    told: dict = {}
    for e in events:
        if e.kind not in ("gap_opened", "gap_closed", "gap_revised"):
            continue
        g = told.setdefault((e.symbol, e.interval), {})
        if e.kind == "gap_opened":
            assert e.ts not in g, f"opened twice: {e}"
            assert e.bar_count > 0 and e.end_ns > e.ts, e
            g[e.ts] = None
        elif e.kind == "gap_closed":
            assert e.ts in g and g[e.ts] is None, f"closed without being open: {e}"
            assert e.bar_count > 0 and e.end_ns > e.ts, e
            g[e.ts] = (e.end_ns, e.bar_count)
        else:
            assert e.ts in g, f"revised a gap never told: {e}"
            del g[e.ts]
    return told


def _batch_gaps(ts, interval, cal, until=None) -> set:
    b = Bars.from_arrays(np.asarray(sorted(ts), dtype=np.int64), *(np.full(len(ts), 1.0),) * 5)
    gaps = find_gaps(b, interval, cal, base="1m", until=until)
    return {(int(s), int(e), int(n)) for s, e, n in zip(gaps.start_ns.tolist(),
                                                         gaps.end_ns.tolist(),
                                                         gaps.bar_count.tolist())}


def _told(told: dict, symbol: str, interval: str = "1m") -> set:
    g = told.get((symbol, interval), {})
    assert None not in g.values(), f"{symbol} {interval}: gaps left open: {g}"
    return {(s, e, n) for s, (e, n) in g.items()}


NYSE = Calendar.weekly("America/New_York", "09:30", "16:00")


def test_advance_off_a_slot_boundary_does_not_delay_the_next_announcement():
    # Issue 21, defect 1: a wall clock is never on a slot boundary.
    sd = SessionData(NYSE)
    sd.start_session(DAY)
    for s in ("A", "B"):
        sd.add_symbol(s, "1m")
    t0 = int(sd.windows.open_ns[0])
    events: list = []
    sd.subscribe(events.append, kinds=("gap_opened", "stale"))
    for s, m in (("A", 0), ("B", 0), ("A", 1)):
        sd.add_bar(s, t0 + m * M, 1.0, 1.0, 1.0, 1.0, 1.0)
    sd.advance(t0 + 2 * M + 30_000_000_000)      # 09:32:30
    assert events == []                           # B's 09:31 ended less than a slot ago
    sd.add_bar("A", t0 + 2 * M, 1.0, 1.0, 1.0, 1.0, 1.0)    # the clock enters 09:33
    assert [(e.kind, e.symbol, e.ts, e.bar_count) for e in events] == \
        [("gap_opened", "B", t0 + M, 1)]


def test_revise_with_advance_keeps_derived_bars_and_stop_does_not_raise():
    # Issue 21, defect 2: a 5m bar closing into a 15m bucket that advance had closed.
    co = SessionCoordinator(Calendar.always(), derived_intervals=["5m", "15m"], on_bad="revise")
    sd = co.start(DAY)
    co.add_symbol("X")
    events: list = []
    co.subscribe(events.append)
    minutes = [0, 5, 10]
    co.stream("X", *_bar(0))
    co.advance(T0 + 15 * M)
    for m in minutes[1:]:
        assert co.stream("X", *_bar(m)) == 0
    ref = _bars(minutes)
    DataProcessor(sd).finish()
    for name in ("5m", "15m"):
        got, want = sd.get_bars("X", name), resample(ref, name, sd.calendar, base="1m")
        for col in ("ts", "open", "high", "low", "close", "volume", "count"):
            np.testing.assert_array_equal(getattr(got, col), getattr(want, col), err_msg=name)
    closed15 = [e.ts for e in events if e.kind == "bar_closed" and e.interval == "15m"]
    assert closed15 == [T0]                       # once, by advance
    revised15 = [e for e in events if e.kind == "revised" and e.interval == "15m"]
    assert revised15 and revised15[-1].bar["volume"] == float(want.volume[0]) \
        and revised15[-1].bar["count"] == 3
    summary = co.stop()                           # raised BadBarError before the fix
    assert summary.bars == 3


BREAK = Calendar.weekly("UTC", "00:00", "00:20", "Mon-Sun", breaks=[("00:10", "00:15")])
LAGGING = {"A": list(range(10)) + [15, 16], "B": [0] + list(range(2, 10)) + [15, 16]}


@pytest.mark.parametrize("order", ["A then B", "interleaved", "B lags by 3"])
def test_a_symbol_lagging_across_a_break_gets_consistent_gap_events(order):
    # Issue 21, defect 3: each announcement kept apart, withdrawn when a bar shows it wrong.
    sd = SessionData(BREAK)
    sd.start_session(DAY)
    for s in LAGGING:
        sd.add_symbol(s, "1m", ("5m",))
    events: list = []
    sd.subscribe(events.append)
    if order == "A then B":
        feed = [("A", m) for m in LAGGING["A"]] + [("B", m) for m in LAGGING["B"]]
    elif order == "interleaved":
        feed = sorted(((s, m) for s in LAGGING for m in LAGGING[s]), key=lambda r: (r[1], r[0]))
    else:
        feed = sorted(((s, m) for s in LAGGING for m in LAGGING[s]),
                      key=lambda r: (r[1] + (3 if r[0] == "B" else 0), r[0]))
    for s, m in feed:
        assert sd.add_bar(s, *_bar(m)) == 0
    sd.finish()
    told = _replay(events)
    for s, minutes in LAGGING.items():
        want = _batch_gaps([T0 + m * M for m in minutes], "1m", BREAK)
        assert _told(told, s) == want, s
    if order == "interleaved":     # every symbol within the grace: no event for a present slot
        assert not [e for e in events if e.kind == "gap_revised"]
        assert [(e.kind, e.symbol, e.ts) for e in events if e.kind.startswith("gap")] == [
            ("gap_opened", "B", T0 + M), ("gap_closed", "B", T0 + M),
            ("gap_opened", "A", T0 + 17 * M), ("gap_closed", "A", T0 + 17 * M),
            ("gap_opened", "B", T0 + 17 * M), ("gap_closed", "B", T0 + 17 * M)]


def test_stop_closes_every_open_gap_with_its_final_range():
    co = SessionCoordinator(BREAK, derived_intervals=["5m"])
    co.start(DAY)
    co.add_symbol("A")
    co.add_symbol("B")
    events: list = []
    co.subscribe(events.append, kinds=("gap_opened", "gap_closed", "gap_revised"))
    for m in range(12):                   # A stops at 00:06, B at 00:08: the rest is missing
        if m < 6:
            co.stream("A", *_bar(m))
        if m < 8:
            co.stream("B", *_bar(m))
    co.stop()
    told = _replay(events)
    assert _told(told, "A") == {(T0 + 6 * M, T0 + 10 * M, 4), (T0 + 15 * M, T0 + 20 * M, 5)}
    assert _told(told, "B") == {(T0 + 8 * M, T0 + 10 * M, 2), (T0 + 15 * M, T0 + 20 * M, 5)}


def test_advance_past_a_close_closes_the_gap_that_ends_there():
    sd = SessionData(BREAK)
    sd.start_session(DAY)
    sd.add_symbol("A", "1m")
    events: list = []
    sd.subscribe(events.append, kinds=("gap_opened", "gap_closed"))
    for m in range(7):
        sd.add_bar("A", *_bar(m))
    sd.advance(T0 + 10 * M)               # the break: 00:09 is not a slot of grace past yet
    assert [(e.kind, e.ts, e.bar_count) for e in events] == [("gap_opened", T0 + 7 * M, 2)]
    sd.advance(T0 + 10 * M + 1)           # in the break the clock is past 00:10 + 1 slot?
    sd.advance(T0 + 16 * M)               # one slot of grace past the close (break slots
    assert [(e.kind, e.ts, e.end_ns, e.bar_count) for e in events] == [   # count as time)
        ("gap_opened", T0 + 7 * M, T0 + 9 * M, 2), ("gap_closed", T0 + 7 * M, T0 + 10 * M, 3)]


# -- property tests: random feeds, clocks, breaks, lagging symbols, revise, threads ---------

LUNCH = Calendar.weekly("UTC", "00:00", "01:00", "Mon-Sun", breaks=[("00:20", "00:31")])
LUNCH_SLOTS = np.concatenate([np.arange(o, c, M) for o, c in zip(
    LUNCH.session_windows(DAY).open_ns.tolist(), LUNCH.session_windows(DAY).close_ns.tolist())])
PROP_DERIVED = ("5m", "7m", "15m")
# More examples for a long hunt: SESSIONDATA_LIVE_EXAMPLES=2000 python -m pytest -k replay
PROP_EXAMPLES = int(os.environ.get("SESSIONDATA_LIVE_EXAMPLES", "40"))       # 7m from the base, 15m cascaded from 5m
CALENDARS = {"lunch": (LUNCH, LUNCH_SLOTS),
             "broken": (BROKEN, BROKEN_SLOTS)}


@st.composite
def _feeds(draw, max_symbols=4):
    """A calendar, and for 2..max_symbols symbols the slots (indices) they send (at least
    one each)."""
    cal_name = draw(st.sampled_from(sorted(CALENDARS)))
    _, slots = CALENDARS[cal_name]
    n = len(slots)
    n_sym = draw(st.integers(2, max_symbols))
    present = {}
    for k in range(n_sym):
        density = draw(st.sampled_from([0.3, 0.8, 0.95, 1.0]))
        seed = draw(st.integers(0, 2**31))
        mask = (np.random.default_rng(seed).random(n) < density).tolist()
        if not any(mask):
            mask[draw(st.integers(0, n - 1))] = True
        present[f"S{k}"] = [i for i in range(n) if mask[i]]
    return cal_name, present


def _live(cal, symbols, grace=1, on_bad="revise"):
    co = SessionCoordinator(cal, derived_intervals=PROP_DERIVED, on_bad=on_bad, gap_grace=grace)
    sd = co.start(DAY)
    for s in symbols:
        co.add_symbol(s)
    events: list = []
    co.subscribe(events.append, intervals=("1m",) + PROP_DERIVED)    # derived gaps too
    return co, sd, events


def _check_against_batch(co, sd, events, cal, slots, present, *, exactly_once: bool) -> None:
    """After the feed: the events replayed give the batch gaps, derived bars equal the batch,
    and stop() does not raise."""
    co.processor.finish()
    told = _replay(events)
    for s, idx in present.items():
        ts = [int(slots[i]) for i in idx]
        for name in ("1m",) + PROP_DERIVED:
            assert _told(told, s, name) == _batch_gaps(ts, name, cal), (s, name)
        ref = _bars(idx, slots)
        for name in PROP_DERIVED:
            got, exp = sd.get_bars(s, name), resample(ref, name, cal, base="1m")
            for col in ("ts", "open", "high", "low", "close", "volume", "count"):
                np.testing.assert_array_equal(getattr(got, col), getattr(exp, col),
                                              err_msg=f"{s} {name} {col}")
    if exactly_once:
        assert not [e for e in events if e.kind == "gap_revised"]
        opened = [(e.symbol, e.interval, e.ts) for e in events if e.kind == "gap_opened"]
        closed = [(e.symbol, e.interval, e.ts) for e in events if e.kind == "gap_closed"]
        assert len(opened) == len(set(opened)) == len(closed) == len(set(closed))
    co.stop()      # never raises on bars it accepted


@settings(max_examples=PROP_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(feed=_feeds(), grace=st.sampled_from([1, 2]), data=st.data())
def test_in_order_within_the_grace_each_batch_gap_is_opened_once_and_closed_once(
        feed, grace, data):
    # Bars sorted by slot (any order within a slot) and a wall clock that never runs more
    # than the grace past a slot whose bars are still coming: no event for a present slot.
    cal_name, present = feed
    cal, slots = CALENDARS[cal_name]
    co, sd, events = _live(cal, present, grace)
    rows = [(i, s) for s, idx in present.items() for i in idx]
    by_slot: dict = {}
    for i, s in rows:
        by_slot.setdefault(i, []).append(s)
    for i in sorted(by_slot):
        if data.draw(st.booleans()):
            # A clock that may be anywhere (off the slot grid too) short of the grace.
            end = int(slots[i]) + M
            hi = end + grace * M - 1
            now = data.draw(st.integers(max(sd.clock_ns or 0, end - 2 * M), hi))
            co.advance(now)
            assert not [e for e in events if e.kind == "gap_opened" and e.ts <= slots[i]
                        < e.end_ns and any(j == i for j in present[e.symbol])]
        for s in data.draw(st.permutations(by_slot[i])):
            assert co.stream(s, *_bar(i, slots)) == 0
    if data.draw(st.booleans()):
        co.advance(int(slots[-1]) + M + data.draw(st.integers(0, 3 * M)))
    _check_against_batch(co, sd, events, cal, slots, present, exactly_once=True)


@settings(max_examples=PROP_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(feed=_feeds(), shuffle=st.booleans(), data=st.data())
def test_lagging_and_revised_feeds_replay_to_the_batch_gaps(feed, shuffle, data):
    # Symbols lag one another without bound (each in time order, or, with shuffle, in any
    # order under revise) and a clock advances at random times, off the slot grid too.
    cal_name, present = feed
    cal, slots = CALENDARS[cal_name]
    co, sd, events = _live(cal, present)
    queues = {s: (data.draw(st.permutations(idx)) if shuffle else list(idx))
              for s, idx in present.items()}
    start, close = int(slots[0]), int(cal.session_windows(DAY).close_ns[-1])
    while any(queues.values()):
        s = data.draw(st.sampled_from(sorted(k for k, q in queues.items() if q)))
        chunk = [queues[s].pop(0) for _ in range(data.draw(st.integers(1, 6))) if queues[s]]
        if data.draw(st.booleans()):
            # In one add_bars call: its rows out of order are revised in the same pass.
            rows = [_bar(i, slots) for i in chunk]
            cols = {k: np.array(col) for k, col in zip(
                ("ts", "open", "high", "low", "close", "volume"), zip(*rows))}
            assert co.stream_bars(s, cols) == len(chunk)
        else:
            for i in chunk:
                assert co.stream(s, *_bar(i, slots)) == 0
        if data.draw(st.integers(0, 4)) == 0:
            co.advance(data.draw(st.integers(start, close + 2 * M)))
    _check_against_batch(co, sd, events, cal, slots, present, exactly_once=False)


def test_threads_with_breaks_lagging_and_revise_replay_to_the_batch_gaps():
    # Four producers on a calendar with a break, each its symbol in its own order (two in
    # time order, two shuffled under revise), a fifth thread advancing a clock.
    rng = np.random.default_rng(21)
    cal, slots = LUNCH, LUNCH_SLOTS
    present = {f"S{k}": sorted(rng.choice(len(slots), len(slots) - 8 * k, replace=False)
                               .tolist()) for k in range(4)}
    co, sd, events = _live(cal, present)
    orders = {s: (idx if k < 2 else rng.permutation(idx).tolist())
              for k, (s, idx) in enumerate(present.items())}
    failures: list = []

    def produce(symbol):
        try:
            for i in orders[symbol]:
                assert co.stream(symbol, *_bar(i, slots)) == 0
        except BaseException as exc:     # reported below: a thread's assert is lost otherwise
            failures.append(exc)

    def clock():
        for k in range(40):
            co.advance(int(slots[0]) + k * 97 * 1_000_000_000)

    threads = [threading.Thread(target=produce, args=(s,)) for s in present]
    threads.append(threading.Thread(target=clock))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures and not sd.event_errors
    _check_against_batch(co, sd, events, cal, slots, present, exactly_once=False)


def test_one_name_per_concept_and_the_fault_codes_by_name():
    import sessiondata
    from sessiondata._core import validation
    from sessiondata.engine import SymbolEvent

    assert sessiondata.Event.__module__ == "sessiondata._core.stream"   # the live event
    assert sessiondata.SymbolEvent is SymbolEvent                      # added / removed
    assert {f.value: f.reason for f in sessiondata.Fault if f.value} == validation.FAULTS
    sd = _session("raise")
    sd.add_bar("X", *_bar(3))
    with pytest.raises(sessiondata.BadBarError) as err:
        sd.add_bar("X", *_bar(2))
    assert err.value.fault is sessiondata.Fault.UNSORTED
    drop = _session("drop")
    drop.add_bar("X", *_bar(3))
    assert drop.add_bar("X", *_bar(3)) == sessiondata.Fault.DUPLICATE


def test_derived_gap_events_go_to_who_asks_by_interval():
    co = SessionCoordinator(BREAK, derived_intervals=["5m"])
    co.start(DAY)
    co.add_symbol("A")
    base: list = []
    five: list = []
    co.subscribe(base.append, kinds=("gap_opened", "gap_closed"))
    co.subscribe(five.append, kinds=("gap_opened", "gap_closed"), intervals=["5m"])
    for m in (0, 1, 2, 3, 4, 10, 11, 15):     # 00:05-00:10 empty; 00:10 is the break
        co.stream("A", *_bar(m)) if m < 10 or m >= 15 else None
    co.stop()
    assert {e.interval for e in base} == {"1m"} and {e.interval for e in five} == {"5m"}
    assert [(e.kind, e.ts, e.end_ns, e.bar_count) for e in five] == [
        ("gap_opened", T0 + 5 * M, T0 + 10 * M, 1), ("gap_closed", T0 + 5 * M, T0 + 10 * M, 1)]
    assert all(e.derived for e in five) and not any(e.derived for e in base)


def test_events_kept_by_a_callback_are_never_reused():
    # Delivered events that nobody keeps are reused for the next ones (a pool, for speed):
    # an event a callback kept must still read as it was delivered, whatever came after.
    sd = _session("revise")
    kept, seen = [], []

    def keep_some(ev):
        seen.append((ev.kind, ev.symbol, ev.interval, ev.ts, ev.end_ns, ev.bar_count,
                     ev.bar, ev.derived))
        if len(seen) % 3 == 0:
            kept.append((len(seen) - 1, ev))

    sd.subscribe(keep_some)
    sd.subscribe(lambda ev: None, ["bar_closed"])
    for i in range(SLOTS):
        if i % 11 != 4:         # gaps too: gap events carry other fields than bar_closed
            sd.add_bar("X", *_bar(i))
    sd.advance(T0 + (SLOTS + 30) * M)
    assert len(kept) > 20 and {seen[i][0] for i, _ in kept} >= {"bar_closed", "gap_closed"}
    for i, ev in kept:
        assert (ev.kind, ev.symbol, ev.interval, ev.ts, ev.end_ns, ev.bar_count, ev.bar,
                ev.derived) == seen[i]
    ids = [id(ev) for _, ev in kept]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("churn", [False, True])
def test_many_symbols_each_batch_gap_opened_once_and_closed_once(churn):
    # More symbols than one word of the scan's bits (150: three words), most sending every
    # slot: each slot's scan looks only at the streams that were not counted current.  With
    # churn a symbol leaves and one comes mid-session (the scan's table is made again).
    cal, slots = CALENDARS["lunch"]
    rng = np.random.default_rng(2121)
    present = {f"S{k:03d}": [i for i in range(len(slots))
                             if rng.random() < (0.7 if k % 10 == 0 else 0.99)]
               for k in range(150)}
    late = "S999"
    present[late] = [i for i in range(len(slots)) if i >= 25 and rng.random() < 0.9]
    co, sd, events = _live(cal, [s for s in present if s != late])
    if churn:
        co.add_symbol("GONE")
    for i in range(len(slots)):
        if churn and i == 25:
            co.add_symbol(late)
            sd.remove_symbol("GONE")
        senders = [s for s, idx in present.items() if i in idx and (s != late or churn)]
        for s in rng.permutation(senders).tolist():
            assert co.stream(s, *_bar(i, slots)) == 0
        if churn and i < 25:
            assert co.stream("GONE", *_bar(i, slots)) == 0
    if not churn:
        del present[late]
    _check_against_batch(co, sd, events, cal, slots, present, exactly_once=True)


def test_add_bar_takes_keywords_and_names_a_wrong_count():
    """add_bar's own C entry takes the 7 fields by position; keywords go the slow way and give
    the same bars; a wrong count is a TypeError that names add_bar."""
    import inspect

    by_position, by_keyword = _session("raise"), _session("raise")
    for i in range(12):
        ts, o, h, lo, c, v = _bar(i)
        assert by_position.add_bar("X", ts, o, h, lo, c, v) == 0
        assert by_keyword.add_bar("X", ts, o, h, lo, c, volume=v) == 0 if i % 2 else \
            by_keyword.add_bar(symbol="X", ts=ts, open=o, high=h, low=lo, close=c, volume=v) == 0
    a, b = by_position.get_symbol_data("X"), by_keyword.get_symbol_data("X")
    for interval in ("1m",) + DERIVED:
        assert a.bars(interval).to_pandas().equals(b.bars(interval).to_pandas()), interval
    assert by_position.add_bar("Y", *_bar(12)) == -1 and by_position.unknown_bars == {"Y": 1}
    for args, kwargs in ((("X", T0), {}), (("X",) + _bar(13) + (1.0,), {}),
                         (("X",) + _bar(13), {"volume": 1.0})):
        with pytest.raises(TypeError, match="add_bar"):
            by_position.add_bar(*args, **kwargs)
    assert list(inspect.signature(SessionData.add_bar).parameters) == [
        "self", "symbol", "ts", "open", "high", "low", "close", "volume"]
    assert SessionData.add_bar.__doc__.startswith("Offer one base bar")


def test_a_dropped_session_is_freed_without_the_cyclic_gc():
    """Entries hold their registry weakly: a session nobody holds goes at once, with its
    streams and their stores (the next session does not take new memory meanwhile); an
    entry kept past its session still reads its bars."""
    import gc
    import weakref

    enabled = gc.isenabled()
    gc.disable()
    try:
        sd = _session("revise")
        sd.subscribe(lambda event: None)
        for i in range(30):
            sd.add_bar("X", *_bar(i))
        entry = sd.get_symbol_data("X")
        ref = weakref.ref(sd)
        del sd
        assert ref() is None
        assert entry.bar_count() == 30 and len(entry.bars("5m")) == 6
    finally:
        if enabled:
            gc.enable()
