"""Pure Python/NumPy references for the compiled kernels of ``sessiondata._core``.

Each function has the signature and the return value of the kernel it mirrors, and is written
to be obviously right rather than fast: it lists every slot (or bucket) of the grid and looks
each bar up, where the kernels walk cursors.  The tests compare kernel and reference on
adversarial and random inputs, so these functions *define* the semantics:

- A grid is a list of ``[open, close)`` windows (sorted, disjoint, maybe touching) and a step.
  A slot (a bucket, for a derived interval) is one ``[start, end)`` step of a window, aligned to
  the window's open; the last slot of a window may be short (``end`` is clipped to the close).
  ``step_ns == 0`` makes the whole window one slot (the daily bar of a session).
- A bar belongs to the slot that contains its open time.  Bars are labelled by the open of
  their bucket and never span a close or a break.
- Base bars must be aligned to the base step from the open of the grid window that holds them.
  With ``step_ns == 0`` the grid windows are whole sessions, breaks included, so their opens
  are no base-grid origin for the later windows of a session: ``aggregate_bars`` then checks no
  alignment (the caller checks the bars against the real windows with ``validate_bars``).
- A gap is a maximal run of missing slots of one window: ``(start, count)``, exclusive end
  ``start + count * step``.  With ``until_ns`` only slots whose clipped end is ``<= until_ns``
  count, and so only bars of such slots.

The fault codes are those of ``common.pxd`` (``sessiondata._core.validation.FAULTS``).
This module also holds the generators of random valid grids and bars used by the property
tests (``grids``, ``bars_on``), since they encode the same data contract.
"""

from __future__ import annotations

import math

import numpy as np

from sessiondata._core.validation import FAULTS as _FAULT_TABLE

FAULT_NONE = 0
FAULT_NONFINITE = 1
FAULT_HIGH_LOW = 2
FAULT_VOLUME = 3
FAULT_UNSORTED = 4
FAULT_DUPLICATE = 5
FAULT_OUTSIDE = 6
FAULT_MISALIGNED = 7
FAULT_OVERFLOW = 8
# The kernels count rejected rows per fault code; the table's size is theirs.
N_FAULTS = max(_FAULT_TABLE) + 1

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


# --------------------------------------------------------------------------- helpers


def ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def window_of(g_open, g_close, t: int) -> int:
    """Index of the window holding t, or -1."""
    for w in range(len(g_open)):
        if int(g_open[w]) <= t < int(g_close[w]):
            return w
    return -1


def window_step(g_open, g_close, w: int, step_ns: int) -> int:
    return int(step_ns) if step_ns > 0 else int(g_close[w]) - int(g_open[w])


def slot_of(g_open, g_close, w: int, step_ns: int, t: int) -> tuple[int, int]:
    """(start, clipped end) of the slot of window w holding t."""
    step = window_step(g_open, g_close, w, step_ns)
    start = int(g_open[w]) + (t - int(g_open[w])) // step * step
    return start, min(start + step, int(g_close[w]))


def all_slots(g_open, g_close, step_ns: int) -> list[tuple[int, int, int]]:
    """Every slot of the grid, in time order: (window, start, clipped end)."""
    out = []
    for w in range(len(g_open)):
        step = window_step(g_open, g_close, w, step_ns)
        start = int(g_open[w])
        while start < int(g_close[w]):
            out.append((w, start, min(start + step, int(g_close[w]))))
            start += step
    return out


def missing_runs(slots, present: set[int]) -> list[tuple[int, int]]:
    """Maximal runs (start, count) of consecutive slots of one window not in ``present``."""
    runs: list[list[int]] = []
    prev_w = None
    in_run = False
    for w, start, _end in slots:
        if w != prev_w:
            in_run = False
            prev_w = w
        if start in present:
            in_run = False
            continue
        if in_run:
            runs[-1][1] += 1
        else:
            runs.append([start, 1])
            in_run = True
    return [(s, c) for s, c in runs]


def price_fault(o: float, h: float, lo: float, c: float, v: float) -> int:
    """The first fault of a bar's prices and volume (common.pxd's order)."""
    if not all(math.isfinite(x) for x in (o, h, lo, c)):
        return FAULT_NONFINITE
    if h < max(o, c, lo) or lo > min(o, c):
        return FAULT_HIGH_LOW
    if not v >= 0.0 or not math.isfinite(v):
        return FAULT_VOLUME
    return FAULT_NONE


# --------------------------------------------------------------------------- aggregation


