# Validation of bars: the checks that are too slow for Python, in one pass.
#
# Each row gets a fault code (0 for a sound bar).  "Previous" means the previous accepted bar,
# so after a dropped row the order check goes on against the last row that was kept.

from libc.float cimport DBL_MAX
from libc.stdlib cimport calloc, free
from libc.stdint cimport INT64_MAX, INT64_MIN, uint8_t

from common cimport (
    FAULT_DUPLICATE, FAULT_MISALIGNED, FAULT_NONE, FAULT_OUTSIDE, FAULT_UNSORTED, N_FAULTS,
    GridCursor, ceil_div, check_grid, check_length, f64, grid_locate, i64, price_fault, span,
    u64,
)

FAULTS = {
    1: "non-finite price",
    2: "high/low inconsistent with open/close",
    3: "negative or non-finite volume",
    4: "timestamp out of order",
    5: "duplicate timestamp",
    6: "outside every session window",
    7: "not on the base-interval grid",
    8: "output overflow",
    9: "late: its derived bar was already closed",
}


def validate_bars(
    const i64[::1] ts,
    const f64[::1] open,
    const f64[::1] high,
    const f64[::1] low,
    const f64[::1] close,
    const f64[::1] volume,
    const i64[::1] w_open,
    const i64[::1] w_close,
    i64 base_ns,
    uint8_t[::1] faults,
    bint stop_at_first,
    i64 last_ns=INT64_MIN,
    bint volume_optional=False,
):
    """Check every bar; write its fault code to ``faults`` (when ``faults`` is not empty).

    Session checks (inside a window, on the base grid) run only when windows are given; the
    base-grid check runs only when ``base_ns > 0``.  ``last_ns`` is the timestamp of a bar
    already held before these, for streaming batches.  Returns ``(first_row, counts)``:
    the first faulty row (-1 when none) and the number of rows per fault code.  With
    ``stop_at_first`` it stops at the first fault.  With ``volume_optional`` (bars without
    volume, held as NaN) a NaN volume is no fault; a negative or infinite one still is.
    """
    cdef Py_ssize_t n = ts.shape[0], nw = w_open.shape[0], i, first = -1
    cdef bint record = faults.shape[0] > 0
    cdef bint sessions = nw > 0
    cdef i64 t, prev = last_ns
    cdef bint have_prev = last_ns != INT64_MIN
    cdef uint8_t f
    cdef i64 counts[N_FAULTS]
    cdef GridCursor g, probe
    if record and faults.shape[0] != n:
        raise ValueError(f"faults has {faults.shape[0]} slots for {n} bars")
    for name, col in (("open", open), ("high", high), ("low", low), ("close", close),
                      ("volume", volume)):
        check_length(col.shape[0], n, name, "validate_bars")
    check_grid(w_open, w_close, "validate_bars")
    if base_ns < 0:
        raise ValueError(f"validate_bars: base_ns must be >= 0, got {base_ns}")
    for i in range(N_FAULTS):
        counts[i] = 0
    g.window = 0
    with nogil:
        for i in range(n):
            t = ts[i]
            f = price_fault(open[i], high[i], low[i], close[i], volume[i], volume_optional)
            if f == FAULT_NONE and have_prev and t <= prev:
                f = FAULT_DUPLICATE if t == prev else FAULT_UNSORTED
            if f == FAULT_NONE and sessions:
                # The cursor moves on only for an accepted bar, so a rejected late bar cannot
                # push it past the windows of the bars that follow.
                probe = g
                if not grid_locate(&probe, &w_open[0], &w_close[0], nw, base_ns, t):
                    f = FAULT_OUTSIDE
                elif base_ns > 0 and t != probe.slot_start:
                    f = FAULT_MISALIGNED
            if record:
                faults[i] = f
            if f != FAULT_NONE:
                counts[f] += 1
                if first < 0:
                    first = i
                    if stop_at_first:
                        break
            else:
                prev = t
                have_prev = True
                if sessions:
                    g = probe
    return first, [counts[i] for i in range(N_FAULTS)]


