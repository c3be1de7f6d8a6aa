"""One pass through the main job (issue 18, point 1): the calendar's windows laid out once per
file and cut for each symbol and each check; the same results as laying them out each time.

- ``WindowSpan.windows(a, b)`` equals ``Calendar.windows(a, b)`` for every range, inside the
  span (sliced) or not (the calendar's own answer), on calendars with one window a session,
  lunch breaks, overnight sessions and 24/7 days.
- The engine, the session check and the plausibility check give the same answers with the
  span as without it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sessiondata as sd
from sessiondata.calendar import WindowSpan, Windows

NS = 1_000_000_000
MINUTE = 60 * NS
DAY = 86_400 * NS


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


CALENDARS = {
    "always": lambda: sd.Calendar.always(),
    "XNYS": lambda: sd.Calendar.exchange("XNYS"),
    "XHKG": lambda: sd.Calendar.exchange("XHKG"),       # lunch breaks
    "CME_GLOBEX": lambda: sd.Calendar.exchange("CME_GLOBEX"),   # sessions from the evening
    "FX": lambda: sd.Calendar.fx(),
}


def same_windows(got: Windows, want: Windows) -> None:
    assert got == want
    for name in ("open_ns", "close_ns", "session_ids"):
        assert getattr(got, name).dtype == np.int64
        assert not getattr(got, name).flags.writeable
    assert got.sessions.dtype == np.dtype("datetime64[D]")
    assert np.array_equal(got.session_open_ns, want.session_open_ns)
    assert np.array_equal(got.session_close_ns, want.session_close_ns)
    assert got.n_sessions == want.n_sessions and len(got) == len(want)


@pytest.fixture(scope="module", params=sorted(CALENDARS))
def calendar(request):
    return CALENDARS[request.param]()


@given(a=st.integers(0, 40 * DAY), b=st.integers(0, 40 * DAY),
       c=st.integers(-3 * DAY, 45 * DAY), d=st.integers(0, 10 * DAY),
       grid=st.sampled_from([1, MINUTE, 30 * MINUTE]))
def test_span_cuts_the_calendars_windows(calendar, a, b, c, d, grid):
    origin = ns("2024-01-01T00:00")
    lo, hi = sorted((a, b))
    lo, hi = origin + lo // grid * grid, origin + hi // grid * grid
    span = WindowSpan(calendar, lo, hi)
    same_windows(span.all, calendar.windows(lo, hi))
    # A range inside the span (sliced), and one that may reach outside (the calendar's).
    for start, end in ((lo + (c % (hi - lo + 1)) if hi > lo else lo, None),
                       (origin + c, origin + c + d)):
        if end is None:
            end = start + (d % (hi - start + 1))
        same_windows(span.windows(start, end), calendar.windows(start, end))


@pytest.mark.parametrize("code", sorted(CALENDARS))
def test_span_edges(code):
    calendar = CALENDARS[code]()
    lo, hi = ns("2024-03-01T00:00"), ns("2024-03-15T00:00")
    span = WindowSpan(calendar, lo, hi)
    w = span.all
    # Every window edge, and one ns either side, as starts and ends of a range.
    edges = sorted({int(x) + e for x in np.r_[w.open_ns, w.close_ns] for e in (-1, 0, 1)
                    if lo <= int(x) + e <= hi} | {lo, hi})
    for i, start in enumerate(edges):
        for end in edges[i:i + 7]:
            same_windows(span.windows(start, end), calendar.windows(start, end))
    assert span.windows(lo, hi) is w
    assert len(span.windows(lo, lo)) == 0
    with pytest.raises(ValueError):
        span.windows(hi, lo)


def test_span_of_an_empty_range_and_errors():
    calendar = sd.Calendar.exchange("XNYS")
    saturday = ns("2024-03-02T12:00")
    span = WindowSpan(calendar, saturday, saturday + 3600 * NS)
    assert len(span.all) == 0
    assert len(span.windows(saturday, saturday + NS)) == 0
    # Outside the span: the calendar's own answer (here a whole week).
    same_windows(span.windows(saturday, saturday + 7 * DAY),
                 calendar.windows(saturday, saturday + 7 * DAY))
    with pytest.raises(ValueError):
        WindowSpan(calendar, 10, 5)