def aggregate_bars(ts, open, high, low, close, volume, g_open, g_close, g_base_slots,
                   step_ns, base_ns, out_ts, out_open, out_high, out_low, out_close,
                   out_volume, out_count, out_coverage):
    """Reference of ``aggregation.aggregate_bars``: ``(n_out, fault, row)``."""
    n, cap = len(ts), len(out_ts)
    if n == 0:
        return 0, FAULT_NONE, -1
    if len(g_open) == 0:
        return 0, FAULT_OUTSIDE, 0
    closed: list[dict] = []
    current: dict | None = None
    fault, bad = FAULT_NONE, -1
    for i in range(n):
        t = int(ts[i])
        if i > 0 and t <= int(ts[i - 1]):
            fault, bad = FAULT_UNSORTED, i
            break
        if current is not None and t < current["end"]:
            # Same bucket as the bar before.  (Session-wide buckets, step_ns == 0, span breaks:
            # their bars are checked against the real windows by the caller, not here.)
            if step_ns > 0 and (t - current["origin"]) % base_ns != 0:
                fault, bad = FAULT_MISALIGNED, i
                break
            current["rows"].append(i)
            continue
        # A new bucket: the one being built is complete (it must fit in the output).
        if current is not None:
            if len(closed) >= cap:
                fault, bad = FAULT_OVERFLOW, i
                break
            closed.append(current)
        current = None
        w = window_of(g_open, g_close, t)
        if w < 0:
            fault, bad = FAULT_OUTSIDE, i
            break
        if step_ns > 0 and (t - int(g_open[w])) % base_ns != 0:
            fault, bad = FAULT_MISALIGNED, i
            break
        start, end = slot_of(g_open, g_close, w, step_ns, t)
        expected = int(g_base_slots[w]) if step_ns <= 0 else ceil_div(end - start, base_ns)
        current = {"start": start, "end": end, "origin": int(g_open[w]),
                   "expected": expected, "rows": [i]}
    if fault == FAULT_NONE and current is not None:
        if len(closed) >= cap:
            fault, bad = FAULT_OVERFLOW, n - 1
        else:
            closed.append(current)
    for m, b in enumerate(closed):
        rows = b["rows"]
        vol = 0.0
        for r in rows:  # summed in order, as a running total
            vol += float(volume[r])
        out_ts[m] = b["start"]
        out_open[m] = open[rows[0]]
        out_high[m] = max(float(high[r]) for r in rows)
        out_low[m] = min(float(low[r]) for r in rows)
        out_close[m] = close[rows[-1]]
        out_volume[m] = vol
        out_count[m] = len(rows)
        out_coverage[m] = len(rows) / b["expected"]
    return len(closed), fault, bad


def bucket_capacity(g_open, g_close, step_ns, first_ns, last_ns):
    """Reference of ``aggregation.bucket_capacity``: buckets of the windows that meet
    ``[first_ns, last_ns]``."""
    total = 0
    for w in range(len(g_open)):
        if int(g_close[w]) > first_ns and int(g_open[w]) <= last_ns:
            if step_ns > 0:
                total += ceil_div(int(g_close[w]) - int(g_open[w]), step_ns)
            else:
                total += 1
    return total


def aggregate_expected(ts, open, high, low, close, volume, g_open, g_close, g_base_slots,
                       step_ns, base_ns):
    """The derived bars as a dict of arrays (the eight columns), via the reference; raises
    AssertionError if the input has a fault."""
    n = len(ts)
    outs = new_outputs(n)
    m, fault, row = aggregate_bars(ts, open, high, low, close, volume, g_open, g_close,
                                   g_base_slots, step_ns, base_ns, *outs)
    assert fault == FAULT_NONE, (fault, row)
    return {k: v[:m] for k, v in zip(OUT_NAMES, outs)}


OUT_NAMES = ("ts", "open", "high", "low", "close", "volume", "count", "coverage")


def new_outputs(cap: int, fill: bool = True):
    """Output arrays for aggregate_bars, filled with a sentinel so that untouched rows show."""
    out = [np.full(cap, -7, np.int64)]
    out += [np.full(cap, -7.5) for _ in range(5)]
    out += [np.full(cap, -7, np.int64), np.full(cap, -7.5)]
    return out


# --------------------------------------------------------------------------- gaps


