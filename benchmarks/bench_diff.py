"""``sd.diff`` on a year of 100 symbols, against reading both exports.

    python benchmarks/bench_diff.py [--symbols 100] [--rounds 3]

The universe of ``bench_main_job.py`` (100 symbols x 252 XNYS sessions of 1m bars, ~9.7M
bars, Parquet files) is delivered twice: the second time with 100 bars edited, 10 removed and
10 added (minutes that were missing).  Both are run with ``--export-base`` (not timed).  Then,
in alternation in each round, in this process:

- ``read both``: every bar dataset of both exports read into memory with pyarrow (the floor:
  what any comparison has to read);
- ``sd.diff``: the whole comparison (reading, keys, matching, ledger, cells, gaps, figures).

It prints the best time of each, their ratio, and then the peak RSS of each measured alone
in a child process (the peak memory, VmHWM, of a fresh interpreter that does only that), and checks
that the diff found exactly the 120 changes it was given.  ``--keep DIR`` keeps (and reuses)
the universe and the exports.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pds
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_main_job import make_universe  # noqa: E402

import sessiondata as sd  # noqa: E402
from sessiondata import cli  # noqa: E402


def redeliver(src: Path, dst: Path, seed: int = 7) -> tuple[int, int, int]:
    """Copy the Parquet folder with bars edited, removed and added in a few files."""
    rng = np.random.default_rng(seed)
    dst.mkdir(parents=True)
    files = sorted(src.glob("*.parquet"))
    chosen = set(rng.choice(len(files), 10, replace=False).tolist())
    edited = removed = added = 0
    for i, path in enumerate(files):
        if i not in chosen:
            shutil.copy(path, dst / path.name)
            continue
        t = pq.read_table(path).to_pandas()
        rows = rng.choice(len(t), 11, replace=False)
        t.loc[t.index[rows[:10]], "volume"] += 1.0          # 10 bars edited per file
        edited += 10
        t = t.drop(t.index[rows[10]])                        # one removed
        removed += 1
        ts = t["timestamp"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
        gap = int(np.flatnonzero(np.diff(ts) == 120_000_000_000)[0])
        extra = t.iloc[[gap]].copy()
        extra["timestamp"] = extra["timestamp"] + np.timedelta64(1, "m")
        t = pd.concat([t.iloc[:gap + 1], extra, t.iloc[gap + 1:]])
        added += 1
        t.to_parquet(dst / path.name, index=False)
    return edited, removed, added


def read_both(a: Path, b: Path) -> int:
    rows = 0
    for root in (a, b):
        for folder in sorted((root / "bars").glob("interval=*")):
            rows += pds.dataset(str(folder), format="parquet").to_table().num_rows
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="keep (and reuse) the data and exports")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        root = Path(args.keep or tmp)
        if not (root / "b" / "manifest.json").exists():
            make_universe(root / "u", args.symbols, fmts=("parquet",))
            counts = redeliver(root / "u" / "parquet", root / "v")
            (root / "given.txt").write_text(" ".join(map(str, counts)))
            for name, data in (("a", root / "u" / "parquet"), ("b", root / "v")):
                assert cli.main(["-q", "run", str(data), "--calendar", "XNYS",
                                 "--export-base", "--out", str(root / name)]) == 0
        edited, removed, added = map(int, (root / "given.txt").read_text().split())
        bars = pds.dataset(str(root / "a" / "bars" / "interval=1m"),
                           format="parquet").count_rows()
        best = {"read both": float("inf"), "sd.diff": float("inf")}
        result = None
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            n = read_both(root / "a", root / "b")
            best["read both"] = min(best["read both"], time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = sd.diff(root / "a", root / "b")
            best["sd.diff"] = min(best["sd.diff"], time.perf_counter() - t0)
        assert result is not None
        t = result.summary["intervals"]["1m"]
        print(f"{args.symbols} symbols, {bars:,} base bars per export; rows read (both "
              f"exports, every interval) {n:,}")
        print(f"given: {edited} edited, {removed} removed, {added} added; found: "
              f"{t['changed']} changed, {t['removed']} removed, {t['added']} added; "
              f"derived unexplained: "
              f"{[v['unexplained'] for k, v in result.summary['intervals'].items() if k != '1m']}")
        for k, v in best.items():
            print(f"{k:10s} {v:6.2f} s (best of {args.rounds})")
        print(f"ratio sd.diff / read both: {best['sd.diff'] / best['read both']:.2f}x")
        assert (t["changed"], t["removed"], t["added"]) == (edited, removed, added)
        for what, code in (("read both", f"import bench_diff as b; from pathlib import Path; "
                                         f"b.read_both(Path({str(root / 'a')!r}), "
                                         f"Path({str(root / 'b')!r}))"),
                           ("sd.diff", f"import sessiondata as sd; "
                                       f"sd.diff({str(root / 'a')!r}, {str(root / 'b')!r})")):
            code += "; from peak import peak_rss_bytes; print(peak_rss_bytes() // 1024)"
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code], check=True, text=True,
                                  capture_output=True, cwd=Path(__file__).resolve().parent)
            wall = time.perf_counter() - t0
            rss = int(done.stdout.split()[-1]) / 1024
            print(f"{what:10s} alone in a child: {wall:6.2f} s (interpreter start included), "
                  f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
