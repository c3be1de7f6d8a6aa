"""The benchmark regression gate.

Runs the suites with pytest-benchmark (or reads a JSON it wrote), checks each benchmark named
in ``thresholds.json`` and exits non-zero when one is past its threshold, is missing, or could
not be evaluated.

    python benchmarks/gate.py [--quick] [--json results.json] [--thresholds FILE]
    python benchmarks/gate.py --from-json results.json
    python benchmarks/gate.py -- -k resample        # after --: passed to pytest

A check compares one benchmark's time, read from one statistic of its rounds (``min`` by
default: the least disturbed round, the steadiest estimate on a shared machine; ``median`` on
request), either to a reference benchmark of the same run (``max_ratio``) or to an absolute
bound on the work it did (``max_ns_per_item``, ``min_items_per_s``, ``max_seconds``).  A value
check (``"value": KEY``) reads a number the benchmark put in ``extra_info[KEY]`` instead of its
time (a memory ratio, the time of one phase) and bounds it (``max_value``, ``min_value``) or its
ratio to the reference's ``extra_info[KEY]`` (``max_ratio``).  A check with no limit is reported
for information (``"show"`` picks the rate it shows).  The thresholds file (see README.md) is
data: adding a benchmark to the gate needs no change here.

The logic is importable: :func:`evaluate` takes the parsed pytest-benchmark JSON and the
parsed thresholds and returns :class:`Row` objects; :func:`format_table` renders them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
DEFAULT_THRESHOLDS = HERE / "thresholds.json"

STATS = ("min", "median", "mean", "max")
LIMITS = {  # limit key -> (what is compared, comparison, unit shown)
    "max_ratio": ("ratio", "<=", "x"),
    "max_ns_per_item": ("ns_per_item", "<=", "ns/{unit}"),
    "min_items_per_s": ("items_per_s", ">=", "{unit}s/s"),
    "max_seconds": ("seconds", "<=", "s"),
    "max_value": ("value", "<=", "{unit}"),     # extra_info[value]; unit as given, default none
    "min_value": ("value", ">=", "{unit}"),
}
TIME_METRICS = ("ns_per_item", "items_per_s", "seconds")   # what "show" may ask for
VALUE_LIMITS = ("max_value", "min_value", "max_ratio")     # the limits a value check takes
ENTRY_KEYS = {"name", "group", "reference", "reference_group", "stat", "items", "unit",
              "enforce", "min_n", "max_n", "note", "id", "value", "show"} | set(LIMITS)

PASS, FAIL, INFO, MISSING, ERROR = "PASS", "FAIL", "INFO", "MISSING", "ERROR"
FAILING = (FAIL, MISSING, ERROR)


class ThresholdsError(ValueError):
    """The thresholds file is malformed (says which entry and why)."""


@dataclass
class Row:
    """The outcome of one check."""

    check: str                      # how the table names it
    group: str | None
    name: str
    reference: str | None
    stat: str
    time_s: float | None            # the benchmark's time (``stat`` of its rounds)
    ref_time_s: float | None        # the reference's time, same statistic
    ref_value: float | None         # the reference in the check's unit (per-item checks)
    metric: str | None              # "ratio", "ns_per_item", "items_per_s", "seconds", None
    value: float | None
    limit: float | None
    op: str | None                  # "<=" or ">="
    unit: str                       # "x", "ns/bar", ...
    status: str
    message: str = ""
    enforce: bool = True
    spread: float | None = None     # (q3 - q1) / median of the benchmark's rounds
    value_key: str | None = None    # a value check: the extra_info key it reads

    @property
    def failed(self) -> bool:
        return self.enforce and self.status in FAILING


# -- thresholds ---------------------------------------------------------------------------

def load_thresholds(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a thresholds file."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    check_thresholds(doc)
    return doc


def check_thresholds(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a thresholds document, each checked; raises ThresholdsError."""
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        raise ThresholdsError('thresholds must be an object with a "checks" list')
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ThresholdsError('"defaults" must be an object')
    unknown = set(defaults) - ENTRY_KEYS
    if unknown:
        raise ThresholdsError(f'"defaults": unknown keys {sorted(unknown)}')
    out = []
    for i, entry in enumerate(doc["checks"]):
        where = f"checks[{i}]"
        if not isinstance(entry, dict):
            raise ThresholdsError(f"{where}: must be an object, got {type(entry).__name__}")
        where = f"checks[{i}] ({entry.get('group')}/{entry.get('name')})"
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise ThresholdsError(f"{where}: unknown keys {sorted(unknown)}; "
                                  f"known: {sorted(ENTRY_KEYS)}")
        e = {**defaults, **entry}
        if not isinstance(e.get("name"), str) or not e["name"]:
            raise ThresholdsError(f'{where}: "name" (a benchmark label or name) is required')
        limits = [k for k in LIMITS if k in e]
        if len(limits) > 1:
            raise ThresholdsError(f"{where}: one limit per check, got {limits}")
        for k in limits:
            v = e[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0:
                raise ThresholdsError(f"{where}: {k} must be a positive number, got {v!r}")
        if "max_ratio" in e and not e.get("reference"):
            raise ThresholdsError(f'{where}: max_ratio needs a "reference"')
        if "value" in e:
            if not isinstance(e["value"], str) or not e["value"]:
                raise ThresholdsError(f'{where}: "value" must name an extra_info key')
            bad = [k for k in limits if k not in VALUE_LIMITS]
            if bad:
                raise ThresholdsError(f'{where}: a value check takes {list(VALUE_LIMITS)} '
                                      f'or no limit, got {bad}')
            if "show" in e:
                raise ThresholdsError(f'{where}: "show" is for time checks, not value checks')
        elif any(k in e for k in ("max_value", "min_value")):
            raise ThresholdsError(f'{where}: max_value / min_value need "value" '
                                  "(the extra_info key they bound)")
        if "show" in e:
            if limits:
                raise ThresholdsError(f'{where}: "show" is for checks without a limit')
            if e["show"] not in TIME_METRICS:
                raise ThresholdsError(f"{where}: show must be one of {TIME_METRICS}, "
                                      f"got {e['show']!r}")
        if not isinstance(e.get("enforce", True), bool):
            raise ThresholdsError(f"{where}: enforce must be true or false")
        for k in ("min_n", "max_n"):
            if k in e and (isinstance(e[k], bool) or not isinstance(e[k], int) or e[k] < 0):
                raise ThresholdsError(f"{where}: {k} must be a count of bars, got {e[k]!r}")
        e.setdefault("stat", "min")
        if e["stat"] not in STATS:
            raise ThresholdsError(f"{where}: stat must be one of {STATS}, got {e['stat']!r}")
        out.append(e)
    return out


# -- results ------------------------------------------------------------------------------

def _label(bench: dict[str, Any]) -> str | None:
    return (bench.get("extra_info") or {}).get("label")


def find_benchmark(benchmarks: Iterable[dict[str, Any]], name: str,
                   group: str | None = None) -> tuple[dict[str, Any] | None, str]:
    """The benchmark called ``name`` (its ``extra_info['label']``, its pytest-benchmark
    ``name`` or ``fullname``) in ``group`` (any group when None); with an error text when
    there is none or more than one."""
    hits = [b for b in benchmarks
            if (group is None or b.get("group") == group)
            and name in (_label(b), b.get("name"), b.get("fullname"))]
    where = f"group {group!r}" if group is not None else "any group"
    if not hits:
        return None, f"no benchmark {name!r} in {where}"
    if len(hits) > 1:
        names = ", ".join(str(b.get("name")) for b in hits)
        return None, f"{len(hits)} benchmarks match {name!r} in {where}: {names}"
    return hits[0], ""


def _time(bench: dict[str, Any], stat: str) -> float | None:
    value = (bench.get("stats") or {}).get(stat)
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _spread(bench: dict[str, Any]) -> float | None:
    stats = bench.get("stats") or {}
    iqr, median = stats.get("iqr"), stats.get("median")
    if isinstance(iqr, (int, float)) and isinstance(median, (int, float)) and median > 0:
        return float(iqr) / float(median)
    return None


def evaluate(results: dict[str, Any], thresholds: dict[str, Any]) -> list[Row]:
    """One Row per check of ``thresholds`` against a parsed pytest-benchmark JSON."""
    benchmarks = results.get("benchmarks") or []
    n = run_size(results)
    rows = []
    for entry in check_thresholds(thresholds):
        rows.append(_evaluate_one(benchmarks, entry, n))
    return rows


def run_size(results: dict[str, Any]) -> int | None:
    """The N (base bars) of a run, as the suites' conftest records it; None if unknown."""
    n = (results.get("sessiondata_bench") or {}).get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _evaluate_one(benchmarks: list[dict[str, Any]], e: dict[str, Any],
                  n: int | None = None) -> Row:
    name, group, ref = e["name"], e.get("group"), e.get("reference")
    stat = e["stat"]
    key = e.get("value")
    limit_key = next((k for k in LIMITS if k in e), None)
    metric, op, unit = LIMITS[limit_key] if limit_key else (None, None, "")
    if key and limit_key != "max_ratio":  # a value, in the unit the entry gives (or none)
        unit = "{unit}"
    elif limit_key is None and e.get("show"):  # information, shown as a rate
        unit = next(u for m, _, u in LIMITS.values() if m == e["show"])
    unit = unit.format(unit=e.get("unit", "" if key else "item"))
    label = f"{group}: {name}" if group else name
    if key:
        label += f" [{key}]" + (f" / {ref}" if ref else "")
    elif metric in (None, "ratio") and not e.get("show"):
        label += f" / {ref}" if ref else ""
    else:
        label += f" ({unit})"
    check = e.get("id") or label
    row = Row(check=check, group=group, name=name, reference=ref, stat=stat, time_s=None,
              ref_time_s=None, ref_value=None, metric=metric, value=None, limit=e.get(limit_key),
              op=op, unit=unit, status=INFO, enforce=bool(e.get("enforce", True)),
              value_key=key)
    outside = n is not None and (n < e.get("min_n", n) or n > e.get("max_n", n))
    if outside:  # the limit was calibrated for another size: report, do not enforce
        row.enforce = False
    row.status, row.message = _judge(benchmarks, e, row)
    if outside:
        bounds = ", ".join(f"{k}={e[k]:_}" for k in ("min_n", "max_n") if k in e)
        row.message = "; ".join(filter(None, [row.message, f"N={n:_} outside {bounds}"]))
    elif not row.enforce and row.status in FAILING:
        row.message = f"(not enforced) {row.message}"
    return row


def _judge(benchmarks: list[dict[str, Any]], e: dict[str, Any], row: Row) -> tuple[str, str]:
    """Fill the row's times and value; return its status and message."""
    name, group, ref, stat = row.name, row.group, row.reference, row.stat
    metric, op = row.metric, row.op

    bench, err = find_benchmark(benchmarks, name, group)
    if bench is None:
        return MISSING, err
    row.time_s = _time(bench, stat)
    row.spread = _spread(bench)
    if row.value_key:
        return _judge_value(benchmarks, e, row, bench)
    if row.time_s is None:
        return ERROR, f"{bench.get('name')}: no usable stats.{stat}"

    if ref:
        ref_bench, err = find_benchmark(benchmarks, ref, e.get("reference_group", group))
        if ref_bench is None:
            return MISSING, f"reference: {err}"
        row.ref_time_s = _time(ref_bench, stat)
        if row.ref_time_s is None:
            return ERROR, f"reference {ref_bench.get('name')}: no usable stats.{stat}"

    if metric is None and e.get("show"):  # information only, as the rate asked for
        metric = row.metric = e["show"]
    elif metric is None:  # information only: the ratio, else the time
        if row.ref_time_s:
            row.metric, row.value, row.unit = "ratio", row.time_s / row.ref_time_s, "x"
        return INFO, ""

    if metric == "ratio":
        row.value = row.time_s / row.ref_time_s
    elif metric == "seconds":
        row.value = row.time_s
    else:
        key = e.get("items", "items")
        items = (bench.get("extra_info") or {}).get(key)
        if isinstance(items, bool) or not isinstance(items, (int, float)) or items <= 0:
            return ERROR, f"{bench.get('name')}: extra_info[{key!r}] is {items!r}, " \
                          "need a positive count"
        row.value = _per_item(metric, row.time_s, items)
        if row.ref_time_s:
            ref_items = (ref_bench.get("extra_info") or {}).get(key)
            if isinstance(ref_items, (int, float)) and ref_items > 0:
                row.ref_value = _per_item(metric, row.ref_time_s, ref_items)

    return _compare(row)


def _compare(row: Row) -> tuple[str, str]:
    if row.limit is None:
        return INFO, ""
    if (row.value <= row.limit) if row.op == "<=" else (row.value >= row.limit):
        return PASS, ""
    return FAIL, f"{_fmt_value(row.value, row.unit)} {'>' if row.op == '<=' else '<'} " \
                 f"{_fmt_value(row.limit, row.unit)}"


def _extra_number(bench: dict[str, Any], key: str) -> tuple[float | None, str]:
    """``extra_info[key]`` of a benchmark as a finite number, or None and why not."""
    value = (bench.get("extra_info") or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        return None, f"{bench.get('name')}: extra_info[{key!r}] is {value!r}, need a number"
    return float(value), ""


def _judge_value(benchmarks: list[dict[str, Any]], e: dict[str, Any], row: Row,
                 bench: dict[str, Any]) -> tuple[str, str]:
    """A value check: ``extra_info[value]`` itself, or over the reference's."""
    row.value, err = _extra_number(bench, row.value_key)
    if row.value is None:
        return ERROR, err
    if row.reference:
        ref_bench, err = find_benchmark(benchmarks, row.reference,
                                        e.get("reference_group", row.group))
        if ref_bench is None:
            return MISSING, f"reference: {err}"
        row.ref_time_s = _time(ref_bench, row.stat)
        row.ref_value, err = _extra_number(ref_bench, row.value_key)
        if row.ref_value is None:
            return ERROR, f"reference {err}"
        if row.ref_value <= 0:
            return ERROR, f"reference {ref_bench.get('name')}: extra_info" \
                          f"[{row.value_key!r}] is {row.ref_value!r}, need a positive number"
        row.value /= row.ref_value
        row.metric, row.unit = "ratio", "x"
    elif row.metric is None:
        row.metric = "value"
    return _compare(row)


def _per_item(metric: str, seconds: float, items: float) -> float:
    return seconds * 1e9 / items if metric == "ns_per_item" else items / seconds


def unchecked(results: dict[str, Any], thresholds: dict[str, Any]) -> list[str]:
    """Benchmarks of the run that no check names, as ``group/name``."""
    used = set()
    for e in check_thresholds(thresholds):
        for name, group in ((e["name"], e.get("group")),
                            (e.get("reference"), e.get("reference_group", e.get("group")))):
            if name:
                bench, _ = find_benchmark(results.get("benchmarks") or [], name, group)
                if bench is not None:
                    used.add(id(bench))
    return [f"{b.get('group')}/{b.get('name')}" for b in results.get("benchmarks") or []
            if id(b) not in used]


def gate_failed(rows: Iterable[Row]) -> bool:
    """True when any enforced check failed, was missing or could not be evaluated."""
    return any(r.failed for r in rows)


# -- the table ----------------------------------------------------------------------------

def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}" if seconds / scale < 100 \
                else f"{seconds / scale:.0f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def _fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if not unit:  # a value check's bare number
        return f"{value:.4g}"
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "s":
        return _fmt_time(value)
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}"


def format_table(rows: list[Row], results: dict[str, Any] | None = None) -> str:
    """A plain-text table of the rows, a summary line, and the reasons of every failure."""
    head = ("check", "stat", "time", "reference", "value", "threshold", "iqr/med", "status")
    body = []
    for r in rows:
        if not r.reference:
            ref = "-"
        elif r.value_key and r.ref_value is not None:  # the reference's own value
            ref = f"{r.reference} {r.ref_value:.4g}"
        else:
            ref = f"{r.reference} " + (_fmt_time(r.ref_time_s) if r.ref_value is None
                                       else _fmt_value(r.ref_value, r.unit))
        threshold = "-" if r.limit is None else f"{r.op} {_fmt_value(r.limit, r.unit)}"
        status = r.status if r.enforce or r.status not in FAILING else f"{r.status}*"
        spread = "-" if r.spread is None else f"{100 * r.spread:.0f}%"
        body.append((r.check, r.stat, _fmt_time(r.time_s), ref, _fmt_value(r.value, r.unit),
                     threshold, spread, status))
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = []
    meta = (results or {}).get("sessiondata_bench") or {}
    machine = (results or {}).get("machine_info") or {}
    if meta or machine:
        bits = []
        if "n" in meta:
            bits.append(f"N={meta['n']:_} bars")
        if "rounds" in meta:
            bits.append(f"rounds={meta['rounds']} (peers {meta.get('peer_rounds')})")
        if meta.get("loadavg_start") or meta.get("loadavg_end"):
            load = lambda v: "/".join(f"{x:g}" for x in v) if v else "?"
            bits.append(f"load {load(meta.get('loadavg_start'))} -> "
                        f"{load(meta.get('loadavg_end'))}")
        cpu = (machine.get("cpu") or {}).get("brand_raw") or machine.get("processor")
        if cpu:
            bits.append(f"cpu={cpu}")
        if (results or {}).get("datetime"):
            bits.append(str(results["datetime"]))
        out.append("benchmark gate: " + ", ".join(bits))
    out.append(line(head))
    out.append(line(["-" * w for w in widths]))
    out.extend(line(b) for b in body)
    failed = [r for r in rows if r.failed]
    counts = {s: sum(1 for r in rows if r.status == s) for s in (PASS, FAIL, MISSING, ERROR)}
    info = sum(1 for r in rows if r.status == INFO or (not r.enforce and r.status in FAILING))
    out.append("")
    out.append(f"{len(rows)} checks: {counts[PASS]} passed, "
               f"{sum(1 for r in failed if r.status == FAIL)} failed, "
               f"{counts[MISSING]} missing, {counts[ERROR]} errors, {info} informational")
    for r in failed:
        out.append(f"{r.status}: {r.check}: {r.message}")
    for r in rows:
        if not r.enforce and r.status in FAILING:
            out.append(f"not enforced, {r.status}: {r.check}: {r.message}")
    out.append("GATE FAILED" if failed else "GATE PASSED")
    return "\n".join(out)


# -- running ------------------------------------------------------------------------------

def run_benchmarks(json_path: str | os.PathLike, *, quick: bool = False,
                   pytest_args: list[str] | None = None) -> int:
    """Run the suites with pytest-benchmark, writing ``json_path``; returns pytest's code."""
    cmd = [sys.executable, "-m", "pytest", str(HERE), "-p", "no:cacheprovider",
           "--benchmark-only", f"--benchmark-json={json_path}"]
    if quick:
        cmd.append("--quick")
    cmd += list(pytest_args or [])
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=HERE.parent)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(
        prog="gate.py", description="Run the sessiondata benchmarks and gate on thresholds.")
    parser.add_argument("--quick", action="store_true",
                        help="1_000_000 bars instead of 10_000_000 (SESSIONDATA_BENCH_N wins)")
    parser.add_argument("--json", metavar="PATH",
                        help="keep the pytest-benchmark JSON of this run at PATH")
    parser.add_argument("--from-json", metavar="PATH",
                        help="do not run anything: gate an existing pytest-benchmark JSON")
    parser.add_argument("--thresholds", metavar="PATH", default=str(DEFAULT_THRESHOLDS),
                        help="the thresholds file (default: %(default)s)")
    args = parser.parse_args(argv)

    try:
        thresholds = load_thresholds(args.thresholds)
    except (OSError, ValueError) as exc:
        print(f"gate: cannot use thresholds {args.thresholds}: {exc}", file=sys.stderr)
        return 2

    rc = 0
    if args.from_json:
        json_path = args.from_json
    else:
        if args.json:
            json_path = args.json
        else:
            fd, json_path = tempfile.mkstemp(prefix="sessiondata-bench-", suffix=".json")
            os.close(fd)
        rc = run_benchmarks(json_path, quick=args.quick, pytest_args=pytest_args)
    try:
        with open(json_path, encoding="utf-8") as fh:
            results = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"gate: no benchmark results in {json_path}: {exc}", file=sys.stderr)
        return 2
    finally:
        if not args.from_json and not args.json:
            os.unlink(json_path)

    rows = evaluate(results, thresholds)
    print()
    print(format_table(rows, results))
    extra = unchecked(results, thresholds)
    if extra:
        print(f"not in the thresholds file (not gated): {', '.join(extra)}")
    if rc != 0:
        print(f"gate: pytest exited with code {rc}", file=sys.stderr)
    return 1 if gate_failed(rows) or rc != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