def find_gaps_slots(ts, g_open, g_close, step_ns, until_ns, out_start, out_count):
    """Reference of ``gaps.find_gaps_slots``:
    ``(n_runs, expected, present, missing, fault, row)``.

    On a fault, ``expected`` is 0 and ``present``/``missing``/runs describe what was accounted
    for before the faulty row: the slots up to the previous bar, and every slot of a window
    that closed by the faulty bar's time.
    """
    n, nw, cap = len(ts), len(g_open), len(out_start)
    if len(out_count) < cap:
        raise ValueError("out_start and out_count differ in length")
    if nw == 0:
        if n > 0:
            return 0, 0, 0, 0, FAULT_OUTSIDE, 0
        return 0, 0, 0, 0, FAULT_NONE, -1
    slots = all_slots(g_open, g_close, step_ns)
    present: set[int] = set()
    fault, bad = FAULT_NONE, -1
    for i in range(n):
        t = int(ts[i])
        if i > 0 and t <= int(ts[i - 1]):
            fault, bad = FAULT_UNSORTED, i
            break
        if t >= until_ns:
            break
        w = window_of(g_open, g_close, t)
        if w < 0:
            fault, bad = FAULT_OUTSIDE, i
            break
        start, end = slot_of(g_open, g_close, w, step_ns, t)
        if start != t:
            fault, bad = FAULT_MISALIGNED, i
            break
        if end > until_ns:
            break  # its slot is still open: this bar and the later ones do not count yet
        present.add(t)
    if fault != FAULT_NONE:
        t = int(ts[bad])
        prev = int(ts[bad - 1]) if bad > 0 else None
        accounted = [s for s in slots
                     if (prev is not None and s[1] <= prev) or int(g_close[s[0]]) <= t]
    else:
        accounted = [s for s in slots if s[2] <= until_ns]
    runs = missing_runs(accounted, present)
    for k, (s, c) in enumerate(runs[:cap]):
        out_start[k] = s
        out_count[k] = c
    missing = len(accounted) - len(present)
    if fault != FAULT_NONE:
        return len(runs), 0, len(present), missing, fault, bad
    return len(runs), len(accounted), len(present), missing, FAULT_NONE, -1


# --------------------------------------------------------------------------- quality


def score_quality(ts, coverage, g_open, g_close, step_ns, until_ns):
    """Reference of ``quality.score_quality``: ``(expected, present, coverage_sum, partial)``."""
    n = len(ts)
    weighted = len(coverage) > 0
    if weighted and len(coverage) != n:
        raise ValueError(f"coverage has {len(coverage)} values for {n} bars")
    if len(g_open) == 0:
        return 0, 0, 0.0, 0
    expected = sum(1 for _w, _s, end in all_slots(g_open, g_close, step_ns) if end <= until_ns)
    present, covered, partial = 0, 0.0, 0
    for i in range(n):
        t = int(ts[i])
        w = window_of(g_open, g_close, t)
        _start, end = slot_of(g_open, g_close, w, step_ns, t)
        if end > until_ns:
            continue
        present += 1
        if weighted:
            covered += float(coverage[i])
            partial += coverage[i] < 1.0
        else:
            covered += 1.0
    return expected, present, covered, int(partial)


def score_groups(ts, coverage, group_start):
    """Reference of ``quality.score_groups``: per group ``k`` (the bars from
    ``group_start[k]`` up to the next group's start; none before the first), the present
    bars, their coverage sum (1 each for base bars: ``coverage`` empty) and the partial ones
    (coverage below 1).  Returns ``(present, covered, partial)`` lists."""
    n, ng = len(ts), len(group_start)
    weighted = len(coverage) > 0
    if weighted and len(coverage) != n:
        raise ValueError(f"coverage has {len(coverage)} values for {n} bars")
    present, covered, partial = [0] * ng, [0.0] * ng, [0] * ng
    for i in range(n):
        k = -1
        for j in range(ng):  # the last group that starts at or before the bar
            if int(group_start[j]) <= int(ts[i]):
                k = j
        if k < 0:
            continue
        cov = float(coverage[i]) if weighted else 1.0
        present[k] += 1
        covered[k] += cov
        partial[k] += cov < 1.0
    return present, covered, partial


# --------------------------------------------------------------------------- validation


def validate_bars(ts, open, high, low, close, volume, w_open, w_close, base_ns, faults,
                  stop_at_first, last_ns=I64_MIN):
    """Reference of ``validation.validate_bars``: ``(first_row, counts)``."""
    n = len(ts)
    record = len(faults) > 0
    if record and len(faults) != n:
        raise ValueError(f"faults has {len(faults)} slots for {n} bars")
    counts = [0] * N_FAULTS
    first = -1
    prev = None if last_ns == I64_MIN else int(last_ns)
    for i in range(n):
        t = int(ts[i])
        f = price_fault(float(open[i]), float(high[i]), float(low[i]), float(close[i]),
                        float(volume[i]))
        if f == FAULT_NONE and prev is not None and t <= prev:
            f = FAULT_DUPLICATE if t == prev else FAULT_UNSORTED
        if f == FAULT_NONE and len(w_open) > 0:
            w = window_of(w_open, w_close, t)
            if w < 0:
                f = FAULT_OUTSIDE
            elif base_ns > 0 and (t - int(w_open[w])) % base_ns != 0:
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
    return first, counts


