"""Live events handed straight to the callbacks (issue 21, sixth pass), and the huge-page
pool's opt-out.

A bar whose only news is closed derived bars delivers its bar_closed events as it makes them,
without the pending list; every other news goes through ``collect`` and the list.  These
tests compare the two ways (``SessionCore._direct`` turns the first off) on the same feeds,
with callbacks that keep events, raise, add bars of their own, unsubscribe and subscribe:
the same events, in the same order, with the same fields.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sessiondata import Calendar, SessionData
from sessiondata._core import stream as core

M = 60_000_000_000
DAY = "2024-01-02"
T0 = int(np.datetime64(DAY, "ns").astype(np.int64))
DERIVED = ("5m", "15m", "1h")
SYMBOLS = ("A", "B", "C")


def _feed(seed: int, minutes: int = 240, missing: float = 0.05):
    """Bars of SYMBOLS in time order, a few (symbol, minute) pairs missing."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(minutes):
        for s in SYMBOLS:
            if rng.random() >= missing:
                o = float(100 + rng.integers(0, 20))
                c = float(100 + rng.integers(0, 20))
                rows.append((s, T0 + m * M, o, max(o, c) + 1.0, min(o, c) - 1.0, c,
                             float(rng.integers(1, 50))))
    return rows


def _fields(ev) -> tuple:
    return (ev.kind, ev.symbol, ev.interval, ev.ts, ev.end_ns, ev.bar_count, ev.derived,
            None if ev.bar is None else tuple(sorted(ev.bar.items())),
            None if ev.old is None else tuple(sorted(ev.old.items())))


def _run(direct: bool, rows, make_callbacks, on_bad="revise", derived=DERIVED):
    """Stream rows into a fresh session whose callbacks make_callbacks(sd, log) gives; the
    events as they were delivered, and the same events read again at the end (kept objects:
    one reused by a later event would read differently)."""
    sd = SessionData(Calendar.always(), on_bad=on_bad)
    sd._direct = direct
    sd.start_session(DAY)
    for s in SYMBOLS:
        sd.add_symbol(s, "1m", derived)
    log: list = []
    for fn, kw in make_callbacks(sd, log):
        sd.subscribe(fn, **kw)
    raised = []
    for row in rows:
        try:
            sd.add_bar(*row)
        except RuntimeError as exc:
            raised.append((row[0], row[1], str(exc)))
    sd.finish()
    seen = [(who, f) for who, f, _ in log]
    again = [(who, _fields(ev)) for who, _, ev in log]
    return sd, seen, again, raised


def _keep(name, log):
    def cb(ev):
        log.append((name, _fields(ev), ev))
    return cb


# Ten intervals that all close at the hour: more closed bars than the direct delivery's
# rows hold, which go through collect.
MANY = ("2m", "3m", "4m", "5m", "6m", "10m", "12m", "15m", "20m", "30m", "1h")


@pytest.mark.parametrize("seed,derived", [(1, DERIVED), (2, DERIVED), (3, DERIVED), (4, MANY)])
def test_direct_delivery_gives_the_events_of_the_pending_list(seed, derived):
    rows = _feed(seed)

    def callbacks(sd, log):
        return [(_keep("all", log), {}),
                (_keep("closed", log), {"kinds": ["bar_closed"]})]

    sd1, seen1, again1, _ = _run(True, rows, callbacks, derived=derived)
    sd0, seen0, again0, _ = _run(False, rows, callbacks, derived=derived)
    assert seen1 == seen0
    assert again1 == seen1          # no kept event was reused
    kinds = {f[0] for _, f in seen1}
    assert {"bar_closed", "gap_opened", "gap_closed"} <= kinds
    # bar_closed equals the derived bars held, each once, in order per symbol and interval.
    for s in SYMBOLS:
        for iv in derived:
            told = [f[3] for who, f in seen1 if who == "closed" and f[1] == s and f[2] == iv]
            held = sd1.get_symbol_data(s).bars(iv).ts.tolist()
            assert told == held and len(told) > 0


