"""The compiled renderer of the session documents (``_core/render.pyx``): its numbers are
orjson's text (the floats it writes itself, and those it leaves to orjson), its documents
are the dict path's bytes on the real files of ``../shared/data`` and on generated runs
(anomalies on and off, odd per-symbol intervals, floats in every form), threads write what
one thread writes, and bad input or a failed write says what and where."""

from __future__ import annotations

import errno
import math
import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

import sessiondata as sd
from sessiondata import documents
from sessiondata._core import render
from sessiondata.documents import dumps, session_docs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MINUTE = 60_000_000_000


def _expected(result) -> list[bytes]:
    return [dumps(d, indent=False) for d in session_docs(result)]


def _assert_texts_equal(result) -> list[bytes]:
    expected = _expected(result)
    write = documents._doc_writer(result)
    for k in range(result.windows.n_sessions):
        label, text = write(k)
        assert label == str(result.sessions[k])
        assert text == expected[k], label
    return expected


# -- numbers ------------------------------------------------------------------------------------


def _values(rng: np.random.Generator, digits: int) -> list[float]:
    """Floats rounded as the documents round them, over every magnitude that can occur and
    beyond, with the edges of the renderer's plain range and values orjson writes in forms
    of its own."""
    mags = np.exp(rng.uniform(np.log(1e-9), np.log(1e14), 20_000))
    signs = rng.choice([-1.0, 1.0], mags.size)
    out = np.round(mags * signs, digits).tolist()
    # quality-like ratios (100 * k / n) and coverage-like sums of fractions
    n = rng.integers(1, 100_000, 5_000)
    out += [round(100 * int(k) / int(m), digits) for k, m in zip(rng.integers(0, n), n)]
    out += [round(float(c) / 60 * 7, digits) for c in rng.integers(0, 10_000, 2_000)]
    edges = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e-4, 1e-5, 1.2e-5, 1e-6,
             9.9e-6, 1e-7, 100.0, 99.99995, 1e15, 1e16, 2.0**50 / 10**digits,
             2.0**50 / 10**digits * 0.999999, 123456789.123456, 0.1 + 0.2]
    return out + [round(v, digits) if math.isfinite(v) else v for v in edges] + edges


@pytest.mark.parametrize("digits", (0, 1, 4, 6, 9))
def test_every_float_the_renderer_writes_is_orjsons_text(digits):
    values = _values(np.random.default_rng(digits), digits)
    plain = render.plain_floats(np.array(values), digits)
    written = 0
    for v, p in zip(values, plain.tolist()):
        text = render.format_float(v, digits)
        assert (text is not None) == bool(p), v
        if text is not None:
            assert text == orjson.dumps(v), (v, digits)
            written += 1
    # The renderer writes nearly all of them itself (else the fast path is not taken) and
    # leaves the forms it does not write to orjson.
    assert written > 0.5 * len(values)
    for v in (-0.0, math.nan, math.inf, 1e16):
        assert render.format_float(v, digits) is None
    if digits >= 6:
        assert render.format_float(1e-6, digits) is None       # orjson: 1e-6
        assert render.format_float(1e-5, digits) == b"0.00001"  # orjson: 0.00001


def test_digits_out_of_range_are_refused():
    with pytest.raises(ValueError, match="digits must be 0..9"):
        render.plain_floats(np.zeros(3), 10)
    with pytest.raises(ValueError, match="digits must be 0..9"):
        render.format_float(1.0, -1)


# -- documents ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weekly():
    return sd.Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri")


def _walk(ts: np.ndarray, seed: int) -> sd.Bars:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.1, len(ts)))
    return sd.Bars(ts, close, close + 0.05, close - 0.05, close,
                   rng.integers(1, 100, len(ts)).astype(float))


def _run(weekly, n_symbols=4, first="2024-03-04", last="2024-03-08", **kw):
    o = int(weekly.session_windows(first).open_ns[0])
    c = int(weekly.session_windows(last).close_ns[-1])
    wins = weekly.windows(o, c)
    ts = np.concatenate([np.arange(a, b, MINUTE)
                         for a, b in zip(wins.open_ns.tolist(), wins.close_ns.tolist())])
    rng = np.random.default_rng(n_symbols)
    data = {}
    for i in range(n_symbols):
        keep = rng.random(len(ts)) > 0.03
        keep[100 + 40 * i:170 + 40 * i] = False
        data[f"S{i}"] = _walk(ts[keep][11 * i:len(ts) - 7 * i or None], i)
    return sd.run(data, weekly, **kw)