def locate_bars(
    const i64[::1] ts,
    const i64[::1] w_open,
    const i64[::1] w_close,
    i64 base_ns,
    uint8_t[::1] faults,
):
    """The session checks alone (inside a window, on the base grid) of bars whose prices and
    order were checked already: ``ts`` strictly increasing.  Writes FAULT_OUTSIDE,
    FAULT_MISALIGNED or FAULT_NONE per bar to ``faults`` (when not empty) and returns
    ``(first_row, counts)`` as ``validate_bars`` does, whose faults these are for such bars
    (its order check finds nothing, and a rejected bar cannot move its cursor past the
    window of a later bar).  Session checks run only when windows are given, the base-grid
    check only when ``base_ns > 0``.
    """
    cdef Py_ssize_t n = ts.shape[0], nw = w_open.shape[0], i, w = 0, first = -1
    cdef bint record = faults.shape[0] > 0
    cdef i64 t, close_w = 0, next_t = INT64_MIN
    cdef bint placed = False
    cdef uint8_t f
    cdef i64 counts[N_FAULTS]
    if record and faults.shape[0] != n:
        raise ValueError(f"faults has {faults.shape[0]} slots for {n} bars")
    check_grid(w_open, w_close, "locate_bars")
    if base_ns < 0:
        raise ValueError(f"locate_bars: base_ns must be >= 0, got {base_ns}")
    for i in range(N_FAULTS):
        counts[i] = 0
    with nogil:
        for i in range(n):
            t = ts[i]
            f = FAULT_NONE
            # The common case first: one base step after the previous sound bar, in its
            # window (no search, no division).
            if nw == 0:
                pass       # no windows: no session check (as validate_bars)
            elif not (placed and t == next_t and t < close_w):
                while w < nw and t >= w_close[w]:
                    w += 1
                if w >= nw or t < w_open[w]:
                    f = FAULT_OUTSIDE
                elif base_ns > 0 and span(w_open[w], t) % <u64> base_ns != 0:
                    f = FAULT_MISALIGNED
                else:
                    close_w = w_close[w]
            if record:
                faults[i] = f
            if f != FAULT_NONE:
                counts[f] += 1
                if first < 0:
                    first = i
                placed = False
            else:
                placed = base_ns > 0
                next_t = t + base_ns if t <= INT64_MAX - base_ns else INT64_MIN
    return first, [counts[i] for i in range(N_FAULTS)]


def step_counts(const i64[::1] ts):
    """The spacing of bars: ``(smallest, count, positive, largest)``, the smallest positive
    step between consecutive times, how many steps are that, how many are positive, and the
    largest step (steps taken as ``numpy.diff`` does, wrapping modulo 2**64); ``(0, 0, 0,
    0)`` with fewer than two times (``smallest`` and ``count`` are 0 without a positive
    step).  The bars are in strictly increasing order when ``positive == len(ts) - 1``."""
    cdef Py_ssize_t n = ts.shape[0], i
    cdef i64 d, smallest = 0, count = 0, positive = 0, largest = INT64_MIN
    if n < 2:
        return 0, 0, 0, 0
    with nogil:
        for i in range(1, n):
            d = <i64> (<u64> ts[i] - <u64> ts[i - 1])
            if d > largest:
                largest = d
            if d <= 0:
                continue
            positive += 1
            if count == 0 or d < smallest:
                smallest = d
                count = 1
            elif d == smallest:
                count += 1
    return smallest, count, positive, largest



# Rows that prices_sound checks between two looks at whether one was unsound.
cdef enum:
    SOUND_BLOCK = 1024


def prices_sound(
    const f64[::1] open,
    const f64[::1] high,
    const f64[::1] low,
    const f64[::1] close,
    const f64[::1] volume,
    bint volume_optional=False,
):
    """Whether every bar's prices and volume are sound: ``validate_bars`` would find no
    price or volume fault (``price_fault`` of every row is FAULT_NONE).  The common case's
    quick answer (no fault codes written, no order or session checks, stops at the first
    fault); where it says no, ``validate_bars`` tells which rows and why."""
    cdef Py_ssize_t n = open.shape[0], i = 0, end
    cdef int bad = 0
    for name, col in (("high", high), ("low", low), ("close", close), ("volume", volume)):
        check_length(col.shape[0], n, name, "prices_sound")
    if n == 0:
        return True
    with nogil:
        # Blocks of rows without a branch (vectorised by the compiler), stopping after the
        # block that holds the first fault.
        while i < n and not bad:
            end = i + SOUND_BLOCK if n - i > SOUND_BLOCK else n
            bad = _block_unsound(&open[0], &high[0], &low[0], &close[0], &volume[0], i, end,
                                 volume_optional)
            i = end
    return not bad


cdef inline int _block_unsound(const f64* o, const f64* h, const f64* l, const f64* c,
                               const f64* v, Py_ssize_t a, Py_ssize_t b,
                               bint volume_optional) noexcept nogil:
    """Whether any row of ``[a, b)`` has a price or volume fault (``price_fault``'s rules
    as one condition per row, which the compiler vectorises).  The prices are sound when
    ``low <= open, close <= high``, ``low <= high`` and neither bound is infinite: every
    comparison with a NaN is false, and open and close lie between two finite bounds.  The
    volume is sound when finite and not negative, or NaN where it is optional (a loop of
    its own, so that each loop is one condition)."""
    cdef int bad = 0
    cdef Py_ssize_t i
    if volume_optional:
        for i in range(a, b):
            if ((not (h[i] >= o[i])) | (not (h[i] >= c[i])) | (not (h[i] >= l[i]))
                    | (not (l[i] <= o[i])) | (not (l[i] <= c[i])) | (not (h[i] <= DBL_MAX))
                    | (not (l[i] >= -DBL_MAX))
                    | (((not (v[i] >= 0.0)) | (not (v[i] <= DBL_MAX))) & (v[i] == v[i]))):
                bad = 1
    else:
        for i in range(a, b):
            if ((not (h[i] >= o[i])) | (not (h[i] >= c[i])) | (not (h[i] >= l[i]))
                    | (not (l[i] <= o[i])) | (not (l[i] <= c[i])) | (not (h[i] <= DBL_MAX))
                    | (not (l[i] >= -DBL_MAX)) | (not (v[i] >= 0.0))
                    | (not (v[i] <= DBL_MAX))):
                bad = 1
    return bad


