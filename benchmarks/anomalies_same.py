"""Whether the anomaly detectors' results are unchanged: every column of ``detect_symbol``'s
``Anomalies`` (and ``clock_profile_strength``) on a fixed set of inputs, saved once and then
compared exactly (a refactoring of the detectors must not move one bit).

    python benchmarks/anomalies_same.py --save /tmp/anom_ref.npz    # before the change
    python benchmarks/anomalies_same.py --check /tmp/anom_ref.npz   # after: exit 1 if not equal

The inputs: the synthetic universes of ``bench_anomalies.py`` (both calendars) for seeds 0-4,
the real files of ``../shared/data`` as they are (6E, BTC, USD/JPY, the index, ADA/BTC, the
LEAN AAPL zips with the 2014 split) and with the benchmark's injections (seeds 0-4, two
repeats each), and ``--cost-symbols`` symbols of the cost benchmark's universe.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, cast

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sessiondata as sd  # noqa: E402
from sessiondata.anomalies import clock_profile_strength, detect_symbol  # noqa: E402
from sessiondata.synthetic import MINUTE_NS, anomaly_universe, inject_anomalies  # noqa: E402

COLS = ("kind", "start_ns", "end_ns", "bar_count", "value", "baseline", "score", "ref_ns")


def _index_bars(data: Path) -> "sd.Bars":
    """The index file as the project's reader reads it (Berlin wall clock, bar-end stamps)."""
    from sessiondata.readers import read_bars

    read = read_bars(data / "2006-min-005.txt", tz="Europe/Berlin", stamp="end", interval="5m")
    return next(iter(read.bars.values()))


def cases(seeds: list[int], symbols: int, sessions: int, cost_symbols: int
          ) -> Iterator[tuple[str, sd.Bars, object, int]]:
    """(name, bars, windows, step_ns) of every input."""
    from bench_anomalies import DATA, REAL_RATES, REAL_REPEATS, real_files

    for hours in ("exchange", "24h"):
        for seed in seeds:
            u = anomaly_universe(symbols, sessions, seed=seed, hours=hours)
            for sym, bars in u.bars.items():
                yield f"{hours}/{seed}/{sym}", bars, u.windows, u.step_ns
    for name, (bars, cal) in real_files().items():
        windows = cal.windows(int(bars.ts[0]), int(bars.ts[-1]) + 1)
        yield f"real/{name}", bars, windows, MINUTE_NS
        for seed in seeds:
            for rep in range(min(2, REAL_REPEATS)):
                rng = np.random.default_rng(1000 + seed * REAL_REPEATS + rep)
                key = f"real/{seed}/{rep}/{name}"
                injected, _ = inject_anomalies(bars, windows, MINUTE_NS, rng, key, REAL_RATES)
                yield key, injected, windows, MINUTE_NS
    if (DATA / "lean").is_dir():
        from sessiondata.formats import read_lean
        bars = read_lean([DATA / "lean"], prices="trade").bars["AAPL"]
        cal = sd.Calendar.weekly("America/New_York", "04:00", "20:00", "Mon-Fri")
        yield "real/AAPL", bars, cal.windows(int(bars.ts[0]), int(bars.ts[-1]) + 1), MINUTE_NS
    if (DATA / "2006-min-005.txt").exists():
        bars = _index_bars(DATA)
        cal = sd.Calendar.weekly("Europe/Berlin", "09:00", "17:30", "Mon-Fri")
        yield ("real/index", bars, cal.windows(int(bars.ts[0]), int(bars.ts[-1]) + 1),
               5 * MINUTE_NS)
    if cost_symbols > 0:
        import pyarrow.parquet as pq
        from bench_main_job import make_universe
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "u"
            make_universe(folder, cost_symbols, fmts=("parquet",))
            cal = sd.Calendar.exchange("XNYS")
            all_bars = []
            for f in sorted((folder / "parquet").glob("*.parquet")):
                t = pq.read_table(f)
                ts = t["timestamp"].cast("int64").to_numpy()
                all_bars.append((f.stem, sd.Bars.from_arrays(
                    ts, *(t[c].to_numpy() for c in ("open", "high", "low", "close", "volume")),
                    interval="1m")))
            windows = cal.windows(int(min(b.ts[0] for _, b in all_bars)),
                                  int(max(b.ts[-1] for _, b in all_bars)) + 1)
            for name, bars in all_bars:
                yield f"cost/{name}", bars, windows, MINUTE_NS


def collect(args: argparse.Namespace) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    seeds = [int(s) for s in args.seeds.split(",")]
    for name, bars, windows, step in cases(seeds, args.symbols, args.sessions,
                                           args.cost_symbols):
        a = detect_symbol(bars, windows, step)
        for c in COLS:
            out[f"{name}|{c}"] = getattr(a, c)
        if not name.startswith("cost/"):
            out[f"{name}|strength"] = np.array([clock_profile_strength(bars, windows, step)])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save")
    g.add_argument("--check")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--symbols", type=int, default=60)
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--cost-symbols", type=int, default=100)
    args = ap.parse_args(argv)
    got = collect(args)
    n_found = sum(len(v) for k, v in got.items() if k.endswith("|kind"))
    if args.save:
        np.savez_compressed(args.save, **cast(dict[str, Any], got))
        print(f"saved {len(got)} columns ({n_found} anomalies) to {args.save}")
        return 0
    ref = dict(np.load(args.check))
    bad = sorted(set(ref) ^ set(got))
    for k in sorted(set(ref) & set(got)):
        if ref[k].dtype != got[k].dtype or not np.array_equal(ref[k], got[k], equal_nan=True):
            bad.append(k)
    if bad:
        print(f"DIFFERENT: {len(bad)} of {len(ref)} columns, first: {bad[:10]}")
        return 1
    print(f"identical: {len(got)} columns, {n_found} anomalies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