def test_floats_left_to_orjson_are_written_as_orjson_writes_them(weekly):
    """Values the renderer does not write itself (exponent forms, -0.0, NaN, values past
    its exact range) come from orjson's text, in the cells and on the gaps."""
    result = _run(weekly)
    t = result.intervals["5m"]
    assert t.gap_kind is not None and len(t.gap_start) > 3
    t.covered = t.covered.copy()
    t.covered[0, 0] = 1.2e-6          # coverage 1e-06, score ~ 1e-05 / 1e-06 ...
    t.covered[1, 1] = 3e13            # past 2**50 / 10**6
    t.covered[2, 2] = math.nan
    t.gap_activity = t.gap_activity.copy()
    t.gap_share = t.gap_share.copy()
    t.gap_activity[0] = -0.00001      # rounds to -0.0
    t.gap_activity[1] = 4e-7          # rounds to 0.0
    t.gap_share[2] = math.nan         # no cross-section: null
    t.gap_share[3] = 2e12
    expected = _assert_texts_equal(result)
    text = b"".join(expected)
    for form in (b'"coverage":1e-6', b'"coverage":30000000000000.0', b'"coverage":null',
                 b'"activity":-0.0', b'"share_missing":null'):
        assert form in text, form


def test_symbols_with_their_own_intervals_in_their_own_order(weekly):
    result = _run(weekly)
    result.symbol_derived = {"S1": ["1h", "5m"], "S2": []}
    _assert_texts_equal(result)


@pytest.mark.parametrize("anomalies", ("default", "none"))
def test_generated_runs_exported_equal_the_dict_documents(tmp_path, anomalies):
    from sessiondata.synthetic import anomaly_universe

    u = anomaly_universe(n_symbols=6, n_sessions=8, seed=4)
    kw = {} if anomalies == "default" else {"anomalies": "none"}
    result = sd.run(u.bars, calendar=u.calendar, out=tmp_path / "out", **kw)
    assert (result.anomalies is None) == (anomalies == "none")
    if anomalies == "default":
        assert result.anomalies is not None and len(result.anomalies)
    expected = _assert_texts_equal(result)
    for label, text in zip(result.sessions, expected):
        assert (tmp_path / "out" / "sessions" / f"{label}.json").read_bytes() == text


def test_threads_write_what_one_thread_writes_and_a_failure_is_raised(weekly, tmp_path,
                                                                      monkeypatch):
    result = _run(weekly, first="2024-03-04", last="2024-03-29")
    monkeypatch.setattr(documents, "MIN_SESSIONS_PER_WORKER", 3)
    expected = _expected(result)
    for workers in (1, 2, 4):
        out = tmp_path / f"w{workers}"
        out.mkdir()
        documents.write_session_docs(result, out, workers=workers)
        assert [(out / f"{label}.json").read_bytes() for label in result.sessions] == expected

    original = documents._Documents.write

    def broken(self, sessions, folder):
        if sessions[0] > 0:
            raise OSError(errno.ENOSPC, "no space left", str(folder))
        return original(self, sessions, folder)

    monkeypatch.setattr(documents._Documents, "write", broken)
    out = tmp_path / "broken"
    out.mkdir()
    with pytest.raises(RuntimeError, match="writing the session documents into .* failed") \
            as caught:
        documents.write_session_docs(result, out, workers=4)
    assert isinstance(caught.value.__cause__, OSError)


def test_the_waiting_thread_writes_documents_too(weekly, tmp_path, monkeypatch):
    """The caller of ``wait`` takes shares of the documents once its own work is done, rather
    than idling while the document threads finish (issue 18: the export's tail)."""
    import threading
    import time

    result = _run(weekly, first="2024-03-04", last="2024-03-29")
    monkeypatch.setattr(documents, "MIN_SESSIONS_PER_WORKER", 3)
    expected = _expected(result)
    original = documents._Documents.write
    writers: list[tuple[str, int]] = []

    def slow_off_main(self, sessions, folder):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.05)   # a busy document thread: the caller must not wait it out idle
        writers.append((threading.current_thread().name, len(sessions)))
        return original(self, sessions, folder)

    monkeypatch.setattr(documents._Documents, "write", slow_off_main)
    out = tmp_path / "out"
    out.mkdir()
    documents.write_session_docs(result, out, workers=2)
    assert [(out / f"{label}.json").read_bytes() for label in result.sessions] == expected
    by_main = sum(n for name, n in writers if name == threading.main_thread().name)
    assert 0 < by_main < len(result.sessions)
    assert sum(n for _, n in writers) == len(result.sessions)   # each document once


