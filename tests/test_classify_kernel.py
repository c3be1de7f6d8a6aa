"""The compiled gap classification (``sessiondata._core.classify``) against its NumPy reference
(``tests/classify_reference.py``: the classification as it was written in NumPy before the
kernels): the same kinds, lost slots, and the same bits of every ``gap_activity`` and
``gap_share``, slot by slot and piece by piece, with and without halts, on synthetic universes,
crafted corners and the real files of ``../shared/data``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import classify_reference as reference
import sessiondata
from sessiondata import Bars, Calendar, classify
from sessiondata._core import classify as kernel
from sessiondata.classify import ClassifyOptions, Halts
from sessiondata.engine import Engine, ThreadExecutor
from sessiondata.synthetic import universe

MIN = 60_000_000_000
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")


def _columns(run) -> dict[str, tuple[np.ndarray, ...]]:
    return {name: (t.gap_kind.copy(), t.gap_activity.copy(), t.gap_share.copy(),
                   t.lost.copy()) for name, t in run.intervals.items()}


def _assert_bits_equal(run, options: ClassifyOptions | None = None) -> None:
    """Classify ``run`` by the library and by the reference; every column the same bits."""
    classify.classify_run(run, options)
    got = _columns(run)
    reference.classify_run(run, options)
    want = _columns(run)
    for name in want:
        for what, a, b in zip(("kind", "activity", "share", "lost"), got[name], want[name]):
            assert a.dtype == b.dtype, (name, what)
            assert a.tobytes() == b.tobytes(), (
                f"{name} {what}: {np.count_nonzero(a.view(np.uint8) != b.view(np.uint8))} "
                f"bytes differ")


def _run(bars, cal, derived=("5m",), options=None):
    return Engine(cal, derived=derived, classify=options,
                  executor=ThreadExecutor(1)).run(bars)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("budget", [None, 0, 6_000])
def test_universe_with_halts_slots_and_pieces(monkeypatch, seed, budget):
    """Every kind, supplied halts, derived intervals; slot by slot, by pieces (budget 0: the
    cross-section among the distinct piece starts), and by pieces on a grid within the
    budget (6,000: the 5,850 slots of 15 sessions, fewer than the missing ones; the
    cross-section per slot, pieces longer than one); the reference held to the same
    budget."""
    if budget is not None:
        monkeypatch.setattr(classify, "SLOT_BUDGET", budget)
        monkeypatch.setattr(reference, "SLOT_BUDGET", budget)
    u = universe(40, 15, seed=seed)
    options = ClassifyOptions(halts=u.halts)
    run = _run(u.bars, u.calendar, ("5m", "15m"), options)
    kinds = np.unique(run.intervals["1m"].gap_kind)
    assert len(kinds) >= 3
    if budget == 6_000:
        assert 15 * 390 <= budget < run.intervals["1m"].gap_count.sum()
    _assert_bits_equal(run, options)


@pytest.mark.parametrize("options", [
    ClassifyOptions(level_window=""),                     # the session's level only
    ClassifyOptions(level_window="5m", activity_bucket="1h"),
    ClassifyOptions(outage_min_symbols=1, outage_share=0.2, active_rate=0.1),
    ClassifyOptions(quiet_alpha=0.5),
    ClassifyOptions(halts=Halts.of([("*", 1704983400 * 10**9, 1704987000 * 10**9)])),
])
def test_other_thresholds(options):
    u = universe(25, 8, seed=4)
    _assert_bits_equal(_run(u.bars, u.calendar, ("5m",), options), options)


def test_one_symbol_one_gap_and_none():
    """A single symbol (no cross-section: every share NaN), a single missing slot, and a
    symbol without gaps beside it."""
    cal = Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri")
    labels = cal.sessions(np.datetime64("2024-03-04"), np.datetime64("2024-03-08"))
    opens = np.array([int(cal.session_windows(d).open_ns[0]) for d in labels], np.int64)
    ts = (opens[:, None] + np.arange(390, dtype=np.int64)[None, :] * MIN).ravel()
    c = np.full(len(ts), 100.0)
    full = Bars.from_arrays(ts, c, c, c, c, np.ones(len(ts)))
    keep = np.ones(len(ts), bool)
    keep[400] = False
    holed = Bars.from_arrays(ts[keep], c[keep], c[keep], c[keep], c[keep],
                             np.ones(keep.sum()))
    run = _run({"A": holed}, cal)
    assert len(run.intervals["1m"].gap_symbol) == 1
    _assert_bits_equal(run)
    _assert_bits_equal(_run({"A": holed, "B": full}, cal))
    run = _run({"B": full}, cal)
    _assert_bits_equal(run)
    assert len(run.intervals["1m"].gap_kind) == 0


def test_the_sample():
    run = sessiondata.run(None)
    _assert_bits_equal(run)


@pytest.mark.parametrize("name, calendar, options", [
    ("6EH4.XCME_1min_bars_20240101_20240131.csv.gz", "CME_GLOBEX", {"stamp": "end"}),
    ("usdjpy-m1-bid-2013.csv", "FX", {}),
    ("btc-perp-20211231-20220201_1m.csv", "24/7", {}),
])
def test_real_files(name, calendar, options):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    from sessiondata.cli import parse_calendar
    run = sessiondata.run(str(path), parse_calendar(calendar), read_options=options)
    _assert_bits_equal(run)


def test_rate_times_slots_sums_in_bucket_order():
    """The kernel's sums are NumPy's bucket-by-bucket sums from 0.0, rows shared or not."""
    rng = np.random.default_rng(3)
    rate = rng.random((7, 48))
    e_kb = rng.integers(0, 30, (9, 48)).astype(np.float64)
    e_kb[4] = e_kb[1]
    e_kb[8] = e_kb[1]
    want = np.zeros((7, 9))
    for b in range(48):
        want += rate[:, b, None] * e_kb[None, :, b]
    out = np.empty((7, 9))
    kernel.rate_times_slots(rate, e_kb, out)
    assert out.tobytes() == want.tobytes()
    out = np.empty((7, 0))
    kernel.rate_times_slots(rate, np.zeros((0, 48)), out)


def test_kernels_take_read_only_inputs_and_leave_them():
    """Inputs are const: read-only arrays work and are not modified."""
    slot0 = np.array([0, 5, 9], np.int64)
    n = np.array([2, 1, 3], np.int64)
    for a in (slot0, n):
        a.flags.writeable = False
    p_off = np.empty(4, np.int64)
    p_start = np.empty(6, np.int64)
    kernel.slot_pieces(slot0, n, 11, p_off, p_start)
    assert p_off.tolist() == [0, 2, 3, 6]
    assert p_start.tolist() == [0, 1, 5, 9, 10, 10]   # clipped to the last slot, as before
    p_len = np.ones(6, np.int64)
    p_start.flags.writeable = False
    inv = np.empty(6, np.int64)
    u, u_len = kernel.piece_starts_by_mark(p_start, p_len, 11, inv)
    assert u.tolist() == [0, 1, 5, 9, 10] and inv.tolist() == [0, 1, 2, 3, 4, 4]
    assert u_len.tolist() == [1] * 5
    with pytest.raises(ValueError):
        kernel.slot_pieces(slot0, n, 11, np.empty(3, np.int64), p_start.copy())


@pytest.mark.parametrize("seed", [0, 5])
def test_two_threads_give_the_bits_of_one(monkeypatch, seed):
    """The gaps in two halves on two threads (forced on a small universe): the same bits."""
    monkeypatch.setattr(classify, "MIN_PIECES_TWO_THREADS", 0)
    u = universe(30, 10, seed=seed)
    options = ClassifyOptions(halts=u.halts)
    _assert_bits_equal(_run(u.bars, u.calendar, ("5m",), options), options)


@pytest.mark.parametrize("g_sym", [[0, 0, 0, 1, 1, 2], [0, 0, 0, 0, 0, 1], [3, 3, 3], [7]])
def test_halves_cover_every_gap_once_at_symbol_starts(monkeypatch, g_sym):
    monkeypatch.setattr(classify, "MIN_PIECES_TWO_THREADS", 0)
    g_sym = np.array(g_sym, np.int64)
    p_off = np.arange(len(g_sym) + 1, dtype=np.int64) * 2
    seen: list[tuple[int, int]] = []
    classify._in_two(lambda lo, hi: seen.append((lo, hi)), g_sym, p_off)
    covered = sorted(i for lo, hi in seen for i in range(lo, hi))
    assert covered == list(range(len(g_sym)))
    for lo, _ in seen:
        assert lo == 0 or g_sym[lo - 1] != g_sym[lo]


def test_an_error_on_the_second_thread_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(classify, "MIN_PIECES_TWO_THREADS", 0)

    def work(lo, hi):
        if lo > 0:
            raise ValueError("second half")

    with pytest.raises(ValueError, match="second half"):
        classify._in_two(work, np.array([0, 1], np.int64), np.array([0, 1, 2], np.int64))


def test_symbols_of_another_base_interval():
    """Symbols whose own base is 5m (as a live registry may hold): the 1m table classifies
    only the others' gaps (a subset, gathered and scattered back), the 5m table theirs."""
    u = universe(20, 6, seed=2)
    options = ClassifyOptions(halts=u.halts)
    run = _run(u.bars, u.calendar, ("5m",), options)
    for symbol in run.symbols[::3]:
        run.symbol_base[symbol] = "5m"
    _assert_bits_equal(run, options)
