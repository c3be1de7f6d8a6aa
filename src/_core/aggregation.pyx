# Aggregation of base bars into derived intervals laid on a session grid.
#
# Inputs are sorted base bars (int64 ns open times, float64 prices) and a grid: the windows of
# the sessions, a step and the base interval.  Validation and policy live in Python; these
# loops only trust what they cannot afford to check and report the first row they cannot place.

cimport cython
from libc.stdint cimport INT64_MAX, INT64_MIN, uint8_t
from libc.stdlib cimport calloc, free

import numpy as np

from common cimport (
    FAULT_MISALIGNED, FAULT_NONE, FAULT_OUTSIDE, FAULT_OVERFLOW, FAULT_UNSORTED, BarStore,
    GridCursor, Rollup, bucket_slots, count_add, f64, grid_locate, i64, on_slot, rollup_emit,
    rollup_feed, rollup_init, slots_from, span, step_end, store_free, store_init, store_reserve,
    store_snapshot, as_i64, check_grid, check_length, u64,
)


# One derived interval being made by ``aggregate_grids``: its grid, its outputs and, between
# blocks of bars, the bucket being built.
cdef struct GridRun:
    i64 start           # the bucket's open, the derived bar's label
    i64 end             # its exclusive end (clipped to the window's close)
    i64 expected        # base slots the bucket holds
    i64 count           # base bars in it
    f64 open
    f64 high
    f64 low
    f64 close
    f64 volume
    i64 origin          # open of the bucket's window (the base grid's origin there)
    i64 wclose          # close of the bucket's window
    i64 step_ns
    i64 full_bucket     # base slots of a whole bucket
    bint done           # stopped at a fault: takes no more bars
    GridCursor g
    const i64* g_open
    const i64* g_close
    const i64* g_base_slots
    Py_ssize_t nw
    i64* out_ts
    f64* out_open
    f64* out_high
    f64* out_low
    f64* out_close
    f64* out_volume
    i64* out_count
    f64* out_coverage
    Py_ssize_t cap
    Py_ssize_t m        # derived bars written
    int fault
    Py_ssize_t bad_row


# Bars go to the derived intervals a block at a time: each interval's pass over a block reads
# bars the first pass brought into the cache (the columns are read from memory once), with
# its bucket held in registers (fed one bar at a time through a struct instead, the running
# sums chain through stores and loads).
cdef enum:
    BLOCK = 2048        # bars: ~100 KB of the six columns, held in L2 for every pass


cdef void run_block(GridRun* r, const i64* ts, const f64* open, const f64* high,
                    const f64* low, const f64* close, const f64* volume, Py_ssize_t i0,
                    Py_ssize_t i1, i64 base_ns) noexcept nogil:
    """Feed base bars ``i0 .. i1 - 1`` to one derived interval (``aggregate_bars``' loop,
    resumable: the bucket being built comes from and goes back to ``r``)."""
    cdef Py_ssize_t i, m = r.m, cap = r.cap
    cdef i64 t, prev = ts[i0 - 1] if i0 > 0 else ts[0]
    cdef i64 start = r.start, end = r.end, expected = r.expected, origin = r.origin
    cdef i64 wclose = r.wclose, count = r.count, step_ns = r.step_ns
    cdef i64 full_bucket = r.full_bucket
    cdef f64 o = r.open, h = r.high, lo = r.low, c = r.close, v = r.volume
    cdef int fault = FAULT_NONE
    cdef Py_ssize_t bad_row = -1
    for i in range(i0, i1):
        t = ts[i]
        if t < end:
            # Same bucket: the hot path.  A bar one base step after the previous one is in
            # order and on the grid; only the others need checking.  (The difference is taken
            # modulo 2**64, so t > prev rules out a wrapped one.)
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
                r.out_ts[m] = start
                r.out_open[m] = o
                r.out_high[m] = h
                r.out_low[m] = lo
                r.out_close[m] = c
                r.out_volume[m] = v
                r.out_count[m] = count
                r.out_coverage[m] = <f64> count / <f64> expected
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
                if not grid_locate(&r.g, r.g_open, r.g_close, r.nw, step_ns, t):
                    fault = FAULT_OUTSIDE
                    bad_row = i
                    break
                origin = r.g_open[r.g.window]
                wclose = r.g_close[r.g.window]
                # A session-wide bucket spans breaks, so its open is no base-grid origin: the
                # caller checks such bars against the real windows instead.
                if step_ns > 0 and not on_slot(origin, base_ns, t):
                    fault = FAULT_MISALIGNED
                    bad_row = i
                    break
                start = r.g.slot_start
                end = r.g.slot_end
            if step_ns <= 0:
                expected = r.g_base_slots[r.g.window]
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
    r.m = m
    r.start, r.end, r.expected, r.origin, r.wclose, r.count = (
        start, end, expected, origin, wclose, count)
    r.open, r.high, r.low, r.close, r.volume = o, h, lo, c, v
    if fault != FAULT_NONE:
        r.fault = fault
        r.bad_row = bad_row
        r.done = True


