"""The common case told by a quick pass (issue 18): ``validation.prices_sound`` answers "is
every bar's prices and volume sound?" as ``validate_bars`` would (no price or volume fault
in any row), against a pure-NumPy reference, on sound bars and on bars with one fault of
each kind at any row (NaN, infinities, high/low inconsistent, negative, NaN or infinite
volume, with and without ``volume_optional``), read-only and unchanged inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from sessiondata._core import validation


def sound_reference(o, h, lo, c, v, volume_optional=False) -> bool:
    """Every row free of price and volume faults (common.pxd's price_fault), in NumPy."""
    finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c)
    consistent = (h >= o) & (h >= c) & (h >= lo) & (lo <= o) & (lo <= c)
    volume = ((v >= 0) & np.isfinite(v)) | (volume_optional & np.isnan(v))
    return bool((finite & consistent & volume).all())


BREAKS = {
    "none": lambda cols, i: None,
    "nan_open": lambda cols, i: cols[0].__setitem__(i, np.nan),
    "inf_high": lambda cols, i: cols[1].__setitem__(i, np.inf),
    "neg_inf_low": lambda cols, i: cols[2].__setitem__(i, -np.inf),
    "nan_close": lambda cols, i: cols[3].__setitem__(i, np.nan),
    "high_below_open": lambda cols, i: cols[1].__setitem__(i, cols[0][i] - 1.0),
    "high_below_low": lambda cols, i: cols[1].__setitem__(i, cols[2][i] - 1.0),
    "low_above_close": lambda cols, i: cols[2].__setitem__(i, cols[3][i] + 1.0),
    "negative_volume": lambda cols, i: cols[4].__setitem__(i, -1.0),
    "nan_volume": lambda cols, i: cols[4].__setitem__(i, np.nan),
    "inf_volume": lambda cols, i: cols[4].__setitem__(i, np.inf),
    "neg_inf_volume": lambda cols, i: cols[4].__setitem__(i, -np.inf),
    "zero_volume": lambda cols, i: cols[4].__setitem__(i, 0.0),
    "negative_zero_volume": lambda cols, i: cols[4].__setitem__(i, -0.0),
}


@given(n=st.integers(0, 5000), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(sorted(BREAKS)), optional=st.booleans(),
       no_volume=st.booleans())
def test_prices_sound_is_the_reference(n, seed, kind, optional, no_volume):
    rng = np.random.default_rng(seed)
    cols = [np.array(c, np.float64) for c in ref.random_prices(rng, n)]
    if no_volume:
        cols[4][:] = np.nan
    if n:
        BREAKS[kind](cols, int(rng.integers(n)))
    for c in cols:
        c.setflags(write=False)
    before = [c.copy() for c in cols]
    want = sound_reference(*cols, volume_optional=optional)
    got = validation.prices_sound(*cols, volume_optional=optional)
    assert type(got) is bool and got == want
    # The same answer as the full check: no price or volume fault in any row.
    e = np.empty(0, np.int64)
    faults = np.zeros(n, np.uint8)
    validation.validate_bars(np.arange(n, dtype=np.int64), *cols, e, e, 0, faults, False,
                             volume_optional=optional)
    assert got == (not np.isin(faults, [1, 2, 3]).any())
    for a, b in zip(before, cols):
        np.testing.assert_array_equal(a, b)


def test_prices_sound_lengths_differ():
    one = np.ones(3)
    with pytest.raises(ValueError, match="lengths differ"):
        validation.prices_sound(one, one, one[:2], one, one)
    assert validation.prices_sound(*[np.empty(0)] * 5) is True


# --------------------------------------------------------------------------- steps once


@given(seed=st.integers(0, 2**32 - 1), n_symbols=st.integers(0, 4),
       known=st.lists(st.booleans(), min_size=4, max_size=4))
def test_infer_base_ns_with_the_readers_steps(seed, n_symbols, known):
    """The plausibility check's base interval from the spacing the reader measured equals
    the one it measures itself (any mix of known and unknown)."""
    from sessiondata.plausibility import infer_base_ns

    rng = np.random.default_rng(seed)
    arrays = []
    for _ in range(n_symbols):
        n = int(rng.integers(0, 60))
        step = int(rng.choice([60, 300, 7])) * 10**9
        arrays.append(np.cumsum(rng.choice([step, step, step, 2 * step, 5 * step], n))
                      .astype(np.int64))
    steps = [validation.step_counts(a) if k and len(a) > 1 else None
             for a, k in zip(arrays, known)]
    assert infer_base_ns(arrays, steps) == infer_base_ns(arrays)


def test_read_result_steps_are_those_of_its_bars(tmp_path):
    """store_checked keeps the spacing of the bars it stored; bars replaced since (set
    aside, dropped) have none, and the check measures them again."""
    import sessiondata as sd
    from sessiondata import readers

    path = tmp_path / "AAA.csv"
    rows = ["ts,open,high,low,close,volume"]
    for k in range(30):
        rows.append(f"2024-01-02T{14 + k // 60:02d}:{k % 60:02d}:00Z,1,2,0.5,1.5,10")
    path.write_text("\n".join(rows) + "\n")
    result = readers.read_bars(path, interval="1m")
    ts = result.bars["AAA"].ts
    assert result.step_counts("AAA") == validation.step_counts(np.ascontiguousarray(ts))
    result.keep("AAA", np.arange(30) % 2 == 0)
    assert result.step_counts("AAA") is None
    assert result.step_counts("nope") is None
    # And the run's check gives the same verdict either way.
    cal = sd.Calendar.exchange("XNYS")
    from sessiondata.plausibility import Plausibility

    a, b = Plausibility(cal, "1m"), Plausibility(cal, "1m")
    fresh = readers.read_bars(path, interval="1m")
    a.observe(fresh)
    b.observe(type("Plain", (), {"bars": fresh.bars, "naive": fresh.naive})())
    assert a.fits == b.fits
