"""Resampling 1m bars to 5m and 1h: sessiondata against a NumPy copy of its input, pandas and
polars, all in one group per interval so the gate compares times of the same run.

The peers do the same reduction (first open, max high, min low, last close, summed volume,
buckets labelled and closed on the left) from frames built outside the timed region.  On the
24/7 calendar the sessions are UTC days, so day-aligned buckets are the peers' buckets too;
each peer's bucket count is checked against ours after timing.
"""

from __future__ import annotations

import numpy as np
import pytest

import sessiondata

IMPLS = ("np.copy", "sessiondata", "pandas", "polars")
INTERVALS = {"5m": ("5min", "5m"), "1h": ("1h", "1h")}  # ours: (pandas rule, polars every)
CASES = [(iv, impl) for iv in INTERVALS for impl in IMPLS]  # interval-major: a group's runs
                                                            # stay close together in time


def _pandas_resample(df, rule):
    aggs = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    return df.resample(rule, label="left", closed="left").agg(aggs)


def _polars_resample(df, every):
    import polars as pl

    return df.group_by_dynamic("ts", every=every).agg(
        pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
        pl.col("close").last(), pl.col("volume").sum(),
    )


@pytest.mark.parametrize("interval,impl", CASES, ids=[f"{iv}-{impl}" for iv, impl in CASES])
def bench_resample(benchmark, request, measure, bars, columns, cal, interval, impl):
    group = f"resample-{interval}"
    info = dict(group=group, label=impl, items=len(bars),
                nbytes=sum(a.nbytes for a in columns))
    rule, every = INTERVALS[interval]
    if impl == "np.copy":
        measure(benchmark, lambda: [np.copy(a) for a in columns], **info)
    elif impl == "sessiondata":
        out = measure(benchmark, sessiondata.resample, args=(bars, interval, cal), **info)
        assert out.interval.name == interval and len(out) > 0
    elif impl == "pandas":
        df = request.getfixturevalue("pandas_frame")
        out = measure(benchmark, _pandas_resample, args=(df, rule), peer=True, **info)
        assert int(out["open"].notna().sum()) == len(sessiondata.resample(bars, interval, cal))
    elif impl == "polars":
        df = request.getfixturevalue("polars_frame")
        out = measure(benchmark, _polars_resample, args=(df, every), peer=True, **info)
        assert out.height == len(sessiondata.resample(bars, interval, cal))
    else:  # pragma: no cover
        raise AssertionError(impl)
