# Shared C types and inline helpers of the kernels.
#
# Found at compile time through cythonize(include_path=["src/_core"]); nothing here is imported
# at run time, so every module that cimports it gets its own inlined copy of these helpers.
#
# Vocabulary: a *window* is one [open, close) span of a session; a *grid* is the set of windows
# an interval is laid on, with a step; a *slot* (or *bucket*, for a derived interval) is one
# [start, end) step of a window, aligned to the window's open, and the last slot of a window may
# be short.  step_ns == 0 means "the whole window is one slot" (the daily bar of a session).

from libc.math cimport isfinite
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint64_t, uint8_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memmove

ctypedef int64_t i64
ctypedef uint64_t u64
ctypedef double f64

# Timestamps may lie anywhere in int64, so spans between them need not fit one (a window over
# the whole range is 2**64 - 1 ns long).  Spans and offsets are therefore taken as u64 (exact for
# hi >= lo: conversion to unsigned is modulo 2**64), a slot's end is clipped to its window's
# close before it can pass int64, and counts that int64 cannot hold are reported, not wrapped.
# INT64_MIN is libc's: the literal -(2 ** 63) makes C compilers warn ("so large that it is
# unsigned").

# Why a bar was rejected.  The numbers are part of the Python API (sessiondata._core.FAULTS).
cdef enum:
    FAULT_NONE = 0
    FAULT_NONFINITE = 1     # open/high/low/close is NaN or infinite
    FAULT_HIGH_LOW = 2      # high below open/close/low, or low above open/close
    FAULT_VOLUME = 3        # volume negative, NaN or infinite
    FAULT_UNSORTED = 4      # timestamp earlier than the previous accepted bar
    FAULT_DUPLICATE = 5     # timestamp equal to the previous accepted bar
    FAULT_OUTSIDE = 6       # timestamp outside every session window
    FAULT_MISALIGNED = 7    # timestamp not on the base-interval grid of its window
    FAULT_OVERFLOW = 8      # more output than the caller allocated (never on valid input)
    FAULT_LATE = 9          # its derived bar was already closed (advance or flush)
    N_FAULTS = 10


cdef inline i64 floor_div(i64 a, i64 b) noexcept nogil:
    """Floor division for b > 0 (C division truncates towards zero)."""
    cdef i64 q = a // b
    if (a % b != 0) and (a < 0):
        q -= 1
    return q


cdef inline i64 ceil_div(i64 a, i64 b) noexcept nogil:
    """Ceiling division for b > 0, a of either sign (no a + b - 1 that could overflow; C
    division truncates towards zero, which is the ceiling below zero)."""
    return a // b + (1 if a % b != 0 and a > 0 else 0)


cdef inline u64 span(i64 lo, i64 hi) noexcept nogil:
    """hi - lo for hi >= lo, exact even where it does not fit an int64."""
    return <u64> hi - <u64> lo


cdef inline u64 ceil_div_u(u64 a, u64 b) noexcept nogil:
    """Ceiling division for b > 0."""
    return a // b + (1 if a % b != 0 else 0)


cdef inline i64 add_sat(i64 a, i64 b) noexcept nogil:
    """a + b for b >= 0, saturated at INT64_MAX."""
    return a + b if a <= INT64_MAX - b else INT64_MAX


cdef inline i64 sub_sat(i64 a, i64 b) noexcept nogil:
    """a - b for b >= 0, saturated at INT64_MIN."""
    return a - b if a >= INT64_MIN + b else INT64_MIN


cdef inline i64 step_end(i64 start, i64 step, i64 close) noexcept nogil:
    """min(start + step, close) for start < close, step > 0, without overflow."""
    if span(start, close) <= <u64> step:
        return close
    return start + step


cdef inline i64 slot_floor(i64 origin, i64 step, i64 t) noexcept nogil:
    """The start of the step-long slot from origin that holds t (t >= origin, step > 0)."""
    cdef u64 off = span(origin, t)
    return <i64> (<u64> origin + (off - off % <u64> step))


cdef inline bint on_slot(i64 origin, i64 step, i64 t) noexcept nogil:
    """Whether t is the start of a step-long slot from origin (t >= origin, step > 0)."""
    return span(origin, t) % <u64> step == 0


cdef inline i64 bucket_slots(i64 start, i64 end, i64 base_ns) noexcept nogil:
    """How many base slots the bucket [start, end) of a window holds (end clipped to the
    close, so the last bucket of a window may hold fewer; end - start <= step fits int64)."""
    return ceil_div(end - start, base_ns)


