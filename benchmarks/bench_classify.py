"""Accuracy of the gap kinds on universes with known truth (``sessiondata.synthetic``).

    python benchmarks/bench_classify.py                       # 100 symbols x 60 sessions, 5 seeds
    python benchmarks/bench_classify.py --symbols 500 --sessions 250 --seeds 0

Prints precision and recall per kind over the missing slots (pooled over the seeds, and the
lowest of the seeds), the slots of each kind in truth, and the time the classification takes
beside the engine's run.  Exits 1 when ``outage`` or ``no_trade`` falls below the target
(0.95 precision and recall, pooled).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from sessiondata.classify import KINDS, ClassifyOptions, classify_run
from sessiondata.engine import Engine
from sessiondata.synthetic import PRESENT, predicted, universe

TARGET = 0.95


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    confusion = np.zeros((len(KINDS), len(KINDS)), np.int64)
    per_seed = []
    run_s = classify_s = 0.0
    for seed in seeds:
        u = universe(args.symbols, args.sessions, seed=seed)
        options = ClassifyOptions(halts=u.halts)
        t0 = time.perf_counter()
        run = Engine(u.calendar, derived=(), classify=options).run(u.bars)
        t1 = time.perf_counter()
        classify_run(run, options)
        t2 = time.perf_counter()
        run_s += t1 - t0
        classify_s += t2 - t1
        pred = predicted(run, u)
        m = u.truth != PRESENT
        c = np.zeros_like(confusion)
        np.add.at(c, (u.truth[m], pred[m]), 1)
        confusion += c
        per_seed.append(c)
    print(f"gap kinds on {args.symbols} symbols x {args.sessions} sessions of 1m bars, "
          f"seeds {args.seeds}: precision and recall over missing slots")
    print(f"{'kind':<11} {'precision':>9} {'recall':>7} {'min prec':>8} {'min rec':>7} "
          f"{'slots':>9}")
    failed = False
    for i, kind in enumerate(KINDS):
        p, r = _pr(confusion, i)
        pairs = [_pr(c, i) for c in per_seed]
        print(f"{kind:<11} {p:>9.4f} {r:>7.4f} {min(x[0] for x in pairs):>8.4f} "
              f"{min(x[1] for x in pairs):>7.4f} {int(confusion[i].sum()):>9,}")
        if kind in ("outage", "no_trade") and (p < TARGET or r < TARGET):
            failed = True
    print("confusion (rows truth, columns classified):")
    print(" " * 11 + "".join(f"{k:>11}" for k in KINDS))
    for i, kind in enumerate(KINDS):
        print(f"{kind:<11}" + "".join(f"{int(v):>11,}" for v in confusion[i]))
    print(f"engine run (with the classification) {run_s / len(seeds):.2f} s, classification "
          f"alone {classify_s / len(seeds):.2f} s, per universe")
    if failed:
        print(f"FAIL: outage or no_trade below {TARGET}", file=sys.stderr)
    return 1 if failed else 0


def _pr(c: np.ndarray, i: int) -> tuple[float, float]:
    tp = c[i, i]
    pred, true = c[:, i].sum(), c[i].sum()
    return (tp / pred if pred else float("nan"), tp / true if true else float("nan"))


if __name__ == "__main__":
    sys.exit(main())
