"""Per-worker figures for docs/scaling.md: bars per CPU-second, memory per symbol-year, bytes
moved per symbol (through moto's S3 server on 127.0.0.1), measured on this machine.

    python benchmarks/scaling_figures.py [--symbols 20] [--sessions 60]

One worker thread (``threads=1``): the CPU time is the process's (``time.process_time``), so a
loaded machine stretches the wall time but not the figure much.  Memory per symbol-year is the
peak resident set of a process that runs one symbol of 252 sessions, minus that of a process
that runs one symbol of 5 sessions (the interpreter, the libraries): what one more
symbol-year in a partition costs a worker.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MINUTE = 60_000_000_000


def universe(folder: Path, n: int, sessions: int, seed: int = 3, one_file: bool = False) -> int:
    """``n`` Parquet files of 1m bars, 390 a weekday from 14:30 UTC (or one file with a
    symbol column: one partition); the bar count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64("2023-01-02"), np.datetime64("2026-01-01"))
    days = days[np.is_busday(days)][:sessions]
    minutes = np.arange(390, dtype=np.int64) * MINUTE
    total = 0
    tables = []
    for i in range(n):
        ts = ((days.astype("datetime64[ns]").astype(np.int64) + 870 * MINUTE)[:, None]
              + minutes[None, :]).ravel()
        ts = ts[rng.random(len(ts)) >= 0.01]
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, len(ts))))
        open_ = np.r_[100.0, close[:-1]]
        table = pa.table({
            "symbol": [f"S{i:04d}"] * len(ts),
            "timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")), "open": open_,
            "high": np.maximum(open_, close) * 1.0001, "low": np.minimum(open_, close) * 0.9999,
            "close": close, "volume": np.round(rng.standard_exponential(len(ts)) * 1000.0),
        })
        if one_file:
            tables.append(table)
        else:
            pq.write_table(table.drop_columns(["symbol"]), folder / f"S{i:04d}.parquet")
        total += len(ts)
    if one_file:
        pq.write_table(pa.concat_tables(tables), folder / "all.parquet")
    return total


CALENDAR = 'Calendar.weekly("UTC", "14:30", "21:00", "Mon-Fri")'


def peak_rss_mb(data: Path, out: Path) -> float:
    here = str(Path(__file__).resolve().parent)
    code = (f"import sys, sessiondata\nsys.path.insert(0, {here!r})\n"
            "from peak import peak_rss_bytes\nfrom sessiondata import Calendar\n"
            f"sessiondata.run({str(data)!r}, {CALENDAR}, out={str(out)!r}, threads=1)\n"
            "print(peak_rss_bytes() // 1024)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return int(done.stdout.split()[-1]) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=60)
    args = ap.parse_args()
    import sessiondata
    from sessiondata import Calendar, storage

    cal = Calendar.weekly("UTC", "14:30", "21:00", "Mon-Fri")
    figures: dict[str, object] = {"load": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bars = universe(root / "u", args.symbols, args.sessions)
        sessiondata.run(root / "u", cal, out=root / "warm", threads=1)   # imports, caches
        t0, w0 = time.process_time(), time.perf_counter()
        sessiondata.run(root / "u", cal, out=root / "o", threads=1)
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
        figures.update(bars=bars, cpu_s=round(cpu, 3), wall_s=round(wall, 3),
                       bars_per_cpu_s=round(bars / cpu))

        # Symbol-years in one partition (a file with a symbol column): the slope between
        # 8 and 32 of them is what one more costs.
        universe(root / "y8", 8, 252, one_file=True)
        universe(root / "y32", 32, 252, one_file=True)
        small, big = peak_rss_mb(root / "y8", root / "o8"), peak_rss_mb(root / "y32",
                                                                        root / "o32")
        figures.update(peak_rss_8_symbol_years_mb=round(small, 1),
                       peak_rss_32_symbol_years_mb=round(big, 1),
                       mb_per_symbol_year=round((big - small) / 24, 1))

        # Bytes on the wire per symbol: the data read and the export written, on S3.
        from moto.server import DomainDispatcherApplication, ThreadedMotoServer, \
            create_backend_app
        from werkzeug.serving import make_server

        moved = {"get": 0, "put": 0}
        lock = threading.Lock()

        class Counting(ThreadedMotoServer):
            def _server_entry(self) -> None:
                app = DomainDispatcherApplication(create_backend_app)

                def counted(environ, start_response):
                    def start(status, headers, *rest):
                        if environ["REQUEST_METHOD"] == "GET":
                            n = dict((k.lower(), v) for k, v in headers).get("content-length")
                            with lock:
                                moved["get"] += int(n or 0)
                        return start_response(status, headers, *rest)
                    if environ["REQUEST_METHOD"] in ("PUT", "POST"):
                        with lock:
                            moved["put"] += int(environ.get("CONTENT_LENGTH") or 0)
                    return app(environ, start)

                self._server = make_server(self._ip_address, self._port, counted, True)
                self._server_ready_event.set()
                self._server.serve_forever()

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = Counting(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                          AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                          AWS_DEFAULT_REGION="us-east-1")
        import boto3

        boto3.client("s3").create_bucket(Bucket="scaling")
        fs, _ = storage.resolve("s3://scaling/u")
        for p in sorted((root / "u").iterdir()):
            storage.write_bytes(fs, f"scaling/u/{p.name}", p.read_bytes())
        moved.update(get=0, put=0)
        sessiondata.run("s3://scaling/u", cal, out="s3://scaling/out", threads=1)
        record = storage.latest(fs, "scaling/out")
        written = sum(fs.get_file_info(f"scaling/out/{f}").size for f in record["files"])
        server.stop()
        input_bytes = sum(p.stat().st_size for p in (root / "u").iterdir())
        figures.update(input_bytes_per_symbol=input_bytes // args.symbols,
                       get_bytes_per_symbol=moved["get"] // args.symbols,
                       export_bytes_per_symbol=written // args.symbols,
                       symbols=args.symbols, sessions=args.sessions)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
