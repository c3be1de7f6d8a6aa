# Aggregation of base bars into derived intervals laid on a session grid.
#
# Inputs are sorted base bars (int64 ns open times, float64 prices) and a grid: the windows of
# the sessions, a step and the base interval.  Validation and policy live in Python; these
# loops only trust what they cannot afford to check and report the first row they cannot place.

cimport cython
from libc.stdint cimport INT64_MAX, INT64_MIN, uint8_t

import numpy as np

from common cimport (
    FAULT_MISALIGNED, FAULT_NONE, FAULT_OUTSIDE, FAULT_OVERFLOW, FAULT_UNSORTED, BarStore,
    GridCursor, Rollup, bucket_slots, count_add, f64, grid_locate, i64, on_slot, rollup_emit,
    rollup_feed, rollup_init, slots_from, span, step_end, store_free, store_init, store_reserve,
    store_snapshot, as_i64, check_grid, check_length, u64,
)


def aggregate_bars(
    const i64[::1] ts,
    const f64[::1] open,
    const f64[::1] high,
    const f64[::1] low,
    const f64[::1] close,
    const f64[::1] volume,
    const i64[::1] g_open,
    const i64[::1] g_close,
    const i64[::1] g_base_slots,
    i64 step_ns,
    i64 base_ns,
    i64[::1] out_ts,
    f64[::1] out_open,
    f64[::1] out_high,
    f64[::1] out_low,
    f64[::1] out_close,
    f64[::1] out_volume,
    i64[::1] out_count,
    f64[::1] out_coverage,
):
    """Aggregate base bars into the buckets of a grid in one pass.

    Returns ``(n_out, fault, row)``: the number of derived bars written, and FAULT_NONE with
    row -1, or the fault code and the first input row that could not be placed (outside every
    window, off the base grid, out of order, or more buckets than ``out_*`` can hold).
    """
    cdef Py_ssize_t n = ts.shape[0], nw = g_open.shape[0], cap = out_ts.shape[0]
    cdef Py_ssize_t i, m = 0
    cdef GridCursor g
    cdef i64 t, prev, start = 0, end, expected = 1, origin = 0, wclose = 0
    cdef f64 o = 0, h = 0, lo = 0, c = 0, v = 0
    cdef i64 count = 0
    cdef i64 full_bucket = 0
    cdef int fault = FAULT_NONE
    cdef Py_ssize_t bad_row = -1
    for name, col in (("open", open), ("high", high), ("low", low), ("close", close),
                      ("volume", volume)):
        check_length(col.shape[0], n, name, "aggregate_bars")
    for name, col in (("out_open", out_open), ("out_high", out_high), ("out_low", out_low),
                      ("out_close", out_close), ("out_volume", out_volume),
                      ("out_count", out_count), ("out_coverage", out_coverage)):
        check_length(col.shape[0], cap, name, "aggregate_bars")
    check_grid(g_open, g_close, "aggregate_bars")
    check_length(g_base_slots.shape[0], nw, "g_base_slots", "aggregate_bars")
    if base_ns <= 0 or step_ns < 0 or (step_ns > 0 and step_ns % base_ns != 0):
        raise ValueError(f"aggregate_bars: bad steps: step_ns={step_ns}, base_ns={base_ns}")
    full_bucket = bucket_slots(0, step_ns, base_ns) if step_ns > 0 else 0
    if n == 0:
        return 0, FAULT_NONE, -1
    if nw == 0:
        return 0, FAULT_OUTSIDE, 0
    g.window = 0
    with nogil:
        # The first bar opens a bucket through the window search, whatever its sign.
        prev = ts[0]
        end = ts[0]
        wclose = ts[0]
        for i in range(n):
            t = ts[i]
            if t < end:
                # Same bucket: the hot path.  A bar one base step after the previous one is in
                # order and on the grid; only the others need checking.  (The difference is
                # taken modulo 2**64, so t > prev rules out a wrapped one.)
                if span(prev, t) != <u64> base_ns or t <= prev:
                    if t <= prev:
                        fault = FAULT_UNSORTED
                        bad_row = i
                        break
                    if step_ns > 0 and not on_slot(origin, base_ns, t):
                        fault = FAULT_MISALIGNED
                        bad_row = i
                        break
                # Written as selections so that they compile to max/min, not branches.
                h = high[i] if high[i] > h else h
                lo = low[i] if low[i] < lo else lo
                c = close[i]
                v += volume[i]
                count += 1
            else:
                if t <= prev and i > 0:
                    fault = FAULT_UNSORTED
                    bad_row = i
                    break
                if count > 0:
                    if m >= cap:
                        fault = FAULT_OVERFLOW
                        bad_row = i
                        break
                    out_ts[m] = start
                    out_open[m] = o
                    out_high[m] = h
                    out_low[m] = lo
                    out_close[m] = c
                    out_volume[m] = v
                    out_count[m] = count
                    out_coverage[m] = <f64> count / <f64> expected
                    m += 1
                if step_ns > 0 and end < wclose and t < wclose and span(end, t) < <u64> step_ns:
                    # The next bucket of the same window: no division unless a bar is missing.
                    start = end
                    end = step_end(start, step_ns, wclose)   # clipped before it passes int64
                    if t != start and not on_slot(origin, base_ns, t):
                        fault = FAULT_MISALIGNED
                        bad_row = i
                        break
                else:
                    if not grid_locate(&g, &g_open[0], &g_close[0], nw, step_ns, t):
                        fault = FAULT_OUTSIDE
                        bad_row = i
                        break
                    origin = g_open[g.window]
                    wclose = g_close[g.window]
                    # A session-wide bucket spans breaks, so its open is no base-grid origin:
                    # the caller checks such bars against the real windows instead.
                    if step_ns > 0 and not on_slot(origin, base_ns, t):
                        fault = FAULT_MISALIGNED
                        bad_row = i
                        break
                    start = g.slot_start
                    end = g.slot_end
                if step_ns <= 0:
                    expected = g_base_slots[g.window]
                elif end - start == step_ns:
                    expected = full_bucket
                else:
                    expected = bucket_slots(start, end, base_ns)
                o = open[i]
                h = high[i]
                lo = low[i]
                c = close[i]
                v = volume[i]
                count = 1
            prev = t
        if fault == FAULT_NONE and count > 0:
            if m >= cap:
                fault = FAULT_OVERFLOW
                bad_row = n - 1
            else:
                out_ts[m] = start
                out_open[m] = o
                out_high[m] = h
                out_low[m] = lo
                out_close[m] = c
                out_volume[m] = v
                out_count[m] = count
                out_coverage[m] = <f64> count / <f64> expected
                m += 1
    return m, fault, bad_row


