"""One pass through the main job (issue 18, point 1): the calendar's windows laid out once per
file and cut for each symbol and each check; the same results as laying them out each time.

- ``WindowSpan.windows(a, b)`` equals ``Calendar.windows(a, b)`` for every range, inside the
  span (sliced) or not (the calendar's own answer), on calendars with one window a session,
  lunch breaks, overnight sessions and 24/7 days.
- The engine, the session check and the plausibility check give the same answers with the
  span as without it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sessiondata as sd
from sessiondata.calendar import WindowSpan, Windows

NS = 1_000_000_000
MINUTE = 60 * NS
DAY = 86_400 * NS


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


CALENDARS = {
    "always": lambda: sd.Calendar.always(),
    "XNYS": lambda: sd.Calendar.exchange("XNYS"),
    "XHKG": lambda: sd.Calendar.exchange("XHKG"),       # lunch breaks
    "CME_GLOBEX": lambda: sd.Calendar.exchange("CME_GLOBEX"),   # sessions from the evening
    "FX": lambda: sd.Calendar.fx(),
}


def same_windows(got: Windows, want: Windows) -> None:
    assert got == want
    for name in ("open_ns", "close_ns", "session_ids"):
        assert getattr(got, name).dtype == np.int64
        assert not getattr(got, name).flags.writeable
    assert got.sessions.dtype == np.dtype("datetime64[D]")
    assert np.array_equal(got.session_open_ns, want.session_open_ns)
    assert np.array_equal(got.session_close_ns, want.session_close_ns)
    assert got.n_sessions == want.n_sessions and len(got) == len(want)


@pytest.fixture(scope="module", params=sorted(CALENDARS))
def calendar(request):
    return CALENDARS[request.param]()


@given(a=st.integers(0, 40 * DAY), b=st.integers(0, 40 * DAY),
       c=st.integers(-3 * DAY, 45 * DAY), d=st.integers(0, 10 * DAY),
       grid=st.sampled_from([1, MINUTE, 30 * MINUTE]))
def test_span_cuts_the_calendars_windows(calendar, a, b, c, d, grid):
    origin = ns("2024-01-01T00:00")
    lo, hi = sorted((a, b))
    lo, hi = origin + lo // grid * grid, origin + hi // grid * grid
    span = WindowSpan(calendar, lo, hi)
    same_windows(span.all, calendar.windows(lo, hi))
    # A range inside the span (sliced), and one that may reach outside (the calendar's).
    for start, end in ((lo + (c % (hi - lo + 1)) if hi > lo else lo, None),
                       (origin + c, origin + c + d)):
        if end is None:
            end = start + (d % (hi - start + 1))
        same_windows(span.windows(start, end), calendar.windows(start, end))


@pytest.mark.parametrize("code", sorted(CALENDARS))
def test_span_edges(code):
    calendar = CALENDARS[code]()
    lo, hi = ns("2024-03-01T00:00"), ns("2024-03-15T00:00")
    span = WindowSpan(calendar, lo, hi)
    w = span.all
    # Every window edge, and one ns either side, as starts and ends of a range.
    edges = sorted({int(x) + e for x in np.r_[w.open_ns, w.close_ns] for e in (-1, 0, 1)
                    if lo <= int(x) + e <= hi} | {lo, hi})
    for i, start in enumerate(edges):
        for end in edges[i:i + 7]:
            same_windows(span.windows(start, end), calendar.windows(start, end))
    assert span.windows(lo, hi) is w
    assert len(span.windows(lo, lo)) == 0
    with pytest.raises(ValueError):
        span.windows(hi, lo)


def test_span_of_an_empty_range_and_errors():
    calendar = sd.Calendar.exchange("XNYS")
    saturday = ns("2024-03-02T12:00")
    span = WindowSpan(calendar, saturday, saturday + 3600 * NS)
    assert len(span.all) == 0
    assert len(span.windows(saturday, saturday + NS)) == 0
    # Outside the span: the calendar's own answer (here a whole week).
    same_windows(span.windows(saturday, saturday + 7 * DAY),
                 calendar.windows(saturday, saturday + 7 * DAY))
    with pytest.raises(ValueError):
        WindowSpan(calendar, 10, 5)


# --------------------------------------------------------------------------- validate once

from sessiondata._core import validation  # noqa: E402

import reference as ref  # noqa: E402


def locate(ts, w_open, w_close, base_ns):
    """locate_bars against the reference validate_bars (prices sound, ts strictly
    increasing: the session faults are all that is left); inputs unchanged, read-only."""
    ts = np.asarray(ts, np.int64)
    w_open, w_close = np.asarray(w_open, np.int64), np.asarray(w_close, np.int64)
    for a in (ts, w_open, w_close):
        a.setflags(write=False)
    before = [ts.copy(), w_open.copy(), w_close.copy()]
    n = len(ts)
    prices = [np.full(n, 1.0) for _ in range(5)]
    got_faults = np.full(n, 99, np.uint8)
    want_faults = np.full(n, 99, np.uint8)
    got = validation.locate_bars(ts, w_open, w_close, base_ns, got_faults)
    want = ref.validate_bars(ts, *prices, w_open, w_close, base_ns, want_faults, False)
    assert got == want and type(got[0]) is int
    np.testing.assert_array_equal(got_faults, want_faults)
    # And the compiled validate_bars agrees (the check it replaces for checked bars).
    assert validation.validate_bars(ts, *prices, w_open, w_close, base_ns,
                                    np.empty(0, np.uint8), False) == want
    assert validation.locate_bars(ts, w_open, w_close, base_ns, np.empty(0, np.uint8)) == want
    for a, b in zip(before, (ts, w_open, w_close)):
        np.testing.assert_array_equal(a, b)
    return got


@given(grid=ref.grids(), seed=st.integers(0, 2**32 - 1), density=st.floats(0.05, 1.0),
       stray=st.floats(0.0, 0.5))
def test_locate_bars_is_validate_bars_on_checked_bars(grid, seed, density, stray):
    rng = np.random.default_rng(seed)
    slots = grid.slot_starts()
    ts = slots[rng.random(len(slots)) < density]
    # Strays: times off the grid, in pauses, before the first and after the last window.
    lo, hi = int(grid.w_open[0]) - 3 * grid.base_ns, int(grid.w_close[-1]) + 3 * grid.base_ns
    k = int(rng.binomial(len(ts) + 4, stray))
    extra = rng.integers(lo, hi, k, dtype=np.int64)
    ts = np.unique(np.concatenate([ts, extra]))
    locate(ts, grid.w_open, grid.w_close, grid.base_ns)
    locate(ts, grid.w_open, grid.w_close, 0)


def test_locate_bars_edges():
    assert locate([], [0], [10], 1) == (-1, [0] * ref.N_FAULTS)
    assert locate([5], [], [], 1)[0] == -1          # no windows: no session check
    assert locate([0, 1, 2, 3], [0], [4], 1)[0] == -1
    assert locate([0, 2, 3, 5, 10], [0, 5], [4, 10], 1)[1][6] == 1   # 10 is outside
    got = locate([0, 3, 4, 6, 9, 12], [0, 6], [6, 12], 2)
    assert got[0] == 1 and got[1][7] == 2 and got[1][6] == 1      # 3 and 9 off the grid
    big = ref.I64_MAX - 10
    locate([big - 4, big - 2, big], [big - 4], [big + 5], 2)
    with pytest.raises(ValueError):
        validation.locate_bars(np.zeros(2, np.int64), np.zeros(1, np.int64),
                               np.ones(1, np.int64), 1, np.zeros(3, np.uint8))


# --------------------------------------------------------------------------- plausibility


def step_counts_reference(ts):
    steps = np.diff(np.asarray(ts, np.int64))
    if not len(steps):
        return 0, 0, 0, 0
    d = steps[steps > 0]
    if not len(d):
        return 0, 0, 0, int(steps.max())
    return int(d.min()), int(np.count_nonzero(d == d.min())), len(d), int(steps.max())


@given(st.lists(st.integers(ref.I64_MIN, ref.I64_MAX), max_size=30),
       st.lists(st.integers(-3, 5), max_size=60), st.integers(-(2**40), 2**40))
def test_step_counts(values, steps, origin):
    with np.errstate(over="ignore"):
        for ts in (np.array(values, np.int64), origin + np.cumsum(np.array(steps, np.int64))):
            ts = np.ascontiguousarray(ts, np.int64)
            ts.setflags(write=False)
            assert validation.step_counts(ts) == step_counts_reference(ts)


@given(st.lists(st.lists(st.sampled_from([-60, 0, 60, 60, 60, 120, 300, 7]), max_size=40),
                max_size=4))
def test_infer_base_ns_as_before(symbols):
    """The compiled first pass gives what the NumPy one gave (the steps of all symbols
    together: the smallest when it is at least half of them, else the most common)."""
    from sessiondata.plausibility import infer_base_ns

    arrays = [np.cumsum(np.r_[10**12, np.array(s, np.int64)]).astype(np.int64) * NS
              for s in symbols]
    d = [np.diff(a) for a in arrays if len(a) > 1]
    d = np.concatenate(d) if d else np.empty(0, np.int64)
    d = d[d > 0]
    if not len(d):
        want = (None, 0.0)
    elif np.count_nonzero(d == d.min()) / len(d) >= 0.5:
        want = (int(d.min()), float(np.count_nonzero(d == d.min())) / len(d))
    else:
        values, counts = np.unique(d, return_counts=True)
        k = int(np.argmax(counts))
        want = (int(values[k]), float(counts[k]) / len(d))
    assert infer_base_ns(arrays) == want


# --------------------------------------------------------------------------- the run's checks


def _csv(tmp_path, rows: list[str], name: str = "AAA.csv"):
    path = tmp_path / name
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


def _rows(start: str, n: int, step_min: int = 1) -> list[str]:
    t0 = np.datetime64(start, "m")
    return [f"{t0 + np.timedelta64(i * step_min, 'm')}:00+00:00,1,2,0.5,1.5,10"
            for i in range(n)]


def _bad_file(tmp_path, bad_price: bool = True):
    # XNYS 2024-03-05 and 06 (14:30-21:00 UTC): minute bars, with pre-market bars, one
    # bar off the minute grid, a Saturday bar and one with a bad price.
    rows = (_rows("2024-03-05T13:00", 120) + _rows("2024-03-05T15:00", 60)
            + ["2024-03-05T16:30:30+00:00,1,2,0.5,1.5,10"] + _rows("2024-03-06T14:30", 30)
            + (["2024-03-06T15:10:00+00:00,1,0.2,0.5,1.5,10"] if bad_price else [])
            + _rows("2024-03-09T15:00", 2))
    return _csv(tmp_path, rows)


@pytest.mark.parametrize("bad_price", [True, False])
@pytest.mark.parametrize("on_bad", ["raise", "drop"])
def test_session_check_of_checked_bars_is_the_full_check(tmp_path, on_bad, bad_price):
    """check_sessions on bars the reader checked (sessions only) gives what it gives when it
    validates them again in full, and what it gives with the file's windows laid out once."""
    from sessiondata import readers
    from sessiondata.readers import ReadError

    cal = sd.Calendar.exchange("XNYS")
    path = _bad_file(tmp_path, bad_price)
    outcomes = []
    for trusted, with_span in ((True, True), (True, False), (False, False)):
        try:
            result = readers.read_bars(path, interval="1m", on_bad=on_bad)
        except ReadError as exc:   # the bad price, under raise
            outcomes.append(("read", str(exc)))
            continue
        if not trusted:
            result._validated.clear()
        span = None
        if with_span:
            from sessiondata.job import _window_span
            span = _window_span(result, cal, "1m")
            assert span is not None
        try:
            counted = result.check_sessions(cal, "1m", on_bad, span=span)
        except ReadError as exc:
            outcomes.append(("check", str(exc)))
            continue
        outcomes.append((dict(counted), dict(result.dropped),
                         {s: b.ts.tolist() for s, b in result.bars.items()},
                         {s: v.tolist() for s, v in result.outside.items()},
                         {s: (t.tolist(), c.tolist()) for s, (t, c)
                          in result.dropped_rows.items()}))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    if on_bad == "raise":
        assert outcomes[0][0] == ("read" if bad_price else "check")
    else:
        counted = outcomes[0][0]
        assert counted["outside the session's hours"] == 90     # 13:00-14:30 UTC
        assert counted["not on the base-interval grid"] == 1
        assert counted["outside every session window"] == 2


