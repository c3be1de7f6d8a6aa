# Data quality of one interval: the share of its expected slots that hold data.
#
# A base bar fills its slot; a derived bar fills its bucket by its coverage (base bars present
# over base slots expected), so a 5m bar made of 3 of its 5 minutes counts 0.6.

from common cimport GridCursor, check_grid, expected_slots, f64, grid_locate, i64


def score_quality(
    const i64[::1] ts,
    const f64[::1] coverage,
    const i64[::1] g_open,
    const i64[::1] g_close,
    i64 step_ns,
    i64 until_ns,
):
    """Score the slots of a grid that closed by ``until_ns``.

    ``ts`` are validated, sorted slot starts inside the grid; ``coverage`` is empty for base
    bars (each counts 1) or one value per bar in [0, 1].  Returns
    ``(expected, present, coverage_sum, partial)``; more expected slots than int64 can count
    raise OverflowError.
    """
    cdef Py_ssize_t n = ts.shape[0], nw = g_open.shape[0], i, k
    cdef bint weighted = coverage.shape[0] > 0
    cdef i64 expected = 0, present = 0, partial = 0
    cdef f64 covered = 0.0
    cdef GridCursor g
    cdef bint overflow = False
    if weighted and coverage.shape[0] != n:
        raise ValueError(f"coverage has {coverage.shape[0]} values for {n} bars")
    check_grid(g_open, g_close, "score_quality")
    if step_ns < 0:
        raise ValueError(f"score_quality: step_ns must be >= 0, got {step_ns}")
    if nw == 0:
        return 0, 0, 0.0, 0
    with nogil:
        expected = expected_slots(&g_open[0], &g_close[0], nw, step_ns, until_ns, &overflow)
        # Bars whose slot closed by until_ns: all those that start before it, but perhaps
        # the last one, whose slot may still be open.
        k = 0
        while k < n and ts[k] < until_ns:
            k += 1
        if k > 0:
            g.window = 0
            if grid_locate(&g, &g_open[0], &g_close[0], nw, step_ns, ts[k - 1]):
                if g.slot_end > until_ns:
                    k -= 1
        present = k
        if weighted:
            for i in range(k):
                covered += coverage[i]
                if coverage[i] < 1.0:
                    partial += 1
        else:
            covered = <f64> k
    if overflow:
        raise OverflowError(f"score_quality: more expected slots than int64 can count "
                            f"(step {step_ns} ns over windows from {g_open[0]} to "
                            f"{g_close[nw - 1]} ns); use a coarser step")
    return expected, present, covered, partial


def score_groups(
    const i64[::1] ts,
    const f64[::1] coverage,
    const i64[::1] group_start,
    i64[::1] out_present,
    f64[::1] out_covered,
    i64[::1] out_partial,
):
    """Present bars, coverage sum and partial bars per group of slots (e.g. per session).

    Group k holds the bars from ``group_start[k]`` (sorted) up to the next group's start; bars
    before the first group are not counted.  ``coverage`` is empty for base bars (each counts
    1).  Outputs are overwritten, one value per group.
    """
    cdef Py_ssize_t n = ts.shape[0], ng = group_start.shape[0], i = 0, j, k, m
    cdef bint weighted = coverage.shape[0] > 0
    cdef i64 stop_ns, part
    cdef f64 cov, cov_sum
    if weighted and coverage.shape[0] != n:
        raise ValueError(f"coverage has {coverage.shape[0]} values for {n} bars")
    if out_present.shape[0] < ng or out_covered.shape[0] < ng or out_partial.shape[0] < ng:
        raise ValueError("outputs are shorter than the groups")
    with nogil:
        # Group by group, the sums in locals (not in the outputs, which the compiler must
        # re-read and re-write for every bar).  A group takes the bars from where the last
        # one stopped up to the first bar at or after the next group's start: the groups
        # never move back, as a walk bar by bar would not (unsorted bars included).
        if ng > 0:
            while i < n and ts[i] < group_start[0]:
                i += 1     # bars before the first group are not counted
        for k in range(ng):
            j = i
            if k + 1 < ng:
                stop_ns = group_start[k + 1]
                while j < n and ts[j] < stop_ns:
                    j += 1
            else:
                j = n
            out_present[k] = j - i
            if weighted:
                cov_sum = 0.0
                part = 0
                for m in range(i, j):
                    cov = coverage[m]
                    cov_sum += cov
                    if cov < 1.0:
                        part += 1
                out_covered[k] = cov_sum
                out_partial[k] = part
            else:
                out_covered[k] = <f64> (j - i)
                out_partial[k] = 0
            i = j
