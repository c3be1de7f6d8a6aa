"""The benchmark gate's own logic (benchmarks/gate.py), on made-up pytest-benchmark JSON."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest

GATE_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "gate.py"
THRESHOLDS_PATH = GATE_PATH.with_name("thresholds.json")


@pytest.fixture(scope="module")
def gate():
    spec = importlib.util.spec_from_file_location("sessiondata_bench_gate", GATE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building Row
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def bench(group, label, min_s, *, median_s=None, items=1_000_000, name=None):
    """One benchmark as pytest-benchmark writes it (the fields the gate reads)."""
    median_s = min_s * 1.05 if median_s is None else median_s
    return {
        "group": group,
        "name": name or f"bench_{group.replace('-', '_')}[{label}]",
        "fullname": f"benchmarks/bench_x.py::bench_{group.replace('-', '_')}[{label}]",
        "params": {"impl": label},
        "extra_info": {"label": label, "items": items, "bytes": 48 * items},
        "stats": {"min": min_s, "max": median_s * 1.2, "mean": median_s, "median": median_s,
                  "stddev": 0.01 * median_s, "iqr": 0.02 * median_s, "rounds": 5,
                  "iterations": 1},
    }


def results(*benchmarks):
    return {"machine_info": {"cpu": {"brand_raw": "Test CPU"}}, "datetime": "2024-01-01",
            "sessiondata_bench": {"n": 1_000_000, "rounds": 5, "peer_rounds": 2},
            "benchmarks": list(benchmarks)}


THRESHOLDS = {
    "defaults": {"stat": "min"},
    "checks": [
        {"group": "resample-5m", "name": "sessiondata", "reference": "np.copy",
         "max_ratio": 0.6},
        {"group": "resample-5m", "name": "sessiondata", "reference": "pandas",
         "max_ratio": 1.0},
        {"group": "find-gaps", "name": "sessiondata", "reference": "np.copy",
         "max_ratio": 0.2},
        {"group": "aggregator", "name": "sessiondata", "reference": "python-loop",
         "unit": "bar", "max_ns_per_item": 100},
    ],
}


def good_run():
    return results(
        bench("resample-5m", "np.copy", 0.050),
        bench("resample-5m", "sessiondata", 0.020),
        bench("resample-5m", "pandas", 0.300),
        bench("find-gaps", "np.copy", 0.050),
        bench("find-gaps", "sessiondata", 0.005),
        bench("aggregator", "python-loop", 0.020),
        bench("aggregator", "sessiondata", 0.080),   # 80 ns per bar over 1e6 bars
    )


def by_check(rows):
    return {r.check: r for r in rows}


def test_everything_inside_passes(gate):
    rows = gate.evaluate(good_run(), THRESHOLDS)
    assert [r.status for r in rows] == ["PASS"] * 4
    assert not gate.gate_failed(rows)
    r = by_check(rows)["resample-5m: sessiondata / np.copy"]
    assert r.value == pytest.approx(0.4)
    assert r.time_s == 0.020 and r.ref_time_s == 0.050
    agg = by_check(rows)["aggregator: sessiondata (ns/bar)"]
    assert agg.value == pytest.approx(80.0)
    assert agg.ref_value == pytest.approx(20.0)
    assert "GATE PASSED" in gate.format_table(rows, good_run())


def test_ratio_past_threshold_fails_and_says_which(gate):
    run = good_run()
    run["benchmarks"][1]["stats"]["min"] = 0.040  # resample-5m: 0.8 x np.copy
    rows = gate.evaluate(run, THRESHOLDS)
    failed = [r for r in rows if r.failed]
    assert [r.check for r in failed] == ["resample-5m: sessiondata / np.copy"]
    assert failed[0].status == "FAIL" and failed[0].value == pytest.approx(0.8)
    assert "0.800x > 0.600x" in failed[0].message
    assert gate.gate_failed(rows)
    text = gate.format_table(rows, run)
    assert "FAIL: resample-5m: sessiondata / np.copy" in text
    assert "GATE FAILED" in text
    # the other checks of the same benchmark still pass (0.04 s is faster than pandas)
    assert by_check(rows)["resample-5m: sessiondata / pandas"].status == "PASS"


def test_boundary_is_inside(gate):
    run = good_run()
    run["benchmarks"][4]["stats"]["min"] = 0.010  # exactly 0.2 x np.copy
    rows = gate.evaluate(run, THRESHOLDS)
    assert by_check(rows)["find-gaps: sessiondata / np.copy"].status == "PASS"


def test_absolute_per_item_limit(gate):
    run = good_run()
    run["benchmarks"][6]["stats"]["min"] = 0.150  # 150 ns per bar
    rows = gate.evaluate(run, THRESHOLDS)
    r = by_check(rows)["aggregator: sessiondata (ns/bar)"]
    assert r.status == "FAIL" and r.value == pytest.approx(150.0)
    assert "150.0 ns/bar > 100.0 ns/bar" in r.message
    assert "aggregator: sessiondata (ns/bar)" in gate.format_table(rows)


def test_min_items_per_s(gate):
    thresholds = {"checks": [{"group": "replay", "name": "sessiondata", "unit": "bar",
                              "items": "bars", "min_items_per_s": 1_000_000}]}
    slow = bench("replay", "sessiondata", 2.0)
    slow["extra_info"]["bars"] = 1_000_000  # 0.5 M bars/s
    rows = gate.evaluate(results(slow), thresholds)
    assert rows[0].status == "FAIL" and rows[0].value == pytest.approx(500_000)
    fast = bench("replay", "sessiondata", 0.5)
    fast["extra_info"]["bars"] = 1_000_000
    assert gate.evaluate(results(fast), thresholds)[0].status == "PASS"


def test_missing_benchmark_is_a_clear_failure(gate):
    run = good_run()
    del run["benchmarks"][4]  # find-gaps sessiondata did not run
    rows = gate.evaluate(run, THRESHOLDS)
    r = by_check(rows)["find-gaps: sessiondata / np.copy"]
    assert r.status == "MISSING" and r.failed
    assert "no benchmark 'sessiondata' in group 'find-gaps'" in r.message
    text = gate.format_table(rows, run)
    assert "MISSING: find-gaps: sessiondata / np.copy" in text
    assert "GATE FAILED" in text


def test_missing_reference_is_a_clear_failure(gate):
    run = good_run()
    del run["benchmarks"][2]  # no pandas run
    rows = gate.evaluate(run, THRESHOLDS)
    r = by_check(rows)["resample-5m: sessiondata / pandas"]
    assert r.status == "MISSING" and "reference" in r.message and "pandas" in r.message
    assert gate.gate_failed(rows)


def test_empty_results_do_not_crash(gate):
    rows = gate.evaluate({}, THRESHOLDS)
    assert [r.status for r in rows] == ["MISSING"] * 4
    assert "GATE FAILED" in gate.format_table(rows, {})


def test_bad_stats_and_items_are_errors(gate):
    run = good_run()
    run["benchmarks"][1]["stats"] = {}
    del run["benchmarks"][6]["extra_info"]["items"]
    rows = by_check(gate.evaluate(run, THRESHOLDS))
    assert rows["resample-5m: sessiondata / np.copy"].status == "ERROR"
    assert rows["aggregator: sessiondata (ns/bar)"].status == "ERROR"
    assert "extra_info['items']" in rows["aggregator: sessiondata (ns/bar)"].message


def test_ambiguous_name_is_an_error_not_a_guess(gate):
    run = good_run()
    run["benchmarks"].append(bench("resample-5m", "sessiondata", 0.001, name="other"))
    r = by_check(gate.evaluate(run, THRESHOLDS))["resample-5m: sessiondata / np.copy"]
    assert r.status == "MISSING" and "2 benchmarks match" in r.message


def test_median_statistic(gate):
    thresholds = copy.deepcopy(THRESHOLDS)
    thresholds["checks"][0]["stat"] = "median"
    run = good_run()
    run["benchmarks"][1]["stats"]["median"] = 0.045  # min 0.020 passes, median 0.857x not
    r = by_check(gate.evaluate(run, thresholds))["resample-5m: sessiondata / np.copy"]
    assert r.stat == "median" and r.status == "FAIL"
    assert r.value == pytest.approx(0.045 / (0.050 * 1.05))


def test_pytest_name_selects_too(gate):
    thresholds = {"checks": [{"group": "resample-5m", "name": "bench_resample_5m[sessiondata]",
                              "reference": "bench_resample_5m[np.copy]", "max_ratio": 0.6}]}
    rows = gate.evaluate(good_run(), thresholds)
    assert rows[0].status == "PASS"


def test_information_and_not_enforced_checks_never_fail(gate):
    thresholds = {"checks": [
        {"group": "resample-5m", "name": "pandas", "reference": "np.copy"},
        {"group": "resample-5m", "name": "pandas", "reference": "np.copy", "max_ratio": 1.0,
         "enforce": False},
    ]}
    rows = gate.evaluate(good_run(), thresholds)
    assert rows[0].status == "INFO" and rows[0].value == pytest.approx(6.0)
    assert rows[1].status == "FAIL" and not rows[1].failed
    assert not gate.gate_failed(rows)
    assert "GATE PASSED" in gate.format_table(rows)


def test_unchecked_benchmarks_are_listed(gate):
    run = good_run()
    run["benchmarks"].append(bench("universe", "sessiondata", 1.0))
    assert gate.unchecked(run, THRESHOLDS) == ["universe/bench_universe[sessiondata]"]


@pytest.mark.parametrize("bad, words", [
    ({"checks": [{"group": "g"}]}, '"name"'),
    ({"checks": [{"name": "a", "max_ratio": 0.5}]}, "reference"),
    ({"checks": [{"name": "a", "reference": "b", "max_ratio": -1}]}, "positive"),
    ({"checks": [{"name": "a", "max_seconds": 1, "max_ns_per_item": 2}]}, "one limit"),
    ({"checks": [{"name": "a", "stat": "p99"}]}, "stat"),
    ({"checks": [{"name": "a", "max_ratoi": 1}]}, "unknown keys"),
    ({"nothing": []}, "checks"),
])
def test_malformed_thresholds_are_refused(gate, bad, words):
    with pytest.raises(gate.ThresholdsError, match=words):
        gate.evaluate(good_run(), bad)


def test_shipped_thresholds_file_is_valid(gate):
    doc = gate.load_thresholds(THRESHOLDS_PATH)
    groups = {e.get("group") for e in doc["checks"]}
    assert {"resample-5m", "resample-1h", "find-gaps", "aggregator", "facade-stream",
            "facade-replay", "facade-memory", "universe"} <= groups


def test_main_from_json_exit_codes(gate, tmp_path, capsys):
    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps(THRESHOLDS))
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(good_run()))
    assert gate.main(["--from-json", str(ok), "--thresholds", str(thresholds)]) == 0
    assert "GATE PASSED" in capsys.readouterr().out

    run = good_run()
    run["benchmarks"][6]["stats"]["min"] = 0.5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(run))
    assert gate.main(["--from-json", str(bad), "--thresholds", str(thresholds)]) == 1
    out = capsys.readouterr().out
    assert "FAIL: aggregator: sessiondata (ns/bar)" in out

    assert gate.main(["--from-json", str(tmp_path / "none.json"),
                      "--thresholds", str(thresholds)]) == 2


def test_size_bounds_turn_a_check_into_information(gate):
    thresholds = copy.deepcopy(THRESHOLDS)
    thresholds["checks"][0]["min_n"] = 5_000_000
    run = good_run()  # N = 1_000_000
    run["benchmarks"][1]["stats"]["min"] = 0.045  # 0.9 x np.copy: past 0.6
    rows = gate.evaluate(run, thresholds)
    r = by_check(rows)["resample-5m: sessiondata / np.copy"]
    assert r.status == "FAIL" and not r.failed
    assert "N=1_000_000 outside min_n=5_000_000" in r.message
    assert not gate.gate_failed(rows)
    assert "FAIL*" in gate.format_table(rows, run)
    run["sessiondata_bench"]["n"] = 10_000_000
    assert by_check(gate.evaluate(run, thresholds))[
        "resample-5m: sessiondata / np.copy"].failed
    del run["sessiondata_bench"]  # N unknown: the check applies
    assert by_check(gate.evaluate(run, thresholds))[
        "resample-5m: sessiondata / np.copy"].failed


# -- value checks: a number the benchmark put in extra_info, not its time -------------------

def with_extra(b, **extra):
    b["extra_info"].update(extra)
    return b


def test_value_check_bounds_an_extra_info_number(gate):
    thresholds = {"checks": [{"group": "facade-memory", "name": "streamed",
                              "value": "memory_ratio", "unit": "x", "max_value": 1.25}]}
    ok = with_extra(bench("facade-memory", "streamed", 1e-4), memory_ratio=1.149)
    rows = gate.evaluate(results(ok), thresholds)
    r = rows[0]
    assert r.check == "facade-memory: streamed [memory_ratio]"
    assert r.status == "PASS" and r.value == pytest.approx(1.149) and r.metric == "value"
    assert r.time_s == pytest.approx(1e-4)  # the time is still shown, never judged
    text = gate.format_table(rows, results(ok))
    assert "1.149x" in text and "<= 1.250x" in text and "GATE PASSED" in text

    big = with_extra(bench("facade-memory", "streamed", 1e-4), memory_ratio=1.5)
    r = gate.evaluate(results(big), thresholds)[0]
    assert r.status == "FAIL" and r.failed and "1.500x > 1.250x" in r.message


def test_min_value_and_bare_number(gate):
    thresholds = {"checks": [{"group": "g", "name": "a", "value": "hits", "min_value": 10}]}
    b = with_extra(bench("g", "a", 1.0), hits=7)
    rows = gate.evaluate(results(b), thresholds)
    assert rows[0].status == "FAIL" and rows[0].message == "7 < 10"
    b["extra_info"]["hits"] = 10
    assert gate.evaluate(results(b), thresholds)[0].status == "PASS"


def test_value_ratio_to_the_reference(gate):
    thresholds = {"checks": [{"group": "universe", "name": "threads=2",
                              "reference": "threads=1", "value": "parallel_s",
                              "max_ratio": 0.59}]}
    one = with_extra(bench("universe", "threads=1", 3.0), parallel_s=1.0)
    two = with_extra(bench("universe", "threads=2", 2.0), parallel_s=0.55)
    rows = gate.evaluate(results(one, two), thresholds)
    r = rows[0]
    assert r.check == "universe: threads=2 [parallel_s] / threads=1"
    assert r.status == "PASS" and r.value == pytest.approx(0.55) and r.unit == "x"
    assert r.ref_value == pytest.approx(1.0)
    assert "threads=1 1" in gate.format_table(rows)  # the reference's value, not its time

    two["extra_info"]["parallel_s"] = 0.7
    r = gate.evaluate(results(one, two), thresholds)[0]
    assert r.status == "FAIL" and "0.700x > 0.590x" in r.message
    # the time ratio (2/3) plays no part
    assert gate.evaluate(results(one, two), {"checks": [
        {"group": "universe", "name": "threads=2", "reference": "threads=1"}]})[0].value \
        == pytest.approx(2.0 / 3.0)


def test_value_check_failures_are_clear(gate):
    thresholds = {"checks": [{"group": "universe", "name": "threads=2",
                              "reference": "threads=1", "value": "parallel_s",
                              "max_ratio": 0.59}]}
    two = with_extra(bench("universe", "threads=2", 2.0), parallel_s=0.55)
    r = gate.evaluate(results(two), thresholds)[0]
    assert r.status == "MISSING" and "reference" in r.message and "threads=1" in r.message
    one = bench("universe", "threads=1", 3.0)  # no parallel_s
    r = gate.evaluate(results(one, two), thresholds)[0]
    assert r.status == "ERROR" and "extra_info['parallel_s']" in r.message
    one["extra_info"]["parallel_s"] = 0.0
    r = gate.evaluate(results(one, two), thresholds)[0]
    assert r.status == "ERROR" and "positive" in r.message
    del two["extra_info"]["parallel_s"]
    one["extra_info"]["parallel_s"] = float("nan")
    r = gate.evaluate(results(one, two), thresholds)[0]
    assert r.status == "ERROR" and "threads=2" in r.message  # its own value first


def test_value_without_limit_is_information(gate):
    thresholds = {"checks": [
        {"group": "facade-memory", "name": "replayed", "value": "memory_ratio", "unit": "x"},
        {"group": "facade-memory", "name": "replayed", "value": "memory_ratio", "unit": "x",
         "max_value": 1.25, "enforce": False},
    ]}
    b = with_extra(bench("facade-memory", "replayed", 1e-4), memory_ratio=1.38)
    rows = gate.evaluate(results(b), thresholds)
    assert rows[0].status == "INFO" and rows[0].value == pytest.approx(1.38)
    assert "1.380x" in gate.format_table(rows[:1])  # the entry's unit, limit or not
    assert rows[1].status == "FAIL" and not rows[1].failed
    assert not gate.gate_failed(rows)


def test_show_reports_a_rate_without_a_limit(gate):
    thresholds = {"checks": [{"group": "facade-replay", "name": "replay", "unit": "bar",
                              "show": "items_per_s"}]}
    b = bench("facade-replay", "replay", 0.02, items=200_000)
    rows = gate.evaluate(results(b), thresholds)
    r = rows[0]
    assert r.check == "facade-replay: replay (bars/s)"
    assert r.status == "INFO" and r.value == pytest.approx(10_000_000) and not r.failed
    assert "10,000,000 bars/s" in gate.format_table(rows)
    thresholds["checks"][0]["show"] = "ns_per_item"
    assert gate.evaluate(results(b), thresholds)[0].value == pytest.approx(100.0)


@pytest.mark.parametrize("bad, words", [
    ({"checks": [{"name": "a", "max_value": 1}]}, '"value"'),
    ({"checks": [{"name": "a", "value": "k", "max_seconds": 1}]}, "value check takes"),
    ({"checks": [{"name": "a", "value": "", "max_value": 1}]}, "extra_info key"),
    ({"checks": [{"name": "a", "value": "k", "max_value": 1, "min_value": 0.5}]},
     "one limit"),
    ({"checks": [{"name": "a", "value": "k", "max_ratio": 1}]}, "reference"),
    ({"checks": [{"name": "a", "show": "items_per_s", "max_seconds": 1}]}, "without a limit"),
    ({"checks": [{"name": "a", "show": "ops"}]}, "show must be"),
    ({"checks": [{"name": "a", "value": "k", "show": "seconds"}]}, "time checks"),
])
def test_malformed_value_checks_are_refused(gate, bad, words):
    with pytest.raises(gate.ThresholdsError, match=words):
        gate.evaluate(good_run(), bad)