cdef inline Py_ssize_t _below(const i64* xs, Py_ssize_t n, i64 value) noexcept nogil:
    """How many of the sorted ``xs`` are below ``value`` (``numpy.searchsorted``, left)."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if xs[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t _below_from(const i64* xs, Py_ssize_t n, i64 value,
                                   Py_ssize_t hint) noexcept nogil:
    """``_below``, searched from ``hint`` (the answer for a nearby value before): forward in
    steps that double, then by halves within the last step, so that a walk over values in
    increasing order reads the sorted ``xs`` near where it read last (a binary search over
    all of them reads a cache line of a large array at each of its first steps); backward, a
    binary search below ``hint``."""
    cdef Py_ssize_t lo, hi, step = 1
    if hint > n:
        hint = n
    if hint > 0 and xs[hint - 1] >= value:
        return _below(xs, hint - 1, value)
    lo = hint           # every xs[i] below ``lo`` is below ``value``
    hi = hint
    while hi < n and xs[hi] < value:
        lo = hi + 1
        hi = lo + step
        step *= 2
    if hi > n:
        hi = n
    return lo + _below(xs + lo, hi - lo, value)


def window_fit(const i64[::1] raw, const i64[::1] open_ns, const i64[::1] close_ns,
               const i64[::1] open_raw, const i64[::1] close_raw, const i64[::1] session_ids,
               Py_ssize_t n_sessions, i64 lo, i64 hi, i64 base_ns):
    """How one symbol's bars fit a reading's session windows (the plausibility check's
    counts, in one pass over the windows).

    ``raw``: the symbol's times as read (sorted); ``open_ns``/``close_ns``: each window in
    the reading's frame, ``open_raw``/``close_raw`` the same mapped into the frame of
    ``raw``; ``session_ids``: each window's session (``0 <= id < n_sessions``); ``[lo,
    hi)``: the symbol's span in the reading's frame; ``base_ns`` > 0.  A window expects the
    base slots, counted from its open, that start at or after ``lo`` and before ``hi`` and
    its close; it holds the bars of ``raw`` in ``[open_raw, close_raw)``, of which at most
    one a slot is inside.

    Returns ``(inside, held, expected, missing, empty_sessions)``: the bars inside (at most
    the slots of each window), the bars in any window, the slots expected, those without a
    bar, and the sessions that expect slots and hold no bar.
    """
    cdef Py_ssize_t n = raw.shape[0], w = open_ns.shape[0], k, s, a, hint = 0
    cdef i64 top, bottom, slots, cnt, got
    cdef i64 inside = 0, held = 0, expected = 0, missing = 0, empty = 0
    for name, col in (("close_ns", close_ns), ("open_raw", open_raw),
                      ("close_raw", close_raw), ("session_ids", session_ids)):
        check_length(col.shape[0], w, name, "window_fit")
    if base_ns <= 0:
        raise ValueError(f"window_fit: base_ns must be positive, got {base_ns}")
    if n_sessions < 0:
        raise ValueError(f"window_fit: n_sessions must not be negative, got {n_sessions}")
    for k in range(w):
        if not 0 <= session_ids[k] < n_sessions:
            raise ValueError(f"window_fit: window {k}'s session {session_ids[k]} is outside "
                             f"0..{n_sessions - 1}")
    cdef i64* per_slots = <i64*> calloc(max(n_sessions, 1), sizeof(i64))
    cdef i64* per_bars = <i64*> calloc(max(n_sessions, 1), sizeof(i64))
    if per_slots == NULL or per_bars == NULL:
        free(per_slots)
        free(per_bars)
        raise MemoryError()
    cdef const i64* xs = &raw[0] if n else NULL
    with nogil:
        for k in range(w):
            top = (close_ns[k] if close_ns[k] < hi else hi) - open_ns[k]
            bottom = (open_ns[k] if open_ns[k] > lo else lo) - open_ns[k]
            slots = ceil_div(top, base_ns) - ceil_div(bottom, base_ns)
            if slots < 0:
                slots = 0
            a = _below_from(xs, n, open_raw[k], hint)
            hint = _below_from(xs, n, close_raw[k], a)
            cnt = hint - a
            if cnt < 0:
                cnt = 0
            got = cnt if cnt < slots else slots
            inside += got
            held += cnt
            expected += slots
            missing += slots - got
            per_slots[session_ids[k]] += slots
            per_bars[session_ids[k]] += cnt
        for s in range(n_sessions):
            if per_slots[s] > 0 and per_bars[s] == 0:
                empty += 1
    free(per_slots)
    free(per_bars)
    return inside, held, expected, missing, empty