def test_a_callback_adding_bars_has_them_delivered_after_the_bar_in_order():
    """A bar_closed callback that adds a bar of another symbol (which closes bars too): every
    event of the outer bar comes first, then the inner bar's, as with the pending list."""
    rows = [r for r in _feed(4, minutes=120) if r[0] != "C"]

    def callbacks(sd, log):
        c_rows = {r[1]: r for r in _feed(5, minutes=120) if r[0] == "C"}

        def feed_c(ev):
            log.append(("feed", _fields(ev), ev))
            if ev.symbol == "A" and ev.interval == "5m":
                # The C bars of the 5m bucket that just closed, late to the party.
                for t in range(ev.ts, ev.ts + 5 * M, M):
                    if t in c_rows:
                        sd.add_bar(*c_rows.pop(t))
        return [(feed_c, {"kinds": ["bar_closed"]}), (_keep("all", log), {})]

    _, seen1, again1, _ = _run(True, rows, callbacks)
    _, seen0, again0, _ = _run(False, rows, callbacks)
    assert seen1 == seen0 and again1 == seen1
    assert any(f[1] == "C" and f[0] == "bar_closed" for _, f in seen1)


@pytest.mark.parametrize("errors", ["collect", "raise"])
def test_a_raising_callback_in_direct_delivery(errors):
    """A callback that raises on some bar_closed: the bar is stored, the other callbacks get
    every event, the error is collected (and re-raised once every event is out)."""
    rows = _feed(6, minutes=90)

    def callbacks(sd, log):
        def bad(ev):
            if ev.interval == "15m":
                raise RuntimeError(f"no {ev.symbol} {ev.ts}")
        return [(_keep("first", log), {}), (bad, {"kinds": ["bar_closed"], "errors": errors}),
                (_keep("last", log), {})]

    sd1, seen1, again1, raised1 = _run(True, rows, callbacks)
    sd0, seen0, again0, raised0 = _run(False, rows, callbacks)
    assert seen1 == seen0 and again1 == seen1
    assert [(e.symbol, e.ts) for e, _, _ in sd1.event_errors] == \
        [(e.symbol, e.ts) for e, _, _ in sd0.event_errors]
    assert len(sd1.event_errors) == sum(
        1 for who, f in seen1 if who == "last" and f[0] == "bar_closed" and f[2] == "15m")
    assert raised1 == raised0
    assert bool(raised1) == (errors == "raise")
    for s in SYMBOLS:       # every bar stored, raised or not
        assert sd1.get_symbol_data(s).bar_count() == sum(1 for r in rows if r[0] == s)


def test_unsubscribing_and_subscribing_inside_a_callback():
    """A batch runs on one table of subscribers: a callback that unsubscribes another (or
    subscribes a new one) changes who gets the next batch's events, both ways alike."""
    rows = _feed(7, minutes=100)

    def callbacks(sd, log):
        other = _keep("other", log)
        late = _keep("late", log)

        def switch(ev):
            log.append(("switch", _fields(ev), ev))
            if ev.interval == "15m" and ev.symbol == "B":
                if sd.unsubscribe(other) is False:
                    sd.subscribe(other, kinds=["bar_closed"])
                sd.subscribe(late, kinds=["bar_closed", "gap_closed"])
        return [(switch, {"kinds": ["bar_closed"]}), (other, {})]

    _, seen1, again1, _ = _run(True, rows, callbacks)
    _, seen0, again0, _ = _run(False, rows, callbacks)
    assert seen1 == seen0 and again1 == seen1
    assert any(who == "late" for who, _ in seen1)


def test_a_bar_closing_buckets_as_the_scan_tells_a_gap():
    """A's minute-4 bar starts its slot and closes A's 5m bucket, and the clock's scan due
    with it (slot 3's end plus the grace) finds that B missed minute 3: the bar's bar_closed
    comes first, then the scan's gap_opened, as with the pending list (the closed bar is
    delivered straight, the scan's event queued behind it)."""
    rows = [(s, T0 + m * M, 100.0, 101.0, 99.0, 100.5, 10.0)
            for m in range(12) for s in ("A", "B", "C") if (s, m) != ("B", 3)]

    def callbacks(sd, log):
        return [(_keep("all", log), {}), (_keep("closed", log), {"kinds": ["bar_closed"]})]

    _, seen1, again1, _ = _run(True, rows, callbacks)
    _, seen0, again0, _ = _run(False, rows, callbacks)
    assert seen1 == seen0 and again1 == seen1
    told = [(f[0], f[1], f[2], f[3]) for who, f in seen1 if who == "all"]
    i = told.index(("gap_opened", "B", "1m", T0 + 3 * M))
    assert told[i - 1] == ("bar_closed", "A", "5m", T0)


class _CallableObject:
    def __init__(self, log):
        self.log = log

    def __call__(self, ev):
        self.log.append(("object", _fields(ev), ev))


