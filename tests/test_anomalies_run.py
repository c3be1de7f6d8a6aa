"""The anomaly detectors wired into a run (issue 22): the engine's per-symbol pass, the
results model's columns, the documents' ``anomalies`` section, ``OUT/anomalies/``, the
summary, the CLI options, ``validate`` and ``check``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import sessiondata as sd
from sessiondata import anomalies as an
from sessiondata.export import read_dataset, read_manifest, validate_export
from sessiondata.results import ANOMALY_KINDS

M = 60_000_000_000
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def test_model_kinds_are_the_detectors_kinds():
    assert ANOMALY_KINDS == an.KINDS
    assert an.FILLED == 0   # the engine's gap kind of a filled run keys on code 0


@pytest.fixture(scope="module")
def universe():
    from sessiondata.synthetic import anomaly_universe

    # No stamp-convention case: its sessions end with a bar stamped at the close, outside
    # every session window, which a run refuses (policy raise) before any detector sees it.
    return anomaly_universe(n_symbols=6, n_sessions=30, seed=3, rates={"clock_stamp": 0.0})


@pytest.fixture(scope="module")
def exported(universe, tmp_path_factory):
    out = tmp_path_factory.mktemp("anom") / "out"
    run = sd.run(universe.bars, calendar=universe.calendar, out=out, threads=2,
                 summary=lambda r: sd.summary.Summary(r, str(out)).to_json())
    return run, out


def _rows_of(run, symbol):
    a = run.anomalies
    s = run.symbols.index(symbol)
    m = (a.symbol == s) & (a.part == 0)
    return a, m


def test_engine_finds_what_detect_symbol_finds(universe, exported):
    """Each symbol's anomalies in the run are detect_symbol's over its whole range (the
    first part of each; the parts cover the same kinds and bars)."""
    run, _ = exported
    assert run.anomalies is not None and len(run.anomalies) > 0
    total = 0
    for symbol, bars in universe.bars.items():
        w = universe.calendar.windows(int(bars.ts[0]), int(bars.ts[-1]) + M)
        want = an.detect_symbol(bars, w, M, tz=universe.calendar.tz)
        a, m = _rows_of(run, symbol)
        got = sorted(zip(a.kind[m].tolist(), a.start[m].tolist()))
        assert got == sorted(zip(want.kind.tolist(), want.start_ns.tolist())), symbol
        # an anomaly within one session keeps its range and bars
        one = a.parts[m] == 1
        key = {(int(k), int(t)): (int(e), int(n)) for k, t, e, n in
               zip(want.kind, want.start_ns, want.end_ns, want.bar_count)}
        for k, t, e, n in zip(a.kind[m][one], a.start[m][one], a.end[m][one],
                              a.bar_count[m][one]):
            assert key[(int(k), int(t))] == (int(e), int(n))
        total += len(want)
    # the universe holds every kind injected: the run carries most of them (accuracy per
    # kind is bench_anomalies.py's business, not the wiring's)
    assert len(set(np.unique(run.anomalies.kind).tolist())) >= 5
    assert int((run.anomalies.part == 0).sum()) == total


def test_documents_dataset_and_validate_agree(exported):
    run, out = exported
    assert validate_export(out) == []
    table = read_dataset(out, "anomalies")
    assert table.num_rows == len(run.anomalies)
    assert set(table.column("interval").to_pylist()) == {run.base}
    docs = {p.stem: json.loads(p.read_text()) for p in (out / "sessions").glob("*.json")}
    n_doc = 0
    for doc in docs.values():
        for symbol, entry in doc["symbols"].items():
            base = entry["intervals"][run.base]
            sec = base["anomalies"]
            assert sec["count"] == len(sec["ranges"])
            n_doc += sec["count"]
            for r in sec["ranges"]:
                assert {"kind", "start_time", "end_time", "bar_count", "value", "baseline",
                        "score"} <= set(r)
                if r["kind"] == "filled":
                    assert r["gap_kind"] in ("no_trade", "outage")
            for name in entry["intervals"]:   # derived intervals carry none (documented)
                if name != run.base:
                    assert "anomalies" not in entry["intervals"][name]
    assert n_doc == len(run.anomalies)
    manifest = read_manifest(out)
    counts = manifest["anomalies"]["kinds"]
    assert counts == run.anomalies.counts()
    assert manifest["summary"]["anomalies"]["kinds"] == counts
    # a session document's rows agree with the dataset's for one symbol and session
    row = table.slice(0, 1).to_pylist()[0]
    sec = docs[str(row["session"])]["symbols"][row["symbol"]]["intervals"][run.base]
    assert any(r["kind"] == row["kind"] and r["bar_count"] == row["bar_count"]
               for r in sec["anomalies"]["ranges"])


def test_validate_catches_a_tampered_anomaly_section(exported, tmp_path):
    import shutil

    run, out = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    k = int(run.anomalies.session[0])
    s = run.symbols[int(run.anomalies.symbol[0])]
    path = copy / "sessions" / f"{run.sessions[k]}.json"
    doc = json.loads(path.read_text())
    sec = doc["symbols"][s]["intervals"][run.base]["anomalies"]
    sec["ranges"].pop()
    sec["count"] -= 1
    path.write_text(json.dumps(doc))
    problems = validate_export(copy)
    assert any("anomalies per kind" in p for p in problems), problems
    assert any("anomalies, the session document says" in p for p in problems), problems


def test_summary_render_has_the_table(exported):
    run, out = exported
    text = sd.summary.Summary(run, str(out)).render()
    assert "anomalies (1m): bars that are there but not real" in text
    counts = run.anomalies.counts()
    for kind, c in counts.items():
        if c["count"]:
            assert any(line.split()[:2] == [kind, f"{c['count']:,}"]
                       for line in text.splitlines()), kind


def test_check_rule_reads_the_documents(exported):
    run, out = exported
    counts = run.anomalies.counts()
    kind = next(k for k, c in counts.items() if c["sessions"])
    findings = sd.check(out, f"anomalies_{kind}=0")
    from_run = sd.check(run, f"anomalies_{kind}=0")
    assert not findings.passed and not from_run.passed
    n_cells = len(np.unique(run.anomalies.symbol[run.anomalies.kind == ANOMALY_KINDS.index(kind)]
                            * 10_000 + run.anomalies.session[
                                run.anomalies.kind == ANOMALY_KINDS.index(kind)]))
    assert len(findings.failed) == n_cells == len(from_run.failed)
    assert sd.check(out, f"anomalies_{kind}=1000").passed


def test_none_turns_the_detectors_off_and_documents_only_gain_the_section(universe, tmp_path):
    clean = {s: b for s, b in universe.clean.items()}
    on = sd.run(clean, calendar=universe.calendar, out=tmp_path / "on", threads=1)
    off = sd.run(clean, calendar=universe.calendar, out=tmp_path / "off", threads=1,
                 anomalies="none")
    assert off.anomalies is None
    assert not (tmp_path / "off" / "anomalies").exists()
    assert "anomalies" not in read_manifest(tmp_path / "off")
    for p in sorted((tmp_path / "off" / "sessions").glob("*.json")):
        doc = json.loads((tmp_path / "on" / "sessions" / p.name).read_bytes())
        for entry in doc["symbols"].values():
            for iv in entry["intervals"].values():
                iv.pop("anomalies", None)
        assert sd.documents.dumps(doc, indent=False) == p.read_bytes(), p.name
    # the clean universe: whatever is found is listed (the detectors' false positives)
    assert on.anomalies is not None


def test_filled_is_a_hidden_gap_and_can_count_as_missing(tmp_path):
    from sessiondata.synthetic import realistic_bars

    cal = sd.Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri")
    w = cal.windows(int(np.datetime64("2024-01-02", "ns").astype(np.int64)),
                    int(np.datetime64("2024-02-01", "ns").astype(np.int64)))
    b = realistic_bars(w, M, np.random.default_rng(1), trades=40)
    c = {k: getattr(b, k).copy() for k in ("ts", "open", "high", "low", "close", "volume")}
    a = 2000
    for k in ("open", "high", "low", "close"):
        c[k][a:a + 12] = c["close"][a - 1]
    c["volume"][a:a + 12] = 0.0
    filled = sd.Bars.from_arrays(*c.values(), interval="1m")
    plain = sd.run({"X": filled}, calendar=cal, threads=1)
    scored = sd.run({"X": filled}, calendar=cal, threads=1, filled_as_missing=True)
    f = plain.anomalies.kind == 0
    assert f.sum() == 1 and plain.anomalies.bar_count[f][0] == 12
    assert plain.anomalies.gap_kind[f][0] == sd.results.KINDS.index("outage")
    k = int(plain.anomalies.session[f][0])
    t0, t1 = plain.intervals["1m"], scored.intervals["1m"]
    assert t0.present[0, k] - t1.present[0, k] == 12
    assert t0.covered[0, k] - t1.covered[0, k] == 12
    assert t1.lost[0, k] - t0.lost[0, k] == 12     # outage fills are lost data
    others = np.arange(t0.present.shape[1]) != k
    assert (t0.present[0, others] == t1.present[0, others]).all()


def test_cli_options(universe, tmp_path, capsys):
    from sessiondata import cli

    folder = tmp_path / "in"
    folder.mkdir()
    sym, bars = next(iter(universe.bars.items()))
    df = bars.to_pandas()
    df.index.name = "timestamp"
    df.to_csv(folder / f"{sym}.csv")
    code = cli.main(["run", str(folder), "--tz", "America/New_York", "--calendar",
                     "weekly:America/New_York,09:30,16:00,Mon-Fri", "--out", str(tmp_path / "o"),
                     "--anomalies", "spike,jump", "--anomaly-threshold", "spike_sigmas=15"])
    text, err = capsys.readouterr()
    assert code == 0, text + err
    assert "anomalies (1m)" in text
    m = read_manifest(tmp_path / "o")["anomalies"]
    assert m["params"]["spike_sigmas"] == 15.0 and m["params"]["kinds"] == ["spike", "jump"]
    assert all(v["count"] == 0 for k, v in m["kinds"].items() if k not in ("spike", "jump"))
    code = cli.main(["run", str(folder), "--calendar", "weekly:America/New_York,09:30,16:00,Mon-Fri",
                     "--tz", "America/New_York", "--no-export", "--anomaly-threshold",
                     "spike_sigma=15"])
    assert code == 2
    assert "spike_sigma" in capsys.readouterr().err


def test_real_lean_aapl_split_in_a_run(tmp_path):
    """The 7:1 split of 2014-06-09 in the LEAN AAPL zips, found by ``run``: a jump in the
    dataset, the document and the summary."""
    lean = DATA / "lean"
    if not lean.exists():
        pytest.skip("no real data")
    run = sd.run(lean, calendar=sd.Calendar.exchange("XNYS"), out=tmp_path / "o",
                 read_options={"format": "lean"}, threads=1)
    a = run.anomalies
    j = a.kind == an.JUMP
    assert j.sum() >= 1
    k = int(a.session[j][0])
    assert str(run.sessions[k]) == "2014-06-09"
    assert float(a.baseline[j][0]) == 7.0
    # (validate's bar-order complaints about LEAN's 15m/1h/5m files are not the anomalies'
    # and happen with --anomalies none too: reported)
    assert [p for p in validate_export(tmp_path / "o") if "anomal" in p] == []
    rules = sd.check(tmp_path / "o", "anomalies_jump=0")
    assert rules.failed["session"].tolist() == ["2014-06-09"]


def test_report_shows_anomalies_both_scores_and_the_cli_order(exported, tmp_path):
    pytest.importorskip("plotly")
    from sessiondata import report

    run, out = exported
    manifest = read_manifest(out)
    grid = report._Grid.of_export(out, manifest)[0]
    # the same grid from the run's columns (sessiondata run --report) as from the export
    same = report._Grid.of_run(run)[0]
    for name in ("member", "expected", "present", "covered", "lost", "kinds", "anomalies",
                 "anomalous"):
        np.testing.assert_array_equal(getattr(same, name), getattr(grid, name), err_msg=name)
    assert (same.opens, same.closes, same.timezone) == (grid.opens, grid.closes, grid.timezone)
    # anomalies per cell read from the anomaly dataset; data quality here counts their bars
    assert int(grid.anomalies.sum()) == len(run.anomalies)
    assert (grid.anomalous <= grid.present).all()
    assert (grid.bad >= grid.lost).all() and int(grid.bad.sum()) > int(grid.lost.sum())
    # the worst sessions in the CLI summary's order
    summary = sd.summary.Summary(run, str(out))
    assert [grid.sessions[k] for k in report._worst_sessions(grid, 10)] == \
        [str(run.sessions[k]) for k, _ in summary.worst(10)]
    page = report.render_report(out, manifest)
    assert "anomaly: " in page and "Bars that are there but not real" in page
    heat = report._heatmap(grid)
    assert len(heat.data) == 2              # completeness and data quality at once
    assert heat.layout.annotations[0].text == "completeness"
    tl = report._timeline(grid, read_dataset(out, "gaps", "1m"), 25, 40,
                          read_dataset(out, "anomalies", "1m"))
    first = report._worst_sessions(grid, 25)[0]
    assert tl.layout.xaxis.range[0] == grid.opens[first]      # the axis starts at the open
    assert grid.opens[first].endswith("09:30")
    assert any(t.name.startswith("anomaly: ") for t in tl.data)


def test_csv_export_reads_back(universe, tmp_path):
    run = sd.run(universe.bars, calendar=universe.calendar, out=tmp_path / "o", fmt="csv",
                 threads=1)
    assert validate_export(tmp_path / "o") == []
    table = read_dataset(tmp_path / "o", "anomalies")
    assert table.num_rows == len(run.anomalies) > 0
    kinds = table.column("kind").to_pylist()
    assert sorted(kinds) == sorted(ANOMALY_KINDS[k] for k in run.anomalies.kind.tolist())
    refs = table.column("ref").to_pylist()
    assert sum(r is not None for r in refs) == int((run.anomalies.ref != 0).sum())


def test_dask_workers_find_the_same_anomalies(universe, exported, tmp_path):
    """On two Dask worker processes the detectors run on the workers and the run's
    anomaly columns equal the threaded run's."""
    distributed = pytest.importorskip("distributed")
    run, _ = exported
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=50) as cluster:
        with distributed.Client(cluster) as client:
            remote = sd.run(universe.bars, calendar=universe.calendar, out=tmp_path / "o",
                            client=client)
    a, b = run.anomalies, remote.anomalies
    assert len(a) == len(b) > 0
    for col in ("symbol", "session", "kind", "start", "end", "bar_count", "part", "gap_kind"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    assert np.array_equal(a.value, b.value, equal_nan=True)
    assert validate_export(tmp_path / "o") == []
