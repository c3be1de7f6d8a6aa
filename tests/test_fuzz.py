"""A seeded fuzz of the command line on mutated real files (issue 20).

The real files of ``../shared/data`` (6E, BTC, FXCM USD/JPY, the 2006 index file, Binance
klines plain and zipped, Databento DBN, QuantConnect LEAN zips, and a Parquet copy of BTC) are
cut to a few hundred rows and mutated: byte flips, truncations, inserted and deleted bytes,
NUL bytes, byte order marks, mixed line ends, 1 MB lines, repeated and swapped lines, numeric
and timestamp edge values, corrupted gzip/zip/zstd/DBN/Parquet containers, and odd folder
entries beside the file (a broken link, a FIFO, a folder named like a data file, an empty
file).  Each case runs ``sessiondata run`` in this process through ``cli.main`` (with
``--on-bad raise`` or ``drop``) and checks the contract:

- the exit code is 0 or 2 (never 3: no internal error for any input);
- exit 2 comes from a named error type (``ReadError`` or ``CliError``), never from the
  catch-all of ``ValueError``/``TypeError``/``OSError``, and says so in one line
  (``sessiondata: error: ...``) that names the file; nothing else but one-line warnings is
  written to stderr (no traceback);
- a case takes a bounded time, and the process a bounded memory;
- every export passes ``sessiondata validate``.

``SESSIONDATA_FUZZ_CASES`` sets the number of cases (default 300, under a minute here),
``SESSIONDATA_FUZZ_SEED`` the seed, and ``SESSIONDATA_FUZZ_ONLY=k`` runs case k alone (to
reproduce a failure: the report names the case).  The long run (``SESSIONDATA_LONG=1``) adds
2,000 more cases with another seed.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import resource
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sessiondata import cli
from sessiondata.readers import ReadError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not (DATA / "btc-perp-20211231-20220201_1m.csv").exists(),
                       reason="../shared/data is absent"),
]

CASES = int(os.environ.get("SESSIONDATA_FUZZ_CASES", "300"))
SEED = int(os.environ.get("SESSIONDATA_FUZZ_SEED", "20"))
ONLY = os.environ.get("SESSIONDATA_FUZZ_ONLY")
CASE_SECONDS = 30.0             # one case, on a loaded 2-core machine (typically 0.1-0.5 s)
PEAK_RSS_BYTES = 3 << 30        # the whole process, after every case
ROWS = 400                      # rows kept of each real file


# --------------------------------------------------------------------------------------------
# The real files, cut short
# --------------------------------------------------------------------------------------------


@dataclass
class Base:
    """A real input: its text (or bytes), how it is packed and how it is run."""

    name: str
    data: bytes                 # the payload: CSV text, DBN bytes, or a LEAN member's text
    pack: str                   # "plain", "gz", "zip", "zst", "parquet", "lean"
    args: list[str]
    lines: bool = True          # the payload is text lines (line mutations apply)
    extra: dict = field(default_factory=dict)


def _head(data: bytes, n: int) -> bytes:
    return b"\n".join(data.split(b"\n")[:n + 1]) + b"\n"


@pytest.fixture(scope="module")
def bases() -> list[Base]:
    btc = _head((DATA / "btc-perp-20211231-20220201_1m.csv").read_bytes(), ROWS)
    six = _head(gzip.decompress(
        (DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz").read_bytes()), ROWS)
    index = _head((DATA / "2006-min-005.txt").read_bytes(), ROWS)
    fx = _head((DATA / "usdjpy-m1-bid-2013.csv").read_bytes(), ROWS)
    ada = (DATA / "ADABTC-1m-2021-11-27.csv").read_bytes()
    ada2 = (DATA / "ADABTC-1m-2021-11-28.csv").read_bytes()
    import zstandard

    dbn = zstandard.ZstdDecompressor().decompress(
        (DATA / "futures_ohlcv-1m_2024-07-01T23-40_2024-07-02T00-10.dbn.zst").read_bytes(),
        max_output_size=1 << 24)
    lean_dir = DATA / "lean" / "equity" / "usa" / "minute" / "aapl"
    with zipfile.ZipFile(lean_dir / "20140606_trade.zip") as zf:
        member = zf.infolist()[0]
        lean = zf.read(member)
    utc = ["--calendar", "24/7"]
    return [
        Base("BTC.csv", btc, "plain", utc),
        Base("BTC.parquet", btc, "parquet", utc),
        Base("6E.csv.gz", six, "gz", utc + ["--stamp", "end", "--tz", "UTC"]),
        Base("IDX.txt", index, "plain", utc + ["--base", "5m", "--derived", "15m,1h",
                                               "--stamp", "end", "--tz", "Europe/Berlin"]),
        Base("USDJPY.csv", fx, "plain", utc),
        Base("ADABTC-1m-2021-11-27.csv", ada, "plain", utc + ["--format", "binance"]),
        Base("ADABTC-1m-2021-11-28.zip", ada2, "zip", utc + ["--format", "binance"],
             extra={"member": "ADABTC-1m-2021-11-28.csv"}),
        Base("ES.dbn.zst", dbn, "zst", utc + ["--format", "databento"], lines=False),
        Base("aapl", lean, "lean", utc + ["--format", "lean"],
             extra={"member": member.filename, "zip": "20140606_trade.zip",
                    "folder": lean_dir}),
    ]


# --------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------

EDGE_NUMBERS = [b"1e308", b"-1e308", b"nan", b"inf", b"-inf", b"-0", b"0", b"1e-320",
                b"99999999999999999999", b"-1", b"", b"1,5", b"0x10", b" 1 ", b"\xff"]
EDGE_TIMES = [b"1677-09-21 00:12:43", b"2262-04-12 00:00:00", b"0001-01-01 00:00:00",
              b"9999-12-31 23:59:59", b"2112-01-02 10:00:00", b"1970-01-01 00:00:00",
              b"2024-02-30 10:00:00", b"99999999999999999999", b"-1", b"", b"0",
              b"253402300800000", b"2024-01-02T10:00:00+25:00", b"NaT"]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def mutate_text(rng: np.random.Generator, data: bytes, lines: bool) -> tuple[str, bytes]:
    """One mutation of a payload: (its name, the bytes)."""
    kinds = ["flip", "truncate", "insert", "delete", "nul", "bom"]
    if lines:
        kinds += ["line_ends", "long_line", "repeat", "swap", "edge_number", "edge_time",
                  "no_header", "header_twice", "reverse_block", "blank_lines"]
    kind = str(rng.choice(kinds))
    n = len(data)
    at = int(rng.integers(0, max(1, n)))
    if kind == "flip":
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            k = int(rng.integers(0, n))
            b[k] ^= int(rng.integers(1, 256))
        return kind, bytes(b)
    if kind == "truncate":
        return kind, data[:at]
    if kind == "insert":
        junk = rng.integers(0, 256, int(rng.integers(1, 24)), dtype=np.uint8).tobytes()
        return kind, data[:at] + junk + data[at:]
    if kind == "delete":
        return kind, data[:at] + data[at + int(rng.integers(1, 64)):]
    if kind == "nul":
        return kind, data[:at] + b"\0" * int(rng.integers(1, 4)) + data[at:]
    if kind == "bom":
        bom = b"\xef\xbb\xbf"
        return kind, bom + data if rng.random() < 0.5 else data[:at] + bom + data[at:]
    rows = _lines(data)
    k = int(rng.integers(1, max(2, len(rows) - 1)))
    if kind == "line_ends":
        mode = int(rng.integers(0, 3))
        if mode == 0:                               # every line end a CR (old Mac)
            return "cr_only", data.replace(b"\n", b"\r")
        if mode == 1:                               # CR LF everywhere
            return "crlf", data.replace(b"\n", b"\r\n")
        picks = rng.random(len(rows)) < 0.05       # a few bare CRs or CR LFs, mixed
        ends = [b"\r" if rng.random() < 0.5 else b"\r\n" if p else b"\n" for p in picks]
        return "mixed_ends", b"".join(r + e for r, e in zip(rows, ends))
    if kind == "long_line":
        fill = b"x" if rng.random() < 0.5 else b"1"
        rows.insert(k, fill * (1 << 20))
    elif kind == "repeat":
        rows[k:k] = [rows[k]] * int(rng.integers(1, 50))
    elif kind == "swap":
        j = int(rng.integers(1, max(2, len(rows) - 1)))
        rows[k], rows[j] = rows[j], rows[k]
    elif kind in ("edge_number", "edge_time"):
        fields = rows[k].split(b",")
        if kind == "edge_time" or len(fields) < 2:
            fields[0] = EDGE_TIMES[int(rng.integers(0, len(EDGE_TIMES)))]
        else:
            fields[int(rng.integers(1, len(fields)))] = \
                EDGE_NUMBERS[int(rng.integers(0, len(EDGE_NUMBERS)))]
        rows[k] = b",".join(fields)
    elif kind == "no_header":
        rows = rows[1:]
    elif kind == "header_twice":
        rows.insert(k, rows[0])
    elif kind == "reverse_block":
        j = min(len(rows) - 1, k + int(rng.integers(2, 100)))
        rows[k:j] = rows[k:j][::-1]
    elif kind == "blank_lines":
        rows.insert(k, b"")
        rows.insert(k, b"   ")
    return kind, b"\n".join(rows)


def mutate_container(rng: np.random.Generator, packed: bytes) -> tuple[str, bytes]:
    """A damaged container: bytes flipped, cut or zeroed anywhere in the packed file."""
    n = len(packed)
    mode = int(rng.integers(0, 3))
    if mode == 0:
        b = bytearray(packed)
        for _ in range(int(rng.integers(1, 8))):
            k = int(rng.integers(0, n))
            b[k] ^= int(rng.integers(1, 256))
        return "container_flip", bytes(b)
    if mode == 1:
        return "container_truncate", packed[:int(rng.integers(0, n))]
    k = int(rng.integers(0, n))
    return "container_zero", packed[:k] + b"\0" * min(64, n - k) + packed[k + 64:]


def pack(base: Base, payload: bytes, where: Path) -> Path:
    """Write ``payload`` as ``base`` is packed, below ``where``; returns the path to run."""
    if base.pack == "lean":
        root = where / "lean"
        shutil.copytree(base.extra["folder"], root)
        path = root / base.extra["zip"]
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(base.extra["member"], payload)
        return root
    path = where / base.name
    if base.pack == "plain":
        path.write_bytes(payload)
    elif base.pack == "gz":
        path.write_bytes(gzip.compress(payload, mtime=0))
    elif base.pack == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(base.extra["member"], payload)
    elif base.pack == "zst":
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(payload))
    elif base.pack == "parquet":
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        try:
            table = pacsv.read_csv(pa.BufferReader(payload))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # pyarrow cannot even parse it: store the text as one string column
            table = pa.table({"timestamp": [payload.decode("utf-8", "replace")[:100]]})
        pq.write_table(table, path)
    return path


def container_path(path: Path, base: Base) -> Path | None:
    """The packed file whose bytes a container mutation damages (None for plain text)."""
    if base.pack == "plain":
        return None
    if base.pack == "lean":
        return path / base.extra["zip"]
    return path


def odd_entries(rng: np.random.Generator, folder: Path) -> str:
    """An odd entry beside the data file in its folder."""
    kind = str(rng.choice(["broken_link", "fifo", "dir_named_csv", "empty_file", "hidden"]))
    if kind == "broken_link":
        os.symlink(folder / "nowhere", folder / "ZZ.csv")
    elif kind == "fifo":
        os.mkfifo(folder / "ZZ.csv")
    elif kind == "dir_named_csv":
        (folder / "ZZ.csv").mkdir()
    elif kind == "empty_file":
        (folder / "ZZ.csv").write_bytes(b"")
    else:
        (folder / ".hidden.csv").write_bytes(b"\0\0garbage")
    return kind


# --------------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: int
    what: str
    argv: list[str]
    code: int
    err: str
    seconds: float
    problems: list[str]


def run_case(k: int, seed: int, bases: list[Base], tmp: Path) -> Outcome:
    rng = np.random.default_rng([seed, k])
    base = bases[int(rng.integers(0, len(bases)))]
    where = tmp / f"case{k}"
    where.mkdir()
    damage_container = base.pack != "plain" and rng.random() < 0.3
    if damage_container:
        path = pack(base, base.data, where)
        target = container_path(path, base)
        assert target is not None
        kind, damaged = mutate_container(rng, target.read_bytes())
        target.write_bytes(damaged)
    else:
        kind, payload = mutate_text(rng, base.data, base.lines)
        path = pack(base, payload, where)
    what = f"{base.name}: {kind}"
    data_arg = path
    if base.pack not in ("lean",) and "--format" not in base.args and rng.random() < 0.2:
        what += " + " + odd_entries(rng, where)         # run the folder, not the file
        data_arg = where
    policy = "drop" if rng.random() < 0.5 else "raise"
    out = where / "out"
    argv = ["run", str(data_arg), *base.args, "--on-bad", policy, "--out", str(out),
            "--quiet"]
    seen: list[BaseException] = []
    real_one_line = cli._one_line

    def one_line(exc: BaseException) -> str:
        seen.append(exc)
        return real_one_line(exc)

    err = io.StringIO()
    cli._one_line = one_line
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main(argv)
    finally:
        cli._one_line = real_one_line
    seconds = time.perf_counter() - t0
    text = err.getvalue()
    problems = []
    if code not in (0, 2):
        problems.append(f"exit {code}")
    lines = text.splitlines()
    if any(not ln.startswith(("sessiondata: error: ", "sessiondata: warning: "))
           for ln in lines):
        problems.append("stderr holds more than one-line errors and warnings")
    errors = [ln for ln in lines if ln.startswith("sessiondata: error: ")]
    if code == 2:
        if len(errors) != 1:
            problems.append(f"{len(errors)} error lines")
        unnamed = [type(e).__name__ for e in seen if not isinstance(e, ReadError)]
        if unnamed:
            problems.append(f"exit 2 from a catch-all: {unnamed[0]}")
        if errors and str(where) not in errors[0]:
            problems.append("the error names no file of the input")
    elif errors:
        problems.append(f"exit {code} with an error line")
    if seconds > CASE_SECONDS:
        problems.append(f"took {seconds:.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if peak > PEAK_RSS_BYTES:
        problems.append(f"peak memory {peak / 2**30:.1f} GiB")
    if code == 0 and out.exists():
        with contextlib.redirect_stderr(io.StringIO()) as verr, \
                contextlib.redirect_stdout(io.StringIO()) as vout:
            vcode = cli.main(["validate", str(out)])
        if vcode != 0:
            problems.append(f"validate exit {vcode}: {(verr.getvalue() + vout.getvalue())[:300]}")
    shutil.rmtree(where, ignore_errors=True)
    return Outcome(k, what, argv, code, text.strip()[:400], seconds, problems)


def run_campaign(cases: int, seed: int, bases: list[Base], tmp: Path) -> list[Outcome]:
    todo = [int(ONLY)] if ONLY is not None else range(cases)
    return [run_case(k, seed, bases, tmp) for k in todo]


def report(outcomes: list[Outcome], seed: int) -> str:
    bad = [o for o in outcomes if o.problems]
    lines = [f"{len(bad)} of {len(outcomes)} cases broke the contract (seed {seed}; rerun one "
             "with SESSIONDATA_FUZZ_SEED=<seed> SESSIONDATA_FUZZ_ONLY=<case>):"]
    for o in bad[:15]:
        lines.append(f"  case {o.case} [{o.what}] {'; '.join(o.problems)} -- exit {o.code}: "
                     f"{o.err}")
    return "\n".join(lines)


def test_fuzz_mutated_real_files_keep_the_cli_contract(bases, tmp_path):
    outcomes = run_campaign(CASES, SEED, bases, tmp_path)
    assert not [o for o in outcomes if o.problems], report(outcomes, SEED)
    codes = {o.code for o in outcomes}
    if ONLY is None:
        # The campaign must reach both outcomes, or it tests too little.
        assert codes == {0, 2}, codes


@pytest.mark.slow
def test_fuzz_long(bases, tmp_path):
    seed = SEED + 1
    outcomes = run_campaign(2000, seed, bases, tmp_path)
    assert not [o for o in outcomes if o.problems], report(outcomes, seed)