cdef inline u64 slots_from(i64 start, i64 close, i64 step_ns) noexcept nogil:
    """Slots from start (a slot start) to the window's close: the whole window is one slot
    when step_ns <= 0.  May exceed int64 (one-ns slots over the whole range)."""
    if start >= close:
        return 0
    if step_ns <= 0:
        return 1
    return ceil_div_u(span(start, close), <u64> step_ns)


cdef inline i64 slots_in_window(i64 open_ns, i64 close_ns, i64 step_ns) noexcept nogil:
    """How many slots a window holds (the last one may be short), saturated at INT64_MAX."""
    cdef u64 k = slots_from(open_ns, close_ns, step_ns)
    return <i64> k if k <= <u64> INT64_MAX else INT64_MAX


cdef inline i64 count_add(i64 total, u64 k, bint* overflow) noexcept nogil:
    """total + k for total >= 0, or INT64_MAX with overflow set when int64 cannot hold it."""
    if k > <u64> (INT64_MAX - total):
        overflow[0] = True
        return INT64_MAX
    return total + <i64> k


cdef inline uint8_t price_fault(f64 o, f64 h, f64 l, f64 c, f64 v,
                                bint volume_optional) noexcept nogil:
    """The first fault of a bar's prices and volume, FAULT_NONE when it is sound.

    ``volume_optional``: the bars have no volume (quotes, indices), held as NaN; NaN volume
    is then no fault (a negative or infinite one still is)."""
    if not (isfinite(o) and isfinite(h) and isfinite(l) and isfinite(c)):
        return FAULT_NONFINITE
    if h < o or h < c or h < l or l > o or l > c:
        return FAULT_HIGH_LOW
    if not (v >= 0.0) or not isfinite(v):     # negative, NaN or infinite
        if not (volume_optional and v != v):
            return FAULT_VOLUME
    return FAULT_NONE


# One derived bar being built.  What a bar inside the bucket reads and writes comes first:
# one cache line when the bucket is (see Rollup).
cdef struct Bucket:
    i64 end             # exclusive end, clipped to the window's close
    i64 close_at        # a fed bar starting here or later completes the bucket
    i64 count           # base bars seen
    f64 high
    f64 low
    f64 close
    f64 volume
    bint active
    i64 start           # bucket open, the derived bar's label
    i64 expected        # base slots the bucket holds
    f64 open


cdef inline void bucket_begin(Bucket* b, i64 start, i64 end, i64 expected,
                              f64 o, f64 h, f64 l, f64 c, f64 v, i64 count) noexcept nogil:
    b.start = start
    b.end = end
    b.expected = expected
    b.count = count
    b.open = o
    b.high = h
    b.low = l
    b.close = c
    b.volume = v
    b.active = True


cdef inline void bucket_add(Bucket* b, f64 h, f64 l, f64 c, f64 v, i64 count) noexcept nogil:
    if h > b.high:
        b.high = h
    if l < b.low:
        b.low = l
    b.close = c
    b.volume += v
    b.count += count


# Where a timestamp falls on a grid: found by walking the windows forward (inputs are sorted,
# so a whole sequence costs one pass over the windows).  Grids are passed as raw pointers so
# that cdef classes can keep several of them; callers guarantee n_windows > 0 or never call.
cdef struct GridCursor:
    Py_ssize_t window   # current window index
    i64 slot_start      # the slot found by the last successful grid_locate
    i64 slot_end        # its exclusive end, clipped to the window's close


cdef inline bint grid_locate(GridCursor* g, const i64* g_open, const i64* g_close,
                             Py_ssize_t n_windows, i64 step_ns, i64 t) noexcept nogil:
    """Move the cursor to the slot holding t; False when t lies outside every window."""
    cdef Py_ssize_t w = g.window
    cdef i64 step
    while w < n_windows and t >= g_close[w]:
        w += 1
    g.window = w
    if w >= n_windows or t < g_open[w]:
        return False
    if step_ns <= 0:
        g.slot_start = g_open[w]
        g.slot_end = g_close[w]
    else:
        g.slot_start = slot_floor(g_open[w], step_ns, t)
        g.slot_end = step_end(g.slot_start, step_ns, g_close[w])
    return True


