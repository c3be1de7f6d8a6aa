"""Readers against polars on the same files, in one process (issue 9 item 6).

A folder of N files (one symbol each) of one year of XNYS 1m bars (~1% missing at random),
as CSV (``timestamp`` ISO 8601 UTC, ``open,high,low,close,volume``) and as Parquet.  Prints
the time of ``sessiondata.readers.read_bars(folder)`` and of polars reading every file, and
their ratio (best of ``--repeat``).

    python benchmarks/bench_readers.py [--symbols 100] [--repeat 3] [--dir /tmp/bench-readers]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def xnys_minutes(year: int = 2024) -> np.ndarray:
    """Every 1m slot of the regular XNYS sessions of ``year`` (int64 ns UTC)."""
    from sessiondata import Calendar

    cal = Calendar.exchange("XNYS")
    start = int(np.datetime64(f"{year}-01-01", "ns").astype(np.int64))
    end = int(np.datetime64(f"{year + 1}-01-01", "ns").astype(np.int64))
    w = cal.windows(start, end)
    minute = 60_000_000_000
    return np.concatenate([np.arange(o, c, minute) for o, c in zip(w.open_ns.tolist(),
                                                                   w.close_ns.tolist())])


def write_universe(folder: Path, symbols: int, seed: int = 7) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    csv_dir, pq_dir = folder / "csv", folder / "parquet"
    if csv_dir.exists() and len(list(csv_dir.glob("*.csv"))) == symbols and \
            len(list(pq_dir.glob("*.parquet"))) == symbols:
        return csv_dir, pq_dir
    csv_dir.mkdir(parents=True, exist_ok=True)
    pq_dir.mkdir(parents=True, exist_ok=True)
    grid = xnys_minutes()
    rng = np.random.default_rng(seed)
    for k in range(symbols):
        ts = grid[rng.random(len(grid)) > 0.01]
        n = len(ts)
        close = 100 + np.cumsum(rng.normal(0, 0.05, n))
        open_ = close + rng.normal(0, 0.02, n)
        high = np.maximum(open_, close) + rng.random(n) * 0.05
        low = np.minimum(open_, close) - rng.random(n) * 0.05
        volume = rng.integers(100, 10_000, n).astype(np.float64)
        stamp = pa.array(ts.view("datetime64[ns]"), pa.timestamp("ns", "UTC"))
        cols = {"open": open_.round(4), "high": high.round(4), "low": low.round(4),
                "close": close.round(4), "volume": volume}
        text = pc.strftime(stamp, format="%Y-%m-%dT%H:%M:%SZ")
        pacsv.write_csv(pa.table({"timestamp": text, **cols}), csv_dir / f"S{k:03d}.csv")
        pq.write_table(pa.table({"timestamp": stamp, **cols}), pq_dir / f"S{k:03d}.parquet")
    return csv_dir, pq_dir


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/bench-readers")
    args = ap.parse_args()
    import polars as pl

    from sessiondata import readers

    csv_dir, pq_dir = write_universe(Path(args.dir), args.symbols)
    csv_files = sorted(csv_dir.glob("*.csv"))
    pq_files = sorted(pq_dir.glob("*.parquet"))
    rows = sum(len(b) for b in readers.read_bars(pq_dir).bars.values())
    print(f"{args.symbols} files, {rows:,} bars")
    print(f"{'format':8} {'sessiondata':>12} {'polars':>9} {'ratio':>6}")
    for label, folder, files, pl_read in (
            ("CSV", csv_dir, csv_files, pl.read_csv), ("Parquet", pq_dir, pq_files,
                                                       pl.read_parquet)):
        # Interleaved, so that a busy machine slows both alike; best of each.
        ours = theirs = float("inf")
        for _ in range(args.repeat):
            ours = min(ours, best(lambda: readers.read_bars(folder), 1))
            theirs = min(theirs, best(lambda: [pl_read(f) for f in files], 1))
        print(f"{label:8} {ours:11.2f}s {theirs:8.2f}s {ours / theirs:5.2f}x")


if __name__ == "__main__":
    main()
