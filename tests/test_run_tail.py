"""The serial work around the engine's partitions (issue 18): each Parquet file's footer is
read once (the probe for a symbol column hands it to the reader), the classification needs
no BLAS (no float matrix product) and looks a slot's run up in a table, and the export's
gap datasets are written on a thread while the summary is made."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sessiondata import Calendar, job
from sessiondata.classify import (SLOT_BUDGET, _member_runs, _rate_times_slots, _slots,
                                  _starts)
from sessiondata.engine import Engine
from sessiondata.synthetic import universe

MINUTE = 60_000_000_000


def write_bars(path, start: str, n: int, price: float = 100.0, symbol: str | None = None):
    ts = np.datetime64(start, "ns").astype(np.int64) + MINUTE * np.arange(n, dtype=np.int64)
    cols = {"timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")),
            "open": np.full(n, price), "high": np.full(n, price + 1),
            "low": np.full(n, price - 1), "close": np.full(n, price),
            "volume": np.ones(n)}
    if symbol is not None:
        cols["symbol"] = [symbol] * n
    pq.write_table(pa.table(cols), path)


@pytest.fixture
def spy(monkeypatch):
    """The ``metadata`` given to every ``pyarrow.parquet.ParquetFile`` opened, by file."""
    opened: list[tuple[str, object]] = []
    real = pq.ParquetFile

    def parquet_file(source, *args, **kw):
        opened.append((str(getattr(source, "name", source)), kw.get("metadata")))
        return real(source, *args, **kw)

    monkeypatch.setattr(pq, "ParquetFile", parquet_file)
    return opened


def load_all(sources):
    return {s: b for src in sources for s, b in src.load().bars.items()}


def test_the_probe_hands_each_footer_to_the_reader(tmp_path, spy):
    cal = Calendar.always()
    for name, price in (("AAA", 10.0), ("BBB", 20.0), ("CCC", 30.0)):
        write_bars(tmp_path / f"{name}.parquet", "2024-01-02T10:00", 30, price)
    sources = job.file_sources(tmp_path, cal, "1m", "raise", {})
    assert [s.name for s in sources] == ["AAA.parquet", "BBB.parquet", "CCC.parquet"]
    probed = list(spy)
    assert len(probed) == 3 and all(md is None for _, md in probed)   # the footer read once
    spy.clear()
    bars = load_all(sources)
    assert len(spy) == 3 and all(md is not None for _, md in spy)     # ... and not again
    assert {s: float(b.close[0]) for s, b in bars.items()} == {"AAA": 10.0, "BBB": 20.0,
                                                               "CCC": 30.0}


def test_a_file_changed_after_the_probe_is_read_afresh(tmp_path, spy):
    cal = Calendar.always()
    write_bars(tmp_path / "AAA.parquet", "2024-01-02T10:00", 30, 10.0)
    write_bars(tmp_path / "BBB.parquet", "2024-01-02T10:00", 30, 20.0)
    sources = job.file_sources(tmp_path, cal, "1m", "raise", {})
    # Rewritten with other rows between the probe and the read: its old footer would point
    # at the wrong bytes.
    write_bars(tmp_path / "BBB.parquet", "2024-01-02T09:00", 95, 21.0)
    spy.clear()
    bars = load_all(sources)
    given = {name.rsplit("/", 1)[-1]: md for name, md in spy}
    assert given["AAA.parquet"] is not None and given["BBB.parquet"] is None
    assert len(bars["BBB"]) == 95 and float(bars["BBB"].close[0]) == 21.0


def test_a_broken_file_is_still_named_by_the_reader(tmp_path):
    cal = Calendar.always()
    write_bars(tmp_path / "AAA.parquet", "2024-01-02T10:00", 30)
    (tmp_path / "BBB.parquet").write_bytes(b"PAR1 but not really a Parquet file")
    sources = job.file_sources(tmp_path, cal, "1m", "raise", {})
    assert [s.name for s in sources] == ["AAA.parquet", "BBB.parquet"]
    with pytest.raises(ValueError, match=r"BBB\.parquet: not a readable Parquet file"):
        load_all(sources)


def test_a_symbol_column_in_one_file_reads_the_folder_whole(tmp_path):
    cal = Calendar.always()
    write_bars(tmp_path / "AAA.parquet", "2024-01-02T10:00", 30, 10.0)
    write_bars(tmp_path / "mixed.parquet", "2024-01-02T10:00", 20, 30.0, symbol="ZZZ")
    sources = job.file_sources(tmp_path, cal, "1m", "raise", {})
    assert len(sources) == 1
    bars = load_all(sources)
    assert sorted(bars) == ["AAA", "ZZZ"] and len(bars["ZZZ"]) == 20


# -- the classification --------------------------------------------------------------------


def test_rate_times_slots_is_the_matrix_product_summed_in_bucket_order():
    rng = np.random.default_rng(3)
    rate = rng.random((7, 48))
    e_kb = rng.integers(0, 31, (40, 48)).astype(np.float64)
    got = _rate_times_slots(rate, e_kb)
    want = np.zeros((7, 40))
    for b in range(48):   # one term at a time, in order: the same bits on every machine
        want = want + rate[:, b][:, None] * e_kb[:, b][None, :]
    assert got.dtype == np.float64 and got.shape == (7, 40)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, rate @ e_kb.T, rtol=1e-13)
    ones = (rng.random((7, 48)) < 0.5).astype(np.float64)   # integers: exact either way
    np.testing.assert_array_equal(_rate_times_slots(ones, e_kb), ones @ e_kb.T)


def test_run_of_by_table_equals_the_search():
    u = universe(5, 12, seed=1)
    run = Engine(u.calendar, derived=()).run(u.bars)
    for step in (MINUTE, 5 * MINUTE, 7 * MINUTE):
        sl = _slots(run, step, 30 * MINUTE)
        assert sl.n <= SLOT_BUDGET
        slot = np.r_[np.arange(sl.n), sl.n, sl.n + 5,
                     np.random.default_rng(0).integers(0, sl.n, 1000)]
        want = np.searchsorted(sl.run_start, slot, side="right") - 1
        np.testing.assert_array_equal(sl.run_of(slot), want)
        np.testing.assert_array_equal(sl.run_of(slot[:10]), want[:10])   # searched



@pytest.mark.parametrize("n", [50, 1000, SLOT_BUDGET + 1])
def test_starts_equal_unique(n):
    rng = np.random.default_rng(n)
    start = rng.integers(0, min(n, 900), 400).astype(np.int64)
    length = (start % 7 + 1).astype(np.int64)   # pieces that start together end together
    u, first, inv = np.unique(start, return_index=True, return_inverse=True)
    got_u, got_inv, got_len = _starts(start, length, n)
    np.testing.assert_array_equal(got_u, u)
    np.testing.assert_array_equal(got_inv, inv)
    np.testing.assert_array_equal(got_len, length[first])
    assert got_u.dtype == np.int64 and got_len.dtype == np.int64


def test_member_runs_give_back_membership_and_its_sums():
    rng = np.random.default_rng(5)
    member = rng.random((30, 40)) < 0.7
    member[0] = False          # never a member
    member[1] = True           # always
    member[2, ::2] = True      # every other session
    member[2, 1::2] = False
    sym, first, end = _member_runs(member)
    back = np.zeros_like(member)
    for s, a, b in zip(sym.tolist(), first.tolist(), end.tolist()):
        assert a < b and not back[s, a:b].any()
        back[s, a:b] = True
    np.testing.assert_array_equal(back, member)
    assert 0 not in sym.tolist() and sym.tolist() == sorted(sym.tolist())
    assert _member_runs(np.zeros((3, 0), bool))[0].size == 0

# -- the export's datasets, written on a thread while the summary is made ------------------


def test_a_summary_that_raises_leaves_no_export_and_no_thread(tmp_path):
    import threading

    u = universe(4, 3, seed=2)

    def summary(run):
        raise RuntimeError("the summary failed")

    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="the summary failed"):
        job.run(u.bars, u.calendar, out=out, summary=summary)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []     # no staging folder left
    assert not [t for t in threading.enumerate() if t.name.startswith("sessiondata-gaps")]


def test_the_summary_and_the_datasets_land_together(tmp_path):
    import json

    u = universe(4, 3, seed=2)
    out = tmp_path / "out"
    run = job.run(u.bars, u.calendar, out=out, summary=lambda r: {"gaps": int(
        sum(len(t.gap_symbol) for t in r.intervals.values()))})
    manifest = json.loads((out / "manifest.json").read_text())
    gaps = sum(pq.read_table(p).num_rows for p in (out / "gaps").rglob("*.parquet"))
    assert manifest["summary"] == {"gaps": gaps}
    assert gaps == sum(len(t.gap_symbol) for t in run.intervals.values()) > 0