# Missing slots, found by walking expected slots alongside present ones.
cdef struct GapWalker:
    Py_ssize_t window   # window of next_slot
    i64 next_slot       # first expected slot not yet accounted for
    i64 present         # present slots so far
    i64 missing         # missing slots so far
    i64 runs            # gap runs so far
    bint overflow       # more missing slots than int64 holds (missing is then INT64_MAX)


cdef inline void walker_start(GapWalker* s, const i64* g_open, Py_ssize_t n_windows) noexcept nogil:
    s.window = 0
    s.next_slot = g_open[0] if n_windows > 0 else 0
    s.missing = 0
    s.runs = 0
    s.present = 0
    s.overflow = False


cdef inline Py_ssize_t walker_run(GapWalker* s, i64 start, u64 n_slots, i64* run_start,
                                  i64* run_count, Py_ssize_t n_runs, Py_ssize_t cap) noexcept nogil:
    """Record a run of n_slots missing slots from start; returns the new run count."""
    s.missing = count_add(s.missing, n_slots, &s.overflow)
    s.runs += 1
    if run_start != NULL and n_runs < cap:
        run_start[n_runs] = start
        run_count[n_runs] = count_add(0, n_slots, &s.overflow)
    return n_runs + 1


cdef inline Py_ssize_t walker_step_to(GapWalker* s, const i64* g_open, const i64* g_close,
                                      Py_ssize_t n_windows, i64 step_ns, i64 t,
                                      i64* run_start, i64* run_count, Py_ssize_t n_runs,
                                      Py_ssize_t cap, int* fault) noexcept nogil:
    """Account for the present slot starting at t and every missing slot before it.

    t must be later than every slot stepped to before.  Sets fault to FAULT_OUTSIDE or
    FAULT_MISALIGNED (and leaves the walker unusable) when t is not a slot start inside a
    window.  Returns the new run count (runs are written while they fit under cap).
    """
    cdef Py_ssize_t w = s.window
    while w < n_windows and t >= g_close[w]:
        if s.next_slot < g_close[w]:
            n_runs = walker_run(s, s.next_slot, slots_from(s.next_slot, g_close[w], step_ns),
                                run_start, run_count, n_runs, cap)
        w += 1
        if w < n_windows:
            s.next_slot = g_open[w]
    s.window = w
    if w >= n_windows or t < g_open[w]:
        fault[0] = FAULT_OUTSIDE
        return n_runs
    if t != s.next_slot:
        # Off the common path (a gap): the only place that needs a division.
        if step_ns <= 0 or not on_slot(g_open[w], step_ns, t):
            fault[0] = FAULT_MISALIGNED
            return n_runs
        n_runs = walker_run(s, s.next_slot, span(s.next_slot, t) // <u64> step_ns,
                            run_start, run_count, n_runs, cap)
    s.present += 1
    # The slot's end, clipped to the close (never past int64): the same next slot as t + step
    # for every later bar, since none of this window lies at or beyond the close.
    s.next_slot = g_close[w] if step_ns <= 0 else step_end(t, step_ns, g_close[w])
    return n_runs


cdef inline Py_ssize_t walker_finish(GapWalker s, const i64* g_open, const i64* g_close,
                                     Py_ssize_t n_windows, i64 step_ns, i64 until_ns,
                                     i64* run_start, i64* run_count, Py_ssize_t n_runs,
                                     Py_ssize_t cap, GapWalker* out) noexcept nogil:
    """Account for the missing slots that have closed by until_ns, without moving the walker.

    The walker is taken by value: the caller's state is untouched, the final state goes to out.
    Returns the new run count.
    """
    cdef Py_ssize_t w = s.window
    cdef u64 k
    while w < n_windows:
        if g_close[w] <= until_ns:
            if s.next_slot < g_close[w]:
                n_runs = walker_run(&s, s.next_slot, slots_from(s.next_slot, g_close[w], step_ns),
                                    run_start, run_count, n_runs, cap)
            w += 1
            if w < n_windows:
                s.next_slot = g_open[w]
            continue
        # Window still open at until_ns: only its whole slots that ended by then count (a
        # session slot, step_ns <= 0, ends at the close: none).
        if until_ns > s.next_slot and step_ns > 0:
            k = span(s.next_slot, until_ns) // <u64> step_ns
            if k > 0:
                n_runs = walker_run(&s, s.next_slot, k, run_start, run_count, n_runs, cap)
        break
    s.window = w
    out[0] = s
    return n_runs