def bucket_capacity(const i64[::1] g_open, const i64[::1] g_close, i64 step_ns,
                    i64 first_ns, i64 last_ns):
    """An upper bound on the buckets that bars between first_ns and last_ns can fill
    (saturated at the int64 maximum: a bound for an allocation)."""
    cdef Py_ssize_t w, nw = g_open.shape[0]
    cdef i64 total = 0
    cdef bint overflow = False
    check_grid(g_open, g_close, "bucket_capacity")
    with nogil:
        for w in range(nw):
            if g_close[w] <= first_ns:
                continue
            if g_open[w] > last_ns:
                break
            total = count_add(total, slots_from(g_open[w], g_close[w], step_ns), &overflow)
    return total


cdef class Aggregator:
    """Incremental aggregation: fed one base bar at a time, closes each derived bar as soon as
    its last base slot arrives (or a bar of a later bucket does), exactly as ``aggregate_bars``
    would have made it.

    Bars must be sound and in order (the Python layer validates); a bar that falls outside the
    grid raises ValueError and leaves the aggregator as it was.
    """
    cdef Rollup r
    cdef BarStore out
    cdef object _grid          # keeps the grid arrays alive: the Rollup points into them
    cdef public i64 last_ns
    cdef bint _fed             # a bar was fed (last_ns is then no "no bar yet" marker)

    def __cinit__(self):
        store_init(&self.out, True)

    def __init__(self, g_open, g_close, g_base_slots, i64 step_ns, i64 base_ns,
                 g_last_open=None):
        cdef const i64[::1] go = np.ascontiguousarray(g_open, dtype=np.int64)
        cdef const i64[::1] gc = np.ascontiguousarray(g_close, dtype=np.int64)
        cdef const i64[::1] gb = np.ascontiguousarray(g_base_slots, dtype=np.int64)
        cdef const i64[::1] gl = go if g_last_open is None else np.ascontiguousarray(
            g_last_open, dtype=np.int64)
        if go.shape[0] != gc.shape[0] or go.shape[0] != gb.shape[0] or go.shape[0] != gl.shape[0]:
            raise ValueError("grid arrays differ in length")
        if go.shape[0] == 0:
            raise ValueError("the grid has no window")
        check_grid(go, gc, "Aggregator")
        if base_ns <= 0 or step_ns < 0:
            raise ValueError(f"bad grid steps: step_ns={step_ns}, base_ns={base_ns}")
        self._grid = (go, gc, gb, gl)
        rollup_init(&self.r, &go[0], &gc[0], &gb[0], &gl[0], go.shape[0], step_ns, base_ns)
        self.last_ns = INT64_MIN

    def __dealloc__(self):
        store_free(&self.out)

    cpdef int update(self, i64 ts, f64 open, f64 high, f64 low, f64 close, f64 volume) except -1:
        """Feed one base bar; returns how many derived bars it closed (0, 1 or 2)."""
        cdef int closed
        if ts <= self.last_ns and (self._fed or ts != INT64_MIN):
            raise ValueError(f"bar at {ts} ns is not after the previous bar ({self.last_ns} ns)")
        closed = rollup_feed(&self.r, ts, open, high, low, close, volume, 1, &self.out)
        if closed < 0:
            if closed == -FAULT_OUTSIDE:
                raise ValueError(f"bar at {ts} ns lies outside every window of the grid")
            raise MemoryError("no memory left for derived bars")
        self.last_ns = ts
        self._fed = True
        return closed

    def update_many(self, ts, open, high, low, close, volume):
        """Feed arrays of base bars in one call (no Python per bar); returns bars closed."""
        cdef const i64[::1] t = as_i64(ts, "ts")
        cdef const f64[::1] o = np.ascontiguousarray(open, dtype=np.float64)
        cdef const f64[::1] h = np.ascontiguousarray(high, dtype=np.float64)
        cdef const f64[::1] lo = np.ascontiguousarray(low, dtype=np.float64)
        cdef const f64[::1] c = np.ascontiguousarray(close, dtype=np.float64)
        cdef const f64[::1] v = np.ascontiguousarray(volume, dtype=np.float64)
        cdef Py_ssize_t i, n = t.shape[0]
        cdef int rc = 0
        cdef i64 total = 0, last = self.last_ns
        cdef bint fed = self._fed
        if not (o.shape[0] == h.shape[0] == lo.shape[0] == c.shape[0] == v.shape[0] == n):
            raise ValueError("columns differ in length")
        if store_reserve(&self.out, self.out.n + n + 1) != 0:
            raise MemoryError("no memory left for derived bars")
        with nogil:
            for i in range(n):
                if t[i] <= last and (fed or t[i] != INT64_MIN):
                    rc = -FAULT_UNSORTED
                    break
                rc = rollup_feed(&self.r, t[i], o[i], h[i], lo[i], c[i], v[i], 1, &self.out)
                if rc < 0:
                    break
                total += rc
                last = t[i]
                fed = True
        self.last_ns = last
        self._fed = fed
        if rc < 0:
            raise ValueError(f"row {i}: bar at {t[i]} ns is "
                             + ("not after the previous bar" if rc == -FAULT_UNSORTED
                                else "outside every window of the grid"))
        return total

    def advance(self, i64 now_ns):
        """Close the bucket being built if it ended by now_ns; returns bars closed (0 or 1)."""
        if self.r.bucket.active and self.r.bucket.end <= now_ns:
            if rollup_emit(&self.r, &self.out) != 0:
                raise MemoryError("no memory left for derived bars")
            return 1
        return 0

    def flush(self):
        """Close the bucket being built, however partial; returns bars closed (0 or 1)."""
        if self.r.bucket.active:
            if rollup_emit(&self.r, &self.out) != 0:
                raise MemoryError("no memory left for derived bars")
            return 1
        return 0

    @property
    def pending(self):
        """How many closed derived bars wait to be drained."""
        return self.out.n

    def drain(self):
        """The closed derived bars since the last drain, as a dict of new NumPy arrays."""
        result = store_snapshot(&self.out, np)
        self.out.n = 0
        return result