cdef void aggregate_runs(const i64* ts, const f64* open, const f64* high, const f64* low,
                         const f64* close, const f64* volume, Py_ssize_t n, i64 base_ns,
                         GridRun* runs, Py_ssize_t k_runs) noexcept nogil:
    """The one pass: the base bars, block by block, to each derived interval in turn (each
    takes every bar in order and sums as a pass of its own would, so its floats are those of
    a pass of its own, and stops at its own first fault).  Requires n > 0 and at least one
    window per grid."""
    cdef Py_ssize_t i0, i1, k, active = k_runs
    cdef GridRun* r
    for k in range(k_runs):
        r = &runs[k]
        # The first bar opens a bucket through the window search, whatever its sign.
        r.end = ts[0]
        r.wclose = ts[0]
        r.start = 0
        r.origin = 0
        r.expected = 1
        r.count = 0
        r.open = r.high = r.low = r.close = r.volume = 0
        r.m = 0
        r.fault = FAULT_NONE
        r.bad_row = -1
        r.done = False
        r.g.window = 0
        r.full_bucket = bucket_slots(0, r.step_ns, base_ns) if r.step_ns > 0 else 0
    i0 = 0
    while i0 < n and active > 0:
        i1 = i0 + BLOCK if n - i0 > BLOCK else n
        for k in range(k_runs):
            r = &runs[k]
            if not r.done:
                run_block(r, ts, open, high, low, close, volume, i0, i1, base_ns)
                if r.done:
                    active -= 1
        i0 = i1
    for k in range(k_runs):
        r = &runs[k]
        if r.done or r.count == 0:
            continue
        if r.m >= r.cap:
            r.fault = FAULT_OVERFLOW
            r.bad_row = n - 1
            continue
        r.out_ts[r.m] = r.start
        r.out_open[r.m] = r.open
        r.out_high[r.m] = r.high
        r.out_low[r.m] = r.low
        r.out_close[r.m] = r.close
        r.out_volume[r.m] = r.volume
        r.out_count[r.m] = r.count
        r.out_coverage[r.m] = <f64> r.count / <f64> r.expected
        r.m += 1


cdef inline const i64* ptr_i64(const i64[::1] a) noexcept:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline const f64* ptr_f64(const f64[::1] a) noexcept:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline i64* out_i64(i64[::1] a) noexcept:
    return &a[0] if a.shape[0] > 0 else NULL


cdef inline f64* out_f64(f64[::1] a) noexcept:
    return &a[0] if a.shape[0] > 0 else NULL