def test_plausibility_with_the_span_is_the_same(tmp_path):
    from sessiondata import readers
    from sessiondata.job import _window_span
    from sessiondata.plausibility import Plausibility

    cal = sd.Calendar.exchange("XNYS")
    # A file stamped at the bar's end: the readings differ by a minute either way.
    path = _csv(tmp_path, _rows("2024-03-05T14:31", 390) + _rows("2024-03-06T14:31", 390))
    for stamp in ("start", "end"):
        result = readers.read_bars(path, interval="1m", stamp=stamp)
        span = _window_span(result, cal, "1m")
        a = Plausibility(cal, "1m", {"stamp": stamp})
        b = Plausibility(cal, "1m", {"stamp": stamp})
        a.observe(result)
        b.observe(result, span=span)
        assert a.fits == b.fits and a.to_json() == b.to_json()
        # Read as start-stamped, the 21:00 bars lie outside: the end stamp fits better.
        assert b.to_json()["plausible"] is (stamp == "end")


# --------------------------------------------------------------------------- shared span


@pytest.mark.parametrize("code", sorted(CALENDARS))
def test_shared_span_cuts_what_the_calendar_lays_out(code):
    """The windows of a folder's files laid out once (job._SharedSpan): each file's span,
    cut from the widest so far, is the one laid out for that file alone; a file beyond it
    widens it (near) or is laid out alone (far)."""
    import pickle

    from sessiondata.job import _SharedSpan

    calendar = CALENDARS[code]()
    shared = _SharedSpan()
    t0 = ns("2024-01-01T00:00")
    ranges = [(0, 40), (3, 20), (35, 60), (0, 60), (-10, 5), (400, 420), (402, 410),
              (10, 30)]
    for a, b in ranges:
        lo, hi = t0 + a * DAY + 37 * MINUTE, t0 + b * DAY + 11 * MINUTE
        got = shared.span(calendar, lo, hi)
        want = WindowSpan(calendar, lo, hi)
        assert (got.start_ns, got.end_ns) == (lo, hi)
        same_windows(got.all, want.all)
        same_windows(got.windows(lo + DAY, hi - DAY), calendar.windows(lo + DAY, hi - DAY))
    # Another calendar: its own windows, never the first one's.
    other = sd.Calendar.always()
    got = shared.span(other, t0, t0 + 3 * DAY)
    same_windows(got.all, other.windows(t0, t0 + 3 * DAY))
    # Sent to another process (Dask): a fresh one.
    assert pickle.loads(pickle.dumps(shared))._span is None


