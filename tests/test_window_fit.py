"""``validation.window_fit``, the plausibility check's counts of one symbol under one reading
(issue 18: one compiled pass instead of ~20 NumPy calls a file and reading), against the
NumPy computation it replaced, on random windows, spans and bars: windows cut by the span on
either side or outside it, bars before, between and after the windows, several bars to a
slot, sessions of several windows, mapped bounds out of order (a zone's fold)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessiondata._core import validation


def fit_reference(raw, o, c, o_raw, c_raw, sid, n_sessions, a, z, b):
    """The NumPy computation of ``plausibility.score_readings`` before the kernel."""
    top = np.minimum(c, z) - o
    bottom = np.maximum(o, a) - o
    slots = np.maximum(-(-top // b) - (-(-bottom // b)), 0)
    cnt = np.searchsorted(raw, c_raw, "left") - np.searchsorted(raw, o_raw, "left")
    cnt = np.maximum(cnt, 0)
    got = np.minimum(cnt, slots)
    per_session_slots = np.bincount(sid, weights=slots, minlength=n_sessions)
    per_session_bars = np.bincount(sid, weights=cnt, minlength=n_sessions)
    empty = int(np.count_nonzero((per_session_slots > 0) & (per_session_bars == 0)))
    return (int(got.sum()), int(cnt.sum()), int(slots.sum()), int((slots - got).sum()), empty)


@st.composite
def cases(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = int(draw(st.sampled_from([1, 7, 60, 300, 3600])))
    n_w = draw(st.integers(0, 40))
    gaps = rng.integers(0, 50 * b, n_w)
    lengths = rng.integers(0, 30 * b, n_w)
    o = np.cumsum(gaps + np.concatenate([[0], lengths[:-1]])).astype(np.int64) if n_w else \
        np.empty(0, np.int64)
    c = (o + lengths).astype(np.int64)
    # a session of one to three windows (a break between them)
    sid = (np.cumsum(rng.integers(0, 2, n_w)) if n_w else np.empty(0, np.int64)).astype(
        np.int64)
    n_sessions = int(sid.max()) + 1 + int(draw(st.integers(0, 2))) if n_w else \
        int(draw(st.integers(0, 2)))
    shift = int(draw(st.sampled_from([0, b, -b, 37])))
    o_raw, c_raw = o + shift, c + shift
    if n_w > 1 and draw(st.booleans()):      # bounds mapped out of order (a fold)
        k = int(rng.integers(n_w))
        o_raw[k] -= 40 * b
    top = int(c[-1]) + 60 * b if n_w else 100 * b
    n = int(draw(st.integers(0, 300)))
    raw = np.sort(rng.integers(-20 * b, top, n)).astype(np.int64)
    if n and draw(st.booleans()):
        raw = np.sort(np.concatenate([raw, raw[: n // 3]]))  # several bars at one time
    a = int(rng.integers(-20 * b, top))
    z = int(rng.integers(a, top + 20 * b))
    return raw, o, c, o_raw.astype(np.int64), c_raw.astype(np.int64), sid, n_sessions, a, z, b


@settings(max_examples=400, deadline=None)
@given(cases())
def test_window_fit_is_the_numpy_computation(case):
    raw, o, c, o_raw, c_raw, sid, n_sessions, a, z, b = case
    for x in (raw, o, c, o_raw, c_raw, sid):
        x.setflags(write=False)
    assert validation.window_fit(raw, o, c, o_raw, c_raw, sid, n_sessions, a, z, b) == \
        fit_reference(raw, o, c, o_raw, c_raw, sid, n_sessions, a, z, b)


def test_window_fit_names_what_is_wrong():
    one = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="close_ns"):
        validation.window_fit(one, one, np.zeros(2, np.int64), one, one, one, 1, 0, 1, 1)
    with pytest.raises(ValueError, match="base_ns must be positive"):
        validation.window_fit(one, one, one, one, one, one, 1, 0, 1, 0)
    with pytest.raises(ValueError, match="session 1 is outside"):
        validation.window_fit(one, one, one, one, one, np.ones(1, np.int64), 1, 0, 1, 1)
    assert validation.window_fit(*[np.empty(0, np.int64)] * 6, 0, 0, 1, 1) == (0, 0, 0, 0, 0)
