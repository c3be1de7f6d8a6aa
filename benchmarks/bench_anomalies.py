"""Accuracy and cost of the anomaly detectors (issue 22; ``sessiondata.anomalies``).

    python benchmarks/bench_anomalies.py                 # synthetic + real files, 3 seeds
    python benchmarks/bench_anomalies.py --seeds 0 --symbols 40
    python benchmarks/bench_anomalies.py --cost          # + time against the main job

Accuracy: precision and recall per kind, matching found ranges to injected ones by symbol,
kind and overlap (``sessiondata.synthetic.score_anomalies``), pooled over

- synthetic universes (``anomaly_universe``): realistic 1m bars on New York exchange hours and
  on a 24/7 calendar, every kind injected at the rates of ``ANOMALY_RATES``;
- the real files of ``../shared/data`` (6E on CME Globex, the BTC perpetual on 24/7, USD/JPY on
  the FX week) with every kind injected (``inject_anomalies``, the same rates, doubled for the
  per-symbol kinds since a file is one symbol), eight injections per seed; what the detectors
  find in a file before injection is its own and is left out of the score (and listed).

Exits 1 when a kind's pooled precision or recall is below 0.9 (the issue's target is 0.95).

``--cost``: the main-job universe of ``bench_main_job.py`` (100 symbols x 252 XNYS sessions of
1m bars as Parquet) run through ``sessiondata run`` and, in the same process and alternating,
the detectors over the same bars (``detect_symbol`` per symbol, one thread); prints both per
bar and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import sessiondata as sd
from sessiondata.anomalies import (KINDS, AnomalyParams, clock_profile_strength,
                                   detect_symbol)
from sessiondata.synthetic import (MINUTE_NS, AnomalyTruth, anomaly_universe,
                                   inject_anomalies, score_anomalies)

FAIL = 0.9
TARGET = 0.95
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_REPEATS = 8
REAL_RATES = {"jump": 0.6, "volume_shift": 0.5, "zero_volume": 0.2, "clock_shift": 0.5,
              "clock_stamp": 0.3, "duplicate_session": 0.5}
# Every injected kind is scored in every file, clock shifts included: the BTC and USD/JPY
# profiles are weak (``clock_profile_strength`` about 2.2 and 3.1, where a run of two shifted
# sessions needs about 3.5 to pass ``clock_margin`` on the profile alone), and there the
# detector finds a run from the edge it leaves (``clock_edge_margin``: sessions back to back,
# a run stamped h hours late leaves its first session's first h hours empty). The strength is
# printed for information.
STRENGTH: dict[str, float] = {}               # per real file: clock profile strength


def real_files() -> dict[str, tuple[sd.Bars, sd.Calendar]]:
    """6E, BTC and USD/JPY from ../shared/data (those present)."""
    import pandas as pd

    out = {}
    specs = [
        ("6E", "6EH4.XCME_1min_bars_20240101_20240131.csv.gz", "timestamp_utc", MINUTE_NS,
         True, lambda: sd.Calendar.exchange("CME_GLOBEX")),
        ("BTC", "btc-perp-20211231-20220201_1m.csv", "timestamp", 0, True,
         sd.Calendar.always),
        ("USDJPY", "usdjpy-m1-bid-2013.csv", "timestamp", 0, False,
         lambda: sd.Calendar.weekly("America/New_York", "17:00", "17:00", "Mon-Fri")),
    ]
    for name, file, col, shift, has_volume, cal in specs:
        path = DATA / file
        if not path.exists():
            continue
        df = pd.read_csv(path)
        ts = (pd.to_datetime(df[col], utc=True).dt.tz_localize(None).to_numpy()
              .astype("datetime64[ns]").astype(np.int64) - shift)
        prices = [df[c].to_numpy(np.float64) for c in ("open", "high", "low", "close")]
        volume = df["volume"].to_numpy(np.float64) if has_volume else None
        out[name] = (sd.Bars.from_arrays(ts, *prices, volume, interval="1m"), cal())
    return out


def _merge(truths: list[AnomalyTruth]) -> AnomalyTruth:
    return AnomalyTruth(sum((t.symbol for t in truths), []),
                        np.concatenate([t.kind for t in truths]),
                        np.concatenate([t.start_ns for t in truths]),
                        np.concatenate([t.end_ns for t in truths]),
                        np.concatenate([t.bar_count for t in truths]))


def accuracy(symbols: int, sessions: int, seeds: list[int], params: AnomalyParams
             ) -> tuple[dict[str, dict[str, dict[str, float]]], float, int]:
    """Scores per source ("exchange", "24h", "real") and pooled ("all"); detector time and
    bars."""
    found_all: dict[str, object] = {}
    truths: list[AnomalyTruth] = []
    parts: dict[str, tuple[dict, list[AnomalyTruth], dict]] = {}
    spent, n_bars = 0.0, 0
    for hours in ("exchange", "24h"):
        found: dict[str, object] = {}
        ts_: list[AnomalyTruth] = []
        for seed in seeds:
            u = anomaly_universe(symbols, sessions, seed=seed, hours=hours)
            for sym, bars in u.bars.items():
                t0 = time.perf_counter()
                found[f"{hours}/{seed}/{sym}"] = detect_symbol(bars, u.windows, u.step_ns,
                                                               params)
                spent += time.perf_counter() - t0
                n_bars += len(bars)
            t = u.truth
            ts_.append(AnomalyTruth([f"{hours}/{seed}/{s}" for s in t.symbol], t.kind,
                                    t.start_ns, t.end_ns, t.bar_count))
        parts[hours] = (found, ts_, {})
    found, ts_, own = {}, [], {}
    for name, (bars, cal) in real_files().items():
        windows = cal.windows(int(bars.ts[0]), int(bars.ts[-1]) + 1)
        base = detect_symbol(bars, windows, MINUTE_NS, params)
        STRENGTH[name] = clock_profile_strength(bars, windows, MINUTE_NS, params)
        for seed, rep in ((s, r) for s in seeds for r in range(REAL_REPEATS)):
            key = f"real/{seed}/{rep}/{name}"
            rng = np.random.default_rng(1000 + seed * REAL_REPEATS + rep)
            injected, t = inject_anomalies(bars, windows, MINUTE_NS, rng, key, REAL_RATES)
            t0 = time.perf_counter()
            found[key] = detect_symbol(injected, windows, MINUTE_NS, params)
            spent += time.perf_counter() - t0
            n_bars += len(injected)
            own[key] = base
            ts_.append(t)
    parts["real"] = (found, ts_, own)
    scores = {}
    ignore: dict[str, object] = {}
    for key, (found, ts_, own) in parts.items():
        scores[key] = score_anomalies(found, _merge(ts_), own)
        found_all.update(found)
        ignore.update(own)
        truths.extend(ts_)
    scores["all"] = score_anomalies(found_all, _merge(truths), ignore)
    return scores, spent, n_bars


def cost(n_symbols: int, rounds: int) -> dict[str, float]:
    """The main job with the detectors against the same job without them (``--anomalies
    none``), each ``sessiondata run`` a child process, alternating; wall time and CPU time
    (the child's user + system, from ``getrusage``), best of ``rounds``; and the detectors
    alone in this process (``detect_symbol`` per symbol, one thread, ``process_time``)."""
    import os
    import resource
    import shutil
    import subprocess

    import pyarrow.parquet as pq

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_main_job import make_universe  # the main job's own universe

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "u"
        n = make_universe(folder, n_symbols, fmts=("parquet",))
        exe = [sys.executable, "-m", "sessiondata", "run", str(folder / "parquet"),
               "--calendar", "XNYS", "-q"]
        times: dict[str, list[tuple[float, float]]] = {"with": [], "without": []}
        for r in range(rounds):
            for mode in ("with", "without"):
                out = Path(tmp) / "out"
                shutil.rmtree(out, ignore_errors=True)
                cmd = exe + ["--out", str(out)] + (["--anomalies", "none"]
                                                   if mode == "without" else [])
                u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                wall = time.perf_counter() - t0
                u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
                times[mode].append((wall, cpu))
        cal = sd.Calendar.exchange("XNYS")
        bars = []
        for f in sorted((folder / "parquet").glob("*.parquet")):
            t = pq.read_table(f)
            ts = t["timestamp"].cast("int64").to_numpy()
            bars.append(sd.Bars.from_arrays(ts, *(t[c].to_numpy() for c in
                                                  ("open", "high", "low", "close", "volume")),
                                            interval="1m"))
        windows = cal.windows(int(min(b.ts[0] for b in bars)),
                              int(max(b.ts[-1] for b in bars)) + 1)
        params = AnomalyParams()
        det = []
        for r in range(rounds):
            c0 = time.process_time()
            found = sum(len(detect_symbol(b, windows, MINUTE_NS, params)) for b in bars)
            det.append(time.process_time() - c0)
    wall = {m: min(x[0] for x in v) for m, v in times.items()}
    cpu = {m: min(x[1] for x in v) for m, v in times.items()}
    d = min(det)
    out_ = {"wall_ratio": wall["with"] / wall["without"], "cpu_ratio": cpu["with"] / cpu["without"],
            "detectors_cpu_share": d / cpu["without"]}
    print(f"cost on {n_symbols} symbols x 252 XNYS sessions, {n:,} 1m bars, best of {rounds} "
          f"rounds, alternating, load average {os.getloadavg()[0]:.1f}:")
    for m in ("with", "without"):
        print(f"  sessiondata run, detectors {m:<7}  wall {wall[m]:6.2f} s  cpu {cpu[m]:6.2f} s "
              f"({cpu[m] / n * 1e9:6.1f} ns/bar)")
    print(f"  detectors alone (detect_symbol, one thread) cpu {d:.2f} s ({d / n * 1e9:.1f} "
          f"ns/bar, {found} anomalies)")
    print(f"  with / without: wall {out_['wall_ratio']:.3f}, cpu {out_['cpu_ratio']:.3f} "
          f"(target <= 1.25); detectors alone / job without: {out_['detectors_cpu_share']:.3f}")
    return out_


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=60)
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--cost-symbols", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    scores, spent, n_bars = accuracy(args.symbols, args.sessions, seeds, AnomalyParams())
    print(f"anomaly kinds: {args.symbols} symbols x {args.sessions} sessions of 1m bars per "
          f"calendar (exchange hours, 24/7), seeds {args.seeds}, and the real files with "
          f"injections; precision / recall (true ranges)")
    head = f"{'kind':<18}" + "".join(f"{k:>20}" for k in ("exchange", "24h", "real", "all"))
    print(head)
    failed = []
    for kind in KINDS:
        line = f"{kind:<18}"
        for key in ("exchange", "24h", "real", "all"):
            s = scores[key][kind]
            line += f"{s['precision']:>8.3f} {s['recall']:>5.3f} ({s['support']:>3})"
        print(line)
        a = scores["all"][kind]
        if not (a["precision"] >= FAIL and a["recall"] >= FAIL):
            failed.append(kind)
    below = [k for k in KINDS if not (scores["all"][k]["precision"] >= TARGET
                                      and scores["all"][k]["recall"] >= TARGET)]
    print(f"detectors: {spent / n_bars * 1e9:.1f} ns/bar over {n_bars:,} bars (one thread)")
    print("clock profile strength of the real files (clock_profile_strength): "
          + ", ".join(f"{k} {v:.2f}" for k, v in STRENGTH.items()))
    if below:
        print(f"below the {TARGET} target: {', '.join(below)}")
    if args.cost:
        cost(args.cost_symbols, args.rounds)
    if failed:
        print(f"FAIL: {', '.join(failed)} below {FAIL}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