def aggregate_grids(
    const i64[::1] ts,
    const f64[::1] open,
    const f64[::1] high,
    const f64[::1] low,
    const f64[::1] close,
    const f64[::1] volume,
    grids,
    outs,
    i64 base_ns,
):
    """Aggregate base bars into the buckets of several grids (one per derived interval) in
    one pass over the bars.

    ``grids`` holds ``(g_open, g_close, g_base_slots, step_ns)`` per derived interval and
    ``outs`` its eight output columns (``ts, open, high, low, close, volume, count,
    coverage``), int64 and float64 as those of ``aggregate_bars``.  Each interval is made as
    a pass of its own would make it (its bars summed in the same order: bit for bit the same
    floats) and stops at its own first fault.  Returns ``[(n_out, fault, row), ...]``, one
    per grid, as ``aggregate_bars`` returns for that grid alone.
    """
    cdef Py_ssize_t n = ts.shape[0], k, k_runs = len(grids), nw, cap
    cdef GridRun* runs
    cdef GridRun* r
    cdef const i64[::1] go
    cdef const i64[::1] gc
    cdef const i64[::1] gb
    cdef i64[::1] o_ts
    cdef f64[::1] o_open
    cdef f64[::1] o_high
    cdef f64[::1] o_low
    cdef f64[::1] o_close
    cdef f64[::1] o_volume
    cdef i64[::1] o_count
    cdef f64[::1] o_coverage
    cdef i64 step_ns
    cdef list held = []       # the buffers the runs point into, held until the pass is done
    cdef list result
    cdef Py_ssize_t j, n_fed = 0
    for name, col in (("open", open), ("high", high), ("low", low), ("close", close),
                      ("volume", volume)):
        check_length(col.shape[0], n, name, "aggregate_grids")
    if len(outs) != k_runs:
        raise ValueError(f"aggregate_grids: {k_runs} grids but {len(outs)} sets of outputs")
    if base_ns <= 0:
        raise ValueError(f"aggregate_grids: bad steps: base_ns={base_ns}")
    runs = <GridRun*> calloc(k_runs if k_runs > 0 else 1, sizeof(GridRun))
    if runs == NULL:
        raise MemoryError("aggregate_grids: no memory for the runs")
    try:
        result = [None] * k_runs
        for k in range(k_runs):
            g_open, g_close, g_base_slots, step_ns = grids[k]
            go, gc, gb = g_open, g_close, g_base_slots
            nw = go.shape[0]
            check_grid(go, gc, "aggregate_grids")
            check_length(gb.shape[0], nw, "g_base_slots", "aggregate_grids")
            if step_ns < 0 or (step_ns > 0 and step_ns % base_ns != 0):
                raise ValueError(f"aggregate_grids: bad steps: step_ns={step_ns}, "
                                 f"base_ns={base_ns}")
            out = outs[k]
            if len(out) != 8:
                raise ValueError(f"aggregate_grids: grid {k} has {len(out)} output columns, "
                                 "expected 8")
            o_ts, o_open, o_high, o_low, o_close, o_volume, o_count, o_coverage = out
            cap = o_ts.shape[0]
            for name, length in (("out_open", o_open.shape[0]), ("out_high", o_high.shape[0]),
                                 ("out_low", o_low.shape[0]), ("out_close", o_close.shape[0]),
                                 ("out_volume", o_volume.shape[0]),
                                 ("out_count", o_count.shape[0]),
                                 ("out_coverage", o_coverage.shape[0])):
                check_length(length, cap, name, "aggregate_grids")
            held.append((go, gc, gb, o_ts, o_open, o_high, o_low, o_close, o_volume, o_count,
                         o_coverage))
            if n == 0:
                result[k] = (0, FAULT_NONE, -1)
                continue
            if nw == 0:
                result[k] = (0, FAULT_OUTSIDE, 0)
                continue
            r = &runs[n_fed]
            r.step_ns = step_ns
            r.g_open, r.g_close, r.g_base_slots, r.nw = ptr_i64(go), ptr_i64(gc), ptr_i64(gb), nw
            r.out_ts, r.out_count = out_i64(o_ts), out_i64(o_count)
            r.out_open, r.out_high, r.out_low = out_f64(o_open), out_f64(o_high), out_f64(o_low)
            r.out_close, r.out_volume = out_f64(o_close), out_f64(o_volume)
            r.out_coverage = out_f64(o_coverage)
            r.cap = cap
            n_fed += 1
        fed = [k for k in range(k_runs) if result[k] is None]
        if n_fed:
            with nogil:
                aggregate_runs(&ts[0], &open[0], &high[0], &low[0], &close[0], &volume[0], n,
                               base_ns, runs, n_fed)
        for j in range(n_fed):
            r = &runs[j]
            result[fed[j]] = (r.m, r.fault, r.bad_row)
        return result
    finally:
        free(runs)


def aggregate_bars(
    ts,
    open,
    high,
    low,
    close,
    volume,
    g_open,
    g_close,
    g_base_slots,
    i64 step_ns,
    i64 base_ns,
    out_ts,
    out_open,
    out_high,
    out_low,
    out_close,
    out_volume,
    out_count,
    out_coverage,
):
    """Aggregate base bars into the buckets of one grid in one pass (``aggregate_grids`` with
    one grid).

    Returns ``(n_out, fault, row)``: the number of derived bars written, and FAULT_NONE with
    row -1, or the fault code and the first input row that could not be placed (outside every
    window, off the base grid, out of order, or more buckets than ``out_*`` can hold).
    """
    if base_ns <= 0 or step_ns < 0 or (step_ns > 0 and step_ns % base_ns != 0):
        raise ValueError(f"aggregate_bars: bad steps: step_ns={step_ns}, base_ns={base_ns}")
    return aggregate_grids(
        ts, open, high, low, close, volume, ((g_open, g_close, g_base_slots, step_ns),),
        ((out_ts, out_open, out_high, out_low, out_close, out_volume, out_count,
          out_coverage),), base_ns)[0]


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