# --------------------------------------------------------------------------- generators

NS = 1_000_000_000
MINUTE = 60 * NS
T1900 = int(np.datetime64("1900-03-01T00:00", "ns").astype(np.int64))
T2024 = int(np.datetime64("2024-03-08T14:30", "ns").astype(np.int64))
T2200 = int(np.datetime64("2200-06-30T00:00", "ns").astype(np.int64))


class Grid:
    """Random windows with sessions, a base step and the arrays the kernels take."""

    def __init__(self, w_open, w_close, session_ids, base_ns):
        self.w_open = np.asarray(w_open, np.int64)
        self.w_close = np.asarray(w_close, np.int64)
        self.session_ids = np.asarray(session_ids, np.int64)
        self.base_ns = int(base_ns)

    def base_slots(self) -> np.ndarray:
        return -((self.w_open - self.w_close) // self.base_ns)

    def derived(self, step_ns: int):
        """(g_open, g_close, g_base_slots, g_last_open) of a derived interval (step 0: the
        sessions; g_last_open is the open of each session's last window)."""
        if step_ns > 0:
            return self.w_open, self.w_close, self.base_slots(), self.w_open
        ids = self.session_ids
        first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        last = np.r_[first[1:], len(ids)] - 1
        return (np.ascontiguousarray(self.w_open[first]),
                np.ascontiguousarray(self.w_close[last]),
                np.add.reduceat(self.base_slots(), first),
                np.ascontiguousarray(self.w_open[last]))

    def slot_starts(self) -> np.ndarray:
        """Every base slot start, in order."""
        return np.array([s for _w, s, _e in all_slots(self.w_open, self.w_close, self.base_ns)],
                        np.int64)

    def __repr__(self) -> str:
        return (f"Grid(w_open={self.w_open.tolist()}, w_close={self.w_close.tolist()}, "
                f"session_ids={self.session_ids.tolist()}, base_ns={self.base_ns})")


def random_prices(rng: np.random.Generator, n: int):
    """Sound OHLCV columns: finite, low <= open, close <= high, volume >= 0."""
    mid = 100.0 + np.cumsum(rng.normal(0.0, 1.0, n))
    o = np.round(mid + rng.normal(0.0, 0.5, n), 4)
    c = np.round(mid + rng.normal(0.0, 0.5, n), 4)
    h = np.maximum(o, c) + np.round(np.abs(rng.normal(0.0, 0.3, n)), 4)
    lo = np.minimum(o, c) - np.round(np.abs(rng.normal(0.0, 0.3, n)), 4)
    v = np.round(rng.exponential(1000.0, n), 3) * (rng.random(n) > 0.05)
    return o, h, lo, c, v


def grids():
    """Hypothesis strategy of Grid: 1-6 windows, touching or apart, grouped into sessions,
    window lengths often not a multiple of the base (short last slots), at dates from 1900
    to 2200."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw):
        unit = draw(st.sampled_from([1, 7, MINUTE]))
        base_units = draw(st.sampled_from([1, 1, 2, 3, 5]))
        aligned = draw(st.booleans())  # every length and pause a whole number of base steps
        mult = base_units if aligned else 1
        origin = draw(st.sampled_from([0, T1900, T2024, T2200])) + \
            draw(st.integers(-1000, 1000)) * unit
        nw = draw(st.integers(1, 6))
        opens, closes, ids = [], [], []
        cur, sid = origin, -1
        for w in range(nw):
            pause = draw(st.sampled_from([0, 0, 1, 2, 3, 17])) if w else 0
            length = draw(st.integers(1, 25))
            cur += pause * mult * unit
            opens.append(cur)
            cur += length * mult * unit
            closes.append(cur)
            if w == 0 or draw(st.booleans()):
                sid += 1
            ids.append(sid)
        return Grid(opens, closes, ids, base_units * unit)

    return build()


def bars_on(grid: Grid, rng: np.random.Generator, density: float):
    """A random subset of the grid's base slots, with sound prices: (ts, o, h, l, c, v)."""
    slots = grid.slot_starts()
    ts = slots[rng.random(len(slots)) < density]
    return (ts,) + random_prices(rng, len(ts))
