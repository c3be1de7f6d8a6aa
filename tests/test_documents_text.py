"""The session documents as written (``documents._doc_writer`` and the files of
``write_session_docs``: compiled from the model's columns by ``_core/render.pyx``) are byte
for byte ``dumps(session_doc, indent=False)`` (``documents._doc_maker``: a dict per
document), on runs that hold every optional part of a document: symbols in some sessions
only, bars rejected, scored spans cut inside a session, gap kinds, anomalies, odd symbol
names; for any share of the sessions written in one call, and by threads."""

from __future__ import annotations

import numpy as np
import pytest

import sessiondata as sd
from sessiondata import documents
from sessiondata.documents import dumps, session_docs
from sessiondata.engine import SymbolEvent

MINUTE = 60_000_000_000


def _walk(ts: np.ndarray, seed: int) -> sd.Bars:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.1, len(ts)))
    return sd.Bars(ts, close, close + 0.05, close - 0.05, close, rng.integers(1, 100, len(ts))
                   .astype(float))


def _assert_same(result, splits=((0, None),), folder=None) -> int:
    expected = [dumps(d, indent=False) for d in session_docs(result)]
    n_k = result.windows.n_sessions
    write = documents._doc_writer(result)
    for k in range(n_k):
        label, text = write(k)
        assert label == str(result.sessions[k])
        assert text == expected[k], k
    if folder is not None:
        docs = documents._Documents(result)
        for i, (k0, k1) in enumerate(splits):
            k1 = n_k if k1 is None else k1
            share = folder / f"share{i}"
            share.mkdir()
            docs.write(range(k0, k1), share)
            assert sorted(p.name for p in share.iterdir()) == sorted(
                f"{result.sessions[k]}.json" for k in range(k0, k1))
            for k in range(k0, k1):
                assert (share / f"{result.sessions[k]}.json").read_bytes() == expected[k], k
        for workers in (1, 3):
            every = folder / f"workers{workers}"
            every.mkdir()
            documents.write_session_docs(result, every, workers=workers)
            assert [(every / f"{label}.json").read_bytes() for label in result.sessions] \
                == expected
    return n_k


@pytest.fixture(scope="module")
def weekly():
    return sd.Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri")


def test_text_equals_dict_documents_with_every_optional_part(weekly, tmp_path):
    first = weekly.session_windows("2024-03-04")
    last = weekly.session_windows("2024-03-15")
    o, c = int(first.open_ns[0]), int(last.close_ns[-1])
    rng = np.random.default_rng(3)
    data = {}
    names = ["AAA", 'q"uo%te', "ÉTÉ", "B,C", "Z}{", "p%s%%s"]
    for i, name in enumerate(names):
        wins = weekly.windows(o, c)
        ts = np.concatenate([np.arange(a, b, MINUTE) for a, b in
                             zip(wins.open_ns.tolist(), wins.close_ns.tolist())])
        keep = rng.random(len(ts)) > 0.02
        keep[200 + 50 * i:260 + 50 * i] = False          # a long gap (a kind: halt/outage)
        ts = ts[keep][37 * i:len(ts) - 23 * i or None]   # cut starts and ends: scored spans
        data[name] = _walk(ts, i)
    day = weekly.session_windows("2024-03-06")
    add = int(day.open_ns[0]) + 95 * MINUTE
    events = [SymbolEvent("2024-03-06", add, "NEW", "add", "+NEW"),
              SymbolEvent("2024-03-06", add + 60 * MINUTE, "AAA", "remove", "-AAA")]
    data["NEW"] = _walk(np.arange(int(day.open_ns[0]), int(day.close_ns[-1]), MINUTE), 9)
    bad = data["B,C"]
    high = bad.high.copy()
    high[500] = bad.low[500] - 1.0                       # rejected: high below low
    data["B,C"] = sd.Bars(bad.ts, bad.open, high, bad.low, bad.close, bad.volume,
                          interval="1m", validate=False)
    result = sd.run(data, weekly, events=events, on_bad="drop")
    assert result.rejected, "the run must hold rejected bars"
    assert not result.member.all(), "a symbol must be absent from some session"
    assert any(t.gap_kind is not None for t in result.intervals.values())
    n_k = _assert_same(result, [(0, None), (0, 3), (3, 7), (7, None)], tmp_path)
    assert n_k == 10


def test_text_equals_dict_documents_with_anomalies(tmp_path):
    cal = sd.Calendar.always()
    ts = np.datetime64("2024-01-01", "ns").astype(np.int64) + np.arange(5 * 1440) * MINUTE
    bars = _walk(ts, 1)
    close = bars.close.copy()
    close[3000] *= 1.5                                  # a spike
    close[4000:4200] = close[4000]                      # stale
    spiked = sd.Bars(ts, close, np.maximum(close, bars.high), np.minimum(close, bars.low),
                     close, bars.volume)
    assert spiked is not None
    result = sd.run({"S": spiked, "T": _walk(ts, 2)}, cal, derived=("15m",))
    assert result.anomalies is not None and len(result.anomalies), "anomalies must be found"
    _assert_same(result, [(0, None), (1, 4)], tmp_path)


def test_text_equals_dict_documents_of_the_cli_sample(tmp_path):
    from sessiondata import cli
    import sessiondata.export as ex

    runs = []
    original = ex.write_run

    def keep(run, folder, **kw):
        runs.append(run)
        return original(run, folder, **kw)

    ex.write_run = keep
    try:
        assert cli.main(["run", "--out", str(tmp_path / "out"), "-q"]) == 0
    finally:
        ex.write_run = original
    run = runs[0]
    _assert_same(run, [(0, None), (1, 2)], tmp_path)
    for k, doc in enumerate(session_docs(run)):
        written = (tmp_path / "out" / "sessions" / f"{doc['session']}.json").read_bytes()
        assert written == dumps(doc, indent=False)