def test_a_document_that_cannot_be_written_names_its_file(weekly, tmp_path):
    result = _run(weekly, n_symbols=2)
    docs = documents._Documents(result)
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError) as caught:
        docs.write(range(2), missing)
    assert caught.value.filename == str(missing / f"{result.sessions[0]}.json")


def test_bad_layouts_are_refused(weekly):
    result = _run(weekly, n_symbols=2)
    renderer = documents._renderer(result)
    with pytest.raises(IndexError, match="session 99 out of range"):
        renderer.render(99, b"", b"")
    with pytest.raises(IndexError, match="session -1 out of range"):
        renderer.write_files([-1], [b""], [b""], [b"/tmp/x"])
    with pytest.raises(ValueError, match="1 sessions, 0 heads"):
        renderer.write_files([0], [], [b""], [b"/tmp/x"])
    with pytest.raises(ValueError, match="NUL byte"):
        renderer.write_files([0], [b""], [b""], [b"/tmp/\0x"])
    t = result.intervals["1m"]
    t.gap_kind = t.gap_kind.copy()
    t.gap_kind[0] = 17
    with pytest.raises(ValueError, match="interval 1m: gap kind codes outside"):
        documents._renderer(result)


def test_renderer_checks_its_arrays():
    def args(**over):
        n_iv, n_s, n_k, n_g = 1, 1, 1, 1
        a = dict(ints=np.zeros((n_iv, 5, n_s, n_k), np.int64),
                 floats=np.zeros((n_iv, 3, n_s, n_k)),
                 float_alt=np.full((n_iv, 3, n_s, n_k), -1, np.int32),
                 gap_off=np.array([[0, n_g]], np.int64),
                 gap_start=np.zeros(n_g, np.int32), gap_end=np.zeros(n_g, np.int32),
                 gap_count=np.ones(n_g, np.int64), gap_kind=np.zeros(n_g, np.int8),
                 gap_activity=np.zeros(n_g), gap_share=np.zeros(n_g),
                 activity_alt=np.full(n_g, -1, np.int32), share_alt=np.full(n_g, -1, np.int32),
                 iv_kinds=np.ones(n_iv, np.uint8), iv_name=np.zeros(n_iv, np.int32),
                 scored=np.ones((n_iv, n_s), np.uint8), symbol_ivs=np.zeros((n_s, 1), np.int32),
                 symbol_head=np.zeros(n_s, np.int32), member=np.ones((n_s, n_k), np.uint8),
                 loaded=np.ones((n_s, n_k), np.uint8),
                 rejected=np.full((n_s, n_k), -1, np.int32),
                 tail=np.full((n_s, n_k), -1, np.int32),
                 anomalies=np.full((n_s, n_k), -1, np.int32),
                 kind_name=np.zeros(1, np.int32), texts=np.frombuffer(b'"x"', np.uint8),
                 text_off=np.array([0, 3], np.int64), anomaly_iv=-1, no_anomaly=0,
                 float_digits=(4, 6, 4), gap_digits=4)
        a.update(over)
        return a

    # The whole grammar of a symbol's part, from a layout made by hand.
    assert render.SessionRenderer(**args()).render(0, b"{", b"}") == (
        b'{"x"true,"rejected":{},"intervals":{"x"0,"quality":{"score":0.0,"expected":0,'
        b'"present":0,"missing":0,"partial":0,"coverage":0.0,"rejected":{},'
        b'"data_quality":0.0,"lost":0},"gaps":{"gap_count":1,"missing_bars":1,"ranges":'
        b'[{"start_time":"00:00:00","end_time":"00:00:00","bar_count":1,"kind":"x",'
        b'"activity":0.0,"share_missing":0.0}],"kinds":{"x":{"gap_count":1,'
        b'"missing_bars":1}}}}}}}')
    for over, message in (
            ({"gap_off": np.array([[0, 2]], np.int64)}, "gap offsets"),
            ({"gap_start": np.array([86_400], np.int32)}, "gap_start outside"),
            ({"gap_kind": np.array([1], np.int8)}, "gap_kind outside"),
            ({"gap_end": np.zeros(2, np.int32)}, "gap_end has 2 values for 1 gaps"),
            ({"symbol_ivs": np.array([[3]], np.int32)}, "symbol_ivs"),
            ({"rejected": np.array([[5]], np.int32)}, "rejected: text index"),
            ({"member": np.ones((2, 1), np.uint8)}, "member of shape"),
            ({"text_off": np.array([0, 2], np.int64)}, "text offsets"),
            ({"floats": np.zeros((1, 2, 1, 1))}, "cell arrays"),
            ({"float_digits": (4, 6, 12)}, "float_digits must be"),
    ):
        with pytest.raises(ValueError, match=message):
            render.SessionRenderer(**args(**over))
    # A float that is neither plain nor given a text is an error, not a silent number.
    bad = args(floats=np.full((1, 3, 1, 1), math.nan))
    with pytest.raises(ValueError, match="a float the renderer cannot write"):
        render.SessionRenderer(**bad).render(0, b"", b"")