class _Holder:
    def __init__(self, log):
        self.log = log

    def method(self, ev):
        self.log.append(("method", _fields(ev), ev))


@pytest.mark.parametrize("direct", [True, False])
def test_every_kind_of_callable_gets_every_event(direct):
    """A function, a bound method, a callable object (no vectorcall slot of its own), a
    functools.partial and a builtin's bound method are called alike, with the same events."""
    import functools

    rows = _feed(8, minutes=60)

    def callbacks(sd, log):
        kept: list = []

        def with_tag(tag, ev):
            log.append((tag, _fields(ev), ev))

        sd._kept_by_builtin = kept
        return [(_keep("function", log), {}), (_Holder(log).method, {}),
                (_CallableObject(log), {}), (functools.partial(with_tag, "partial"), {}),
                (kept.append, {})]

    sd, seen, again, _ = _run(direct, rows, callbacks)
    assert again == seen
    by = {}
    for who, f in seen:
        by.setdefault(who, []).append(f)
    assert set(by) == {"function", "method", "object", "partial"}
    assert by["function"] == by["method"] == by["object"] == by["partial"]
    assert [_fields(ev) for ev in sd._kept_by_builtin] == by["function"]
    assert any(f[0] == "bar_closed" for f in by["function"])


def test_the_interval_names_are_a_tuple_the_events_carry():
    s = core.SymbolStream([0], [100], 1)
    s.add_derived([0], [100], [100], 5)
    assert s.names == ()
    s.names = ["1s", "5s"]
    assert s.names == ("1s", "5s")
    with pytest.raises(AttributeError):
        s.names.append("x")     # a tuple: a change in place cannot go unseen
    with pytest.raises(TypeError):
        s.names = ["1s", 5]
    sd = SessionData(Calendar.always())
    sd.start_session(DAY)
    sd.add_symbol("X", "1m", ["5m", "15m"])
    sd.add_symbol("Y", "1m", ["5m"])
    x, y = sd.get_symbol_data("X")._stream, sd.get_symbol_data("Y")._stream
    assert x.names == ("1m", "5m", "15m") and y.names == ("1m", "5m")
    assert x.names[1] is y.names[1]     # interned: one object for every stream


# --------------------------------------------------------------------------- huge pages


def _dense_stream_check() -> str:
    return textwrap.dedent("""
        import sys
        import numpy as np
        from sessiondata import Calendar, SessionData, resample
        from sessiondata._core import stream as core
        s = core.SymbolStream([0], [1440], 1)
        s.add_derived([0], [1440], [1440], 5)
        for t in range(1440):
            assert s.push(t, 1.0 + t, 2.0 + t, 0.5 + t, 1.5 + t, 1.0) == 0
        pooled = s.pooled
        assert s.bars()["ts"].tolist() == list(range(1440))
        assert s.bars(0)["ts"].tolist() == list(range(0, 1440, 5))
        s.flush()
        assert s.bars()["close"].tolist() == [1.5 + t for t in range(1440)]
        sd = SessionData(Calendar.always())
        sd.start_session("2024-01-02")
        t0 = int(np.datetime64("2024-01-02", "ns").astype(np.int64))
        for sym in ("A", "B"):
            sd.add_symbol(sym, "1m", ["5m", "1h"])
        for m in range(1440):
            for sym in ("A", "B"):
                sd.add_bar(sym, t0 + m * 60_000_000_000, 1.0, 2.0, 0.5, 1.5, 1.0)
        assert all(sd.get_symbol_data(sym)._stream.pooled == pooled for sym in ("A", "B"))
        sd.finish()
        assert sd.get_symbol_data("A").bar_count() == 1440
        print(core.HUGE_PAGES, pooled)
    """)


@pytest.mark.parametrize("value", [None, "0", "off", "1"])
def test_huge_pages_opt_out_by_environment(value):
    """SESSIONDATA_HUGEPAGES=0 (read at import) keeps every store on malloc; the stores work
    the same either way."""
    env = dict(os.environ)
    env.pop("SESSIONDATA_HUGEPAGES", None)
    if value is not None:
        env["SESSIONDATA_HUGEPAGES"] = value
    out = subprocess.run([sys.executable, "-c", _dense_stream_check()], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    on = value not in ("0", "off")
    pool_here = on and sys.platform.startswith("linux")
    assert out.stdout.split() == [str(on), str(pool_here)]
