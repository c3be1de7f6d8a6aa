"""Helpers shared by the registry, concurrency and export tests."""

from __future__ import annotations

import numpy as np

from sessiondata import Bars


def ohlcv(ts: np.ndarray, seed: int = 0, interval: str | None = "1m") -> Bars:
    """Valid bars with awkward floats (random walk, fractional volume) at ``ts``."""
    rng = np.random.default_rng(seed)
    n = len(ts)
    close = 100.0 + np.cumsum(rng.normal(0.0, 0.05, n))
    open_ = np.r_[close[:1], close[:-1]] + rng.normal(0.0, 0.01, n)
    high = np.maximum(open_, close) + rng.exponential(0.02, n)
    low = np.minimum(open_, close) - rng.exponential(0.02, n)
    volume = rng.uniform(0.0, 1000.0, n)
    return Bars(np.asarray(ts, np.int64), open_, high, low, close, volume, interval=interval)


def assert_bars_equal(a: Bars, b: Bars, what: str = "") -> None:
    """Same columns, same dtypes, same values to the bit."""
    ca, cb = a.columns(), b.columns()
    assert ca.keys() == cb.keys(), what
    for k in ca:
        assert ca[k].dtype == cb[k].dtype, (what, k)
        np.testing.assert_array_equal(ca[k], cb[k], err_msg=f"{what} {k}")


def assert_like_resample(got: Bars, expected: Bars, what: str = "") -> None:
    """Derived bars against the batch ``resample``: every column exact but ``volume``, a sum
    whose association may differ (the stream may build a coarse interval from the bars of a
    finer one, the batch kernel sums base bars in order), so it matches to a few ulps."""
    ca, cb = got.columns(), expected.columns()
    assert ca.keys() == cb.keys(), what
    for k in ca:
        assert ca[k].dtype == cb[k].dtype, (what, k)
        if k == "volume":
            np.testing.assert_allclose(ca[k], cb[k], rtol=1e-12, atol=0, err_msg=f"{what} {k}")
        else:
            np.testing.assert_array_equal(ca[k], cb[k], err_msg=f"{what} {k}")


def session_slots(cal, days: list[str]) -> np.ndarray:
    """Every 1m slot (its start, ns UTC) of the sessions ``days`` of ``cal``."""
    minute = 60_000_000_000
    out = []
    for d in days:
        w = cal.session_windows(d)
        for o, c in zip(w.open_ns.tolist(), w.close_ns.tolist()):
            out.append(np.arange(o, c, minute, dtype=np.int64))
    return np.concatenate(out)