# -- the real files -----------------------------------------------------------------------------

REAL = {
    "cme": ("6EH4.XCME_1min_bars_20240101_20240131.csv.gz",
            "--calendar", "CME_GLOBEX", "--stamp", "end", "--tz", "UTC"),
    "btc": ("btc-perp-20211231-20220201_1m.csv", "--calendar", "24/7"),
    "fx": ("usdjpy-m1-bid-2013.csv", "--calendar", "FX"),
    "xetr": ("2006-min-005.txt", "--calendar", "XETR", "--base", "5m",
             "--tz", "Europe/Berlin", "--stamp", "end"),
    "binance": ("ADABTC-1m-2021-11-27.csv", "--format", "binance", "--calendar", "24/7"),
    "lean": ("lean/equity/usa/minute/aapl/20140605_trade.zip", "--format", "lean",
             "--calendar", "XNYS"),
    "databento": ("futures_ohlcv-1m_2024-07-01T23-40_2024-07-02T00-10.dbn.zst",
                  "--format", "databento", "--calendar", "CME_GLOBEX"),
}


@pytest.mark.data
@pytest.mark.parametrize("anomalies", ("default", "none"))
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_files_exported_equal_the_dict_documents(name, anomalies, tmp_path):
    from sessiondata import cli
    import sessiondata.export as ex

    path, *options = REAL[name]
    if not (DATA / path).exists():
        pytest.skip("shared data not present")
    if name == "databento":
        pytest.importorskip("databento_dbn")
        pytest.importorskip("zstandard")
    extra = [] if anomalies == "default" else ["--anomalies", "none"]
    runs = []
    original = ex.write_run

    def keep(run, folder, **kw):
        runs.append(run)
        return original(run, folder, **kw)

    ex.write_run = keep
    try:
        out = tmp_path / "out"
        assert cli.main(["run", str(DATA / path), *options, *extra, "--out", str(out),
                         "-q"]) == 0
    finally:
        ex.write_run = original
    run = runs[0]
    expected = _assert_texts_equal(run)
    names = sorted(p.name for p in (out / "sessions").iterdir())
    assert names == sorted(f"{label}.json" for label in run.sessions)
    for label, text in zip(run.sessions, expected):
        assert (out / "sessions" / f"{label}.json").read_bytes() == text, label


def test_a_layout_that_fails_is_raised_before_any_thread_starts(weekly, tmp_path,
                                                                 monkeypatch):
    """The columns are laid out by the caller, before the document threads start: a layout
    that fails raises as it is, no thread is left running and no file is written."""
    result = _run(weekly, first="2024-03-04", last="2024-03-29")
    monkeypatch.setattr(documents, "MIN_SESSIONS_PER_WORKER", 3)

    def broken(run):
        raise ValueError("interval 1m: gap kind codes outside 0..4")

    monkeypatch.setattr(documents, "_renderer", broken)
    before = {t.name for t in threading.enumerate()}
    for workers in (4, 1):
        with pytest.raises(ValueError, match="gap kind codes"):
            documents.write_session_docs(result, tmp_path, workers=workers)
        assert list(tmp_path.iterdir()) == []
        assert not {t.name for t in threading.enumerate()} - before
