# Gap finding: the expected slots of a grid against the bars that are present.
#
# A gap is a maximal run of consecutive expected slots of one window with no bar; runs never
# cross a close or a break.  A run is reported as (start, count); its exclusive end is
# start + count * step.

from libc.stdint cimport INT64_MAX, INT64_MIN

from common cimport (
    FAULT_NONE, FAULT_OUTSIDE, FAULT_UNSORTED, check_grid, GapWalker, f64, i64, walker_finish, walker_start,
    walker_step_to,
)


def find_gaps_slots(
    const i64[::1] ts,
    const i64[::1] g_open,
    const i64[::1] g_close,
    i64 step_ns,
    i64 until_ns,
    i64[::1] out_start,
    i64[::1] out_count,
):
    """Find the runs of missing slots among the slots that closed by ``until_ns``.

    ``ts`` are the slot starts of the present bars, sorted.  Bars whose slot has not closed by
    ``until_ns`` are ignored.  Returns ``(n_runs, expected, present, missing, fault, row)``;
    runs beyond the length of ``out_start`` are counted but not written (``len(ts)`` plus the
    number of windows, plus one, always suffices).  More missing slots than int64 can count
    (one-ns slots over most of the int64 range) raise OverflowError.
    """
    cdef Py_ssize_t n = ts.shape[0], nw = g_open.shape[0], cap = out_start.shape[0]
    cdef Py_ssize_t i, j, n_runs = 0, bad_row = -1
    cdef i64 t, prev = 0, nxt, limit
    cdef i64* rs = NULL
    cdef i64* rc = NULL
    cdef int fault = FAULT_NONE
    cdef GapWalker s, done
    if out_count.shape[0] != cap:
        raise ValueError("find_gaps_slots: out_start and out_count differ in length")
    check_grid(g_open, g_close, "find_gaps_slots")
    if step_ns < 0:
        raise ValueError(f"find_gaps_slots: step_ns must be >= 0, got {step_ns}")
    if cap > 0:
        rs = &out_start[0]
        rc = &out_count[0]
    if nw == 0:
        if n > 0:
            return 0, 0, 0, 0, FAULT_OUTSIDE, 0
        return 0, 0, 0, 0, FAULT_NONE, -1
    with nogil:
        walker_start(&s, &g_open[0], nw)
        i = 0
        while i < n:
            t = ts[i]
            if i > 0 and t <= prev:
                fault = FAULT_UNSORTED
                bad_row = i
                break
            if t >= until_ns:
                break
            n_runs = walker_step_to(&s, &g_open[0], &g_close[0], nw, step_ns, t,
                                    rs, rc, n_runs, cap, &fault)
            if fault != FAULT_NONE:
                bad_row = i
                break
            if s.next_slot > until_ns and g_close[s.window] > until_ns:
                # This bar's slot is still open at until_ns: it does not count yet.
                s.present -= 1
                s.next_slot = t
                break
            prev = t
            i += 1
            # The common case, in a tight loop: the next bars fill the next slots of this
            # window, each closed by until_ns.  They need no other check.
            if step_ns > 0:
                nxt = s.next_slot
                # Slots from nxt below limit are whole, inside the window and closed by
                # until_ns (nxt + step_ns <= until_ns), so nxt += step_ns cannot overflow.
                limit = g_close[s.window]
                if until_ns < INT64_MIN + step_ns:
                    limit = INT64_MIN          # no slot closes by until_ns
                elif until_ns - step_ns < limit:
                    limit = until_ns - step_ns + 1
                j = i
                while j < n and ts[j] == nxt and nxt < limit:
                    nxt += step_ns
                    j += 1
                if j > i:
                    s.present += j - i
                    s.next_slot = nxt
                    prev = nxt - step_ns
                    i = j
        if fault == FAULT_NONE:
            n_runs = walker_finish(s, &g_open[0], &g_close[0], nw, step_ns, until_ns,
                                   rs, rc, n_runs, cap, &done)
            s = done
    if s.overflow:
        raise OverflowError(f"find_gaps_slots: more missing slots than int64 can count "
                            f"(step {step_ns} ns over windows from {g_open[0]} to "
                            f"{g_close[nw - 1]} ns); use a coarser step")
    if fault != FAULT_NONE:
        return n_runs, 0, s.present, s.missing, fault, bad_row
    return n_runs, s.present + s.missing, s.present, s.missing, FAULT_NONE, -1