cdef inline i64 expected_slots(const i64* g_open, const i64* g_close, Py_ssize_t n_windows,
                               i64 step_ns, i64 until_ns, bint* overflow) noexcept nogil:
    """Slots of the grid that have closed by until_ns (overflow set when int64 cannot hold
    them)."""
    cdef Py_ssize_t w
    cdef i64 total = 0
    for w in range(n_windows):
        if g_open[w] >= until_ns:
            break
        if g_close[w] <= until_ns:
            total = count_add(total, slots_from(g_open[w], g_close[w], step_ns), overflow)
        elif step_ns > 0:
            total = count_add(total, span(g_open[w], until_ns) // <u64> step_ns, overflow)
    return total


# One bar of a store.  A base store's rows are its first 48 bytes (no count, no coverage);
# a derived store's rows are all 64.
cdef struct BarRow:
    i64 ts
    f64 open
    f64 high
    f64 low
    f64 close
    f64 volume
    i64 count
    f64 coverage


# A growable store of bars in C memory, one row per bar (amortised appends, no Python object
# per bar).  Row-major, not one block per column: a live session appends to hundreds of
# stores in turn, and a bar's fields in one row keep one cache line per store current
# (six or eight, one per column, did not fit the core's cache at 700 symbols: issue 21).
# Snapshots are columns (store_snapshot).  Rows start 64-byte aligned, so that a derived row
# is exactly one cache line.  count/coverage exist only for derived bars (with_counts).
cdef struct BarStore:
    char* rows              # row 0: block rounded up to 64 bytes
    Py_ssize_t n
    Py_ssize_t cap
    Py_ssize_t stride       # bytes per row: 48, or 64 with counts
    bint with_counts
    bint pooled             # block is from stream.pyx's huge-page pool: its owner frees it
    char* block             # the allocation (NULL: none)
    Py_ssize_t max_rows     # rows it can ever need (a session's slots), 0 when unknown


cdef inline BarRow* store_row(BarStore* s, Py_ssize_t i) noexcept nogil:
    """Row i of a store (within its capacity); count and coverage only with counts."""
    return <BarRow*> (s.rows + i * s.stride)


cdef inline void store_init(BarStore* s, bint with_counts) noexcept nogil:
    s.rows = NULL
    s.block = NULL
    s.n = 0
    s.cap = 0
    s.max_rows = 0
    s.pooled = False
    s.with_counts = with_counts
    s.stride = sizeof(BarRow) if with_counts else 6 * 8


cdef inline void store_free(BarStore* s) noexcept nogil:
    if s.pooled:
        return      # (its owner gives a pooled block back; never reached otherwise)
    free(s.block)
    cdef Py_ssize_t max_rows = s.max_rows
    store_init(s, s.with_counts)
    s.max_rows = max_rows


cdef inline int store_resize(BarStore* s, Py_ssize_t cap) noexcept nogil:
    """Set the capacity to cap rows (cap >= s.n); -1 when memory ran out (nothing is lost)."""
    cdef Py_ssize_t old_off = s.rows - s.block if s.block != NULL else 0, new_off
    cdef char* q
    if s.pooled:
        return -1   # a pooled store holds its session's slots: never grown (see stream.pyx)
    if cap < 1:
        cap = 1
    q = <char*> realloc(s.block, cap * s.stride + 63)
    if q == NULL:
        return -1
    # realloc keeps the bytes, not the alignment: move the rows to the new block's boundary.
    new_off = <Py_ssize_t> ((0 - <size_t> q) & 63)
    if new_off != old_off and s.n > 0:
        memmove(q + new_off, q + old_off, s.n * s.stride)
    s.block = q
    s.rows = q + new_off
    s.cap = cap
    return 0


cdef inline int store_reserve(BarStore* s, Py_ssize_t need) noexcept nogil:
    """Make room for need rows in all, growing by an eighth at least (amortised appends
    with at most 12.5 % slack, so memory stays close to the bytes held)."""
    cdef Py_ssize_t cap
    if need <= s.cap:
        return 0
    cap = s.cap + s.cap // 8 + 64
    if s.max_rows > 0 and cap > s.max_rows:
        cap = s.max_rows        # never more rows than the session has slots
    if cap < need:
        cap = need
    return store_resize(s, cap)


cdef inline void store_set(BarStore* s, Py_ssize_t i, i64 t, f64 o, f64 h, f64 l, f64 c,
                           f64 v, i64 count, f64 coverage) noexcept nogil:
    """Write bar ``i`` of a store (within its capacity)."""
    cdef BarRow* r = store_row(s, i)
    r.ts = t
    r.open = o
    r.high = h
    r.low = l
    r.close = c
    r.volume = v
    if s.with_counts:
        r.count = count
        r.coverage = coverage


cdef inline int store_push(BarStore* s, i64 t, f64 o, f64 h, f64 l, f64 c, f64 v,
                           i64 count, f64 coverage) noexcept nogil:
    """Append one bar; -1 when memory ran out (the store is unchanged)."""
    cdef Py_ssize_t i = s.n
    if i >= s.cap and store_reserve(s, i + 1) != 0:
        return -1
    store_set(s, i, t, o, h, l, c, v, count, coverage)
    s.n = i + 1
    return 0


cdef inline Py_ssize_t store_nbytes(BarStore* s) noexcept nogil:
    """Bytes allocated for rows (each allocation also holds up to 63 bytes that align them,
    not counted: a fixed cost per store, not per bar)."""
    return s.cap * s.stride


# An incremental aggregator's state: a grid, a cursor on it, the bucket being built.  The
# bucket first: in an array of roll-ups aligned to 64 bytes (SymbolStream's), a bar inside a
# bucket touches one cache line.  256 bytes, four lines.
cdef struct Rollup:
    Bucket bucket
    i64 closed_until          # end of the last bucket closed: a bar before it is late
    GridCursor cursor
    i64 step_ns
    i64 base_ns
    i64 feed_step             # step of the bars fed in: base_ns, or a finer derived interval
    const i64* g_open
    const i64* g_close
    const i64* g_base_slots   # base slots per grid window (used when step_ns == 0)
    const i64* g_last_open    # open of the last base window inside each grid window
    Py_ssize_t n_windows
    GapWalker gaps            # gap accounting of the emitted (derived) bars
    i64 _pad[3]


cdef inline i64 bucket_expected(Rollup* r) noexcept nogil:
    """Base slots in the bucket the cursor points at."""
    if r.step_ns <= 0:
        return r.g_base_slots[r.cursor.window]
    return bucket_slots(r.cursor.slot_start, r.cursor.slot_end, r.base_ns)


cdef inline int rollup_emit(Rollup* r, BarStore* out) noexcept nogil:
    """Close the bucket being built: append it to out and account for it in the gap walker."""
    cdef Bucket* b = &r.bucket
    cdef int fault = FAULT_NONE    # bucket starts are slot starts: no fault can arise
    if not b.active:
        return 0
    b.active = False
    r.closed_until = b.end
    walker_step_to(&r.gaps, r.g_open, r.g_close, r.n_windows, r.step_ns, b.start,
                   NULL, NULL, 0, 0, &fault)
    return store_push(out, b.start, b.open, b.high, b.low, b.close, b.volume, b.count,
                      <f64> b.count / <f64> b.expected)


cdef inline i64 bucket_close_at(Rollup* r) noexcept nogil:
    """Where the last fed slot of the bucket being built starts: fed bars are aligned to the
    open of their own window, which for a session bucket is its last window, after breaks."""
    cdef i64 last_open
    if r.step_ns > 0:
        return sub_sat(r.bucket.end, r.feed_step)
    last_open = r.g_last_open[r.cursor.window]
    return slot_floor(last_open, r.feed_step, r.bucket.end - 1)


cdef inline int rollup_feed(Rollup* r, i64 t, f64 o, f64 h, f64 l, f64 c, f64 v,
                            i64 count, BarStore* out) noexcept nogil:
    """Feed one sound, in-order bar holding ``count`` base bars: a base bar (count 1), or a
    closed bar of a finer interval whose buckets nest in this one's (``r.feed_step``).
    Returns the number of derived bars closed (0, 1 or 2), -FAULT_OUTSIDE when t lies
    outside the grid, or -FAULT_OVERFLOW when memory ran out.

    A derived bar closes when the bar that covers its last slot arrives, or when a bar of a
    later bucket does.
    """
    cdef int closed = 0
    cdef Bucket* b = &r.bucket
    cdef GridCursor probe
    if b.active and t < b.end:
        bucket_add(b, h, l, c, v, count)
    else:
        # Locate on a copy: a bar outside the grid must leave the cursor where it was, or a
        # later, valid bar of an earlier window would no longer be found.
        probe = r.cursor
        if not grid_locate(&probe, r.g_open, r.g_close, r.n_windows, r.step_ns, t):
            return -FAULT_OUTSIDE
        r.cursor = probe
        if b.active:
            if rollup_emit(r, out) != 0:
                return -FAULT_OVERFLOW
            closed += 1
        bucket_begin(b, r.cursor.slot_start, r.cursor.slot_end, bucket_expected(r), o, h, l, c, v,
                     count)
        b.close_at = bucket_close_at(r)
    if t >= b.close_at:
        if rollup_emit(r, out) != 0:
            return -FAULT_OVERFLOW
        closed += 1
    return closed


cdef inline void rollup_init(Rollup* r, const i64* g_open, const i64* g_close,
                             const i64* g_base_slots, const i64* g_last_open,
                             Py_ssize_t n_windows, i64 step_ns, i64 base_ns) noexcept nogil:
    r.g_open = g_open
    r.g_close = g_close
    r.g_base_slots = g_base_slots
    r.g_last_open = g_last_open
    r.n_windows = n_windows
    r.step_ns = step_ns
    r.base_ns = base_ns
    r.feed_step = base_ns
    r.cursor.window = 0
    r.cursor.slot_start = 0
    r.cursor.slot_end = 0
    r.bucket.active = False
    r.closed_until = INT64_MIN
    walker_start(&r.gaps, g_open, n_windows)


cdef inline dict store_snapshot(BarStore* s, object np):
    """New NumPy arrays holding the bars of the store, one per field (np is the numpy
    module)."""
    cdef Py_ssize_t n = s.n, i
    cdef dict result = {
        "ts": np.empty(n, np.int64), "open": np.empty(n, np.float64),
        "high": np.empty(n, np.float64), "low": np.empty(n, np.float64),
        "close": np.empty(n, np.float64), "volume": np.empty(n, np.float64),
    }
    if s.with_counts:
        result["count"] = np.empty(n, np.int64)
        result["coverage"] = np.empty(n, np.float64)
    if n == 0:
        return result
    cdef i64[::1] ts = result["ts"]
    cdef f64[::1] o = result["open"], h = result["high"], lo = result["low"]
    cdef f64[::1] c = result["close"], v = result["volume"]
    cdef i64[::1] cnt
    cdef f64[::1] cov
    cdef BarRow* r
    with nogil:
        for i in range(n):
            r = store_row(s, i)
            ts[i] = r.ts
            o[i] = r.open
            h[i] = r.high
            lo[i] = r.low
            c[i] = r.close
            v[i] = r.volume
    if s.with_counts:
        cnt = result["count"]
        cov = result["coverage"]
        with nogil:
            for i in range(n):
                r = store_row(s, i)
                cnt[i] = r.count
                cov[i] = r.coverage
    return result


cdef inline int store_append(BarStore* s, const i64* ts, const f64* o, const f64* h,
                             const f64* l, const f64* c, const f64* v,
                             Py_ssize_t n) noexcept nogil:
    """Append n base bars (no counts) from columns; -1 when memory ran out."""
    cdef Py_ssize_t i = s.n, j
    cdef BarRow* r
    if n <= 0:
        return 0
    if i + n > s.cap and store_reserve(s, i + n) != 0:
        return -1
    for j in range(n):
        r = store_row(s, i + j)
        r.ts = ts[j]
        r.open = o[j]
        r.high = h[j]
        r.low = l[j]
        r.close = c[j]
        r.volume = v[j]
    s.n = i + n
    return 0


cdef inline int rollup_run(Rollup* r, const i64* ts, const f64* o, const f64* h,
                           const f64* l, const f64* c, const f64* v, const i64* counts,
                           Py_ssize_t n, Py_ssize_t step, BarStore* out) noexcept nogil:
    """Feed n sound, in-order bars (``counts`` NULL for base bars) exactly as n calls of
    ``rollup_feed`` would, with the bucket held in locals between emissions.  Bar i's fields
    are ``ts[i * step]``, ``o[i * step]``, ...: step 1 for columns, a store's stride in
    8-byte words for its rows.  Returns the number of derived bars closed, or a negative
    fault as ``rollup_feed`` does."""
    cdef Bucket* b = &r.bucket
    cdef bint active = b.active
    cdef i64 end = b.end, count = b.count, close_at = b.close_at, t, k
    cdef f64 hi = b.high, lo = b.low, cl = b.close, vol = b.volume
    cdef Py_ssize_t i, j
    cdef int closed = 0, rc
    for i in range(n):
        j = i * step
        t = ts[j]
        k = counts[j] if counts != NULL else 1
        if active and t < end:
            hi = h[j] if h[j] > hi else hi
            lo = l[j] if l[j] < lo else lo
            cl = c[j]
            vol += v[j]
            count += k
        else:
            # Hand the locals back, then let rollup_feed open (and maybe close) buckets.
            b.high = hi
            b.low = lo
            b.close = cl
            b.volume = vol
            b.count = count
            rc = rollup_feed(r, t, o[j], h[j], l[j], c[j], v[j], k, out)
            if rc < 0:
                return rc
            closed += rc
            active = b.active
            end = b.end
            close_at = b.close_at
            count = b.count
            hi = b.high
            lo = b.low
            cl = b.close
            vol = b.volume
            continue
        if t >= close_at:
            b.high = hi
            b.low = lo
            b.close = cl
            b.volume = vol
            b.count = count
            if rollup_emit(r, out) != 0:
                return -FAULT_OVERFLOW
            closed += 1
            active = False
    if active:
        b.high = hi
        b.low = lo
        b.close = cl
        b.volume = vol
        b.count = count
    return closed


# Argument checks of the kernels' Python entry points: wrong shapes are a ValueError, never a
# read or a write out of bounds.
cdef inline int check_grid(const i64[::1] g_open, const i64[::1] g_close,
                           str what) except -1:
    """Windows: as many closes as opens, each window non-empty, sorted, not overlapping."""
    cdef Py_ssize_t w, n = g_open.shape[0]
    if g_close.shape[0] != n:
        raise ValueError(f"{what}: window opens and closes differ in length "
                         f"({n} opens, {g_close.shape[0]} closes)")
    for w in range(n):
        if g_close[w] <= g_open[w]:
            raise ValueError(f"{what}: window {w} is empty ([{g_open[w]}, {g_close[w]}) ns)")
        if w > 0 and g_open[w] < g_close[w - 1]:
            raise ValueError(f"{what}: window {w} starts before window {w - 1} closes")
    return 0


cdef inline int check_length(Py_ssize_t got, Py_ssize_t want, str name, str what) except -1:
    if got != want:
        raise ValueError(f"{what}: {name} has {got} rows, expected {want} (lengths differ)")
    return 0


cdef inline object as_i64(object values, str name):
    """An integer (or datetime64) array as C-contiguous int64; anything else is a TypeError,
    never a silent truncation of floats."""
    import numpy as np
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        arr = arr.astype("datetime64[ns]").view(np.int64)
    elif arr.dtype.kind not in "iu" and not (arr.dtype.kind in "fO" and arr.size == 0):
        raise TypeError(f"{name} must be int64 nanoseconds, got {arr.dtype} of shape "
                        f"{arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


cdef inline u64 slot_index(i64 origin, i64 step, i64 t) noexcept nogil:
    """Which step-long slot from origin holds t, counted from 0 (t >= origin, step > 0): the
    index of ``slot_floor``'s slot, exact over the whole int64 range."""
    return span(origin, t) // <u64> step


cdef inline i64 run_end(i64 start, i64 count, i64 step_ns) noexcept nogil:
    """The exclusive end of a run of count step_ns-long slots from start, as the batch says
    it (find_gaps): start + count * step_ns, saturated at INT64_MAX (past the window's close
    when its last slot is short); start when count <= 0.  step_ns > 0."""
    if count <= 0:
        return start
    if count > (INT64_MAX - start) // step_ns:
        return INT64_MAX
    return start + count * step_ns


cdef inline bint grid_next(GridCursor* g, const i64* g_open, const i64* g_close,
                           Py_ssize_t n_windows, i64 step_ns, i64 t, bint placed) noexcept nogil:
    """grid_locate with the common case first: t is the slot right after the cursor's, in
    the same window (no division).  placed: the cursor holds a slot found before (its
    initial NO_BAR end is no slot)."""
    if placed and t == g.slot_end and t < g_close[g.window]:
        g.slot_start = t
        g.slot_end = step_end(t, step_ns, g_close[g.window])
        return True
    return grid_locate(g, g_open, g_close, n_windows, step_ns, t)