def test_a_folder_of_small_files_runs_on_one_thread_by_default(tmp_path, monkeypatch):
    """job.default_threads: files under 256 KiB on average run on one thread unless
    threads= is given (a small file's work is mostly Python under the GIL); larger ones on
    the cores; in-memory input and a single file are left to the cores."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sessiondata import job

    seen: list = []
    real = job.ThreadExecutor

    class Spy(real):   # type: ignore[misc, valid-type]
        def __init__(self, threads=None):
            seen.append(threads)
            super().__init__(threads)

    monkeypatch.setattr(job, "ThreadExecutor", Spy)
    cal = sd.Calendar.always()
    t0 = np.datetime64("2024-01-02T00:00", "ns").astype(np.int64)

    def folder(name: str, rows: int, pad: int = 0):
        d = tmp_path / name
        d.mkdir()
        for k in range(3):
            ts = t0 + np.arange(rows, dtype=np.int64) * 60_000_000_000
            px = np.linspace(100.0, 101.0, rows)
            table = pa.table({"timestamp": pa.array(ts, pa.timestamp("ns", "UTC")),
                              "open": px, "high": px, "low": px, "close": px})
            if pad:   # incompressible bytes, as a large file's columns are
                table = table.append_column(
                    "junk", pa.array(np.random.default_rng(k).random(rows * pad)
                                     .reshape(rows, pad).tolist(), pa.list_(pa.float64())))
            pq.write_table(table, d / f"S{k}.parquet", compression="none")
        return d

    small = folder("small", 300)
    large = folder("large", 1440, pad=30)
    assert sum(f.stat().st_size for f in large.iterdir()) > 3 * job.SMALL_FILE_BYTES
    results = {}
    for name, data, threads in (("small", small, None), ("large", large, None),
                                ("small, asked", small, 2)):
        seen.clear()
        results[name] = sd.run(data, cal, threads=threads)
        assert seen == [{"small": 1, "large": None, "small, asked": 2}[name]], name
    # the same bars whatever the threads
    a, b = results["small"], results["small, asked"]
    assert a.symbols == b.symbols
    assert (a.intervals["1m"].bars == b.intervals["1m"].bars).all()
