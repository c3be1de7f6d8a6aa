"""Finding gaps in 1m bars: sessiondata against a NumPy copy of its input and pandas.

The pandas peer is the plain way to do it there: reindex one column to every minute of the
sessions the bars touch (UTC days on the 24/7 calendar), then find the runs of NaN.  It does
not split a run at midnight as sessiondata does (a gap never spans a session's close), so the
check after timing compares missing minutes, not run counts.
"""

from __future__ import annotations

import numpy as np
import pytest

import sessiondata

IMPLS = ("np.copy", "sessiondata", "pandas")
DAY_NS = 86_400_000_000_000


def _pandas_gaps(close, start_ns, end_ns):
    import pandas as pd

    full = pd.date_range(pd.Timestamp(start_ns), pd.Timestamp(end_ns), freq="min",
                         inclusive="left")
    missing = close.reindex(full).isna().to_numpy()
    edges = np.diff(missing.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    first = np.flatnonzero(edges == 1)
    count = np.flatnonzero(edges == -1) - first
    return full.asi8[first], count


@pytest.mark.parametrize("impl", IMPLS)
def bench_find_gaps(benchmark, request, measure, bars, columns, cal, impl):
    info = dict(group="find-gaps", label=impl, items=len(bars),
                nbytes=sum(a.nbytes for a in columns))
    if impl == "np.copy":
        measure(benchmark, lambda: [np.copy(a) for a in columns], **info)
    elif impl == "sessiondata":
        out = measure(benchmark, lambda: sessiondata.find_gaps(bars, calendar=cal,
                                                              ), **info)
        assert out.missing > 0 and out.present == len(bars)
    elif impl == "pandas":
        close = request.getfixturevalue("pandas_frame")["close"]
        start = int(bars.ts[0]) // DAY_NS * DAY_NS
        end = (int(bars.ts[-1]) // DAY_NS + 1) * DAY_NS
        _starts, count = measure(benchmark, _pandas_gaps, args=(close, start, end), peer=True,
                                 **info)
        ours = sessiondata.find_gaps(bars, calendar=cal)
        assert int(count.sum()) == ours.missing
    else:  # pragma: no cover
        raise AssertionError(impl)
