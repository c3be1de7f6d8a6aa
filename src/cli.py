"""The ``sessiondata`` command line.

    sessiondata run [DATA] --calendar XNYS --base 1m --derived 5m,15m,1h --out DIR
    sessiondata validate DIR
    sessiondata report DIR
    sessiondata check DIR --fail-under completeness=99.5 [--format table|json|junit|github]
    sessiondata diff OLD NEW [--out DIFF] [--tolerance X]
    sessiondata inspect DATA [--json]

``run`` reads every symbol's bars from DATA (a CSV or Parquet file, or a folder of them, or a
vendor format; the embedded sample when DATA is not given), runs every trading session of the
data through the engine (``sessiondata.engine``), exports the run as a whole (session
documents, bar and gap datasets, see ``sessiondata.export``) and prints a summary: symbols,
sessions, bars, gaps, missing bars, quality and the worst sessions.  ``validate`` reads such
an export back and checks it.

Partial sessions.  Data rarely starts at a session's open and ends at a close.  The run is
scored from the data's first bar to the end of its last (dataset-wide: a symbol whose data
starts later than the others' has a real gap); a symbol added in the middle of a session is
scored from then.  A bucket cut by that span counts its bars over its slots inside it, so a
derived interval never has more bars than expected slots.  A session cut so is marked
partial in the summary.

Exit codes: 0 done; 1 ``validate`` found problems, an error rule of ``check`` (or ``run
--check``) failed, or ``diff`` found history changed; 2 bad input or usage (one line on stderr
says why; ``--debug`` shows the traceback); 3 an internal error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import job, readers, sample
from .calendar import Calendar
from .classify import ClassifyOptions, Halts
from .export import validate_export, write_json
from .intervals import check_derivable, parse_interval
from .plausibility import Plausibility, PlausibilityWarning
from .summary import WORST_SESSIONS, Summary, plural

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

PROG = "sessiondata"

CALENDAR_HELP = ("exchange code (XNYS, XETR, CME_GLOBEX, ...: exchange_calendars gives every "
                 "past session today's hours), CODE@HH:MM-HH:MM (the exchange's sessions and "
                 "holidays in other local hours, e.g. XEUR@09:00-22:00), FX (Sunday 17:00 to "
                 "Friday 17:00 New York), '24/7' (or 'always'), or "
                 "'weekly:TZ,HH:MM,HH:MM[,Mon-Fri]'; required with DATA")


class CliError(Exception):
    """A one-line reason to stop, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's name
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_BAD_INPUT)


def _common_options(default: object) -> _Parser:
    """The options every command takes, before or after its name."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of an error")
    common.add_argument("--quiet", "-q", action="store_true", default=default,
                        help="print nothing but errors (no progress, no summary)")
    common.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                        default=default if default is argparse.SUPPRESS else None,
                        help="an option of the object store of s3://, gs://, az:// URLs "
                             "(endpoint_url, key, secret, region, anon, ...); repeatable")
    return common


def build_parser() -> argparse.ArgumentParser:
    # The main parser sets the defaults; a subcommand's copy of an option sets it only when
    # given (SUPPRESS), or its default would overwrite `sessiondata -q run`'s -q.
    parser = _Parser(prog=PROG, description="Session-aware bar data: gaps, quality, exports.",
                     parents=[_common_options(False)])
    common = _common_options(argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run", parents=[common], help="run the sessions of a data folder (or the sample)",
        description="Run every trading session of DATA (a CSV or Parquet file, or a folder of "
                    "them; the embedded sample when omitted): derived bars, gaps and quality "
                    "per session, exported as a whole, and a summary.")
    run.add_argument("data", nargs="?", metavar="DATA",
                     help="a data file or a folder of them (default: the embedded sample)")
    run.add_argument("--calendar", metavar="CAL", help=CALENDAR_HELP)
    run.add_argument("--base", default="1m", metavar="IV",
                     help="the bars' interval (default 1m)")
    run.add_argument("--derived", default="5m,15m,1h", metavar="IV,IV",
                     help="derived intervals, comma-separated, or 'none' (default 5m,15m,1h)")
    run.add_argument("--out", default="sessiondata-out", metavar="DIR",
                     help="export folder (default ./sessiondata-out): DIR/sessions/<date>.json, "
                          "DIR/bars/interval=<iv>/*.parquet, DIR/gaps/..., DIR/manifest.json; "
                          "replaced as a whole when the run succeeds")
    run.add_argument("--bars", choices=("parquet", "csv"), default="parquet",
                     help="format of the exported bar and gap datasets (default parquet)")
    run.add_argument("--export-base", action="store_true",
                     help="also export the base bars (cleaned, start-stamped, UTC)")
    run.add_argument("--fsync", action="store_true",
                     help="flush every exported file to disk before the export is swapped in "
                          "(safe against a machine crash, not only a failed run; slower)")
    run.add_argument("--no-export", action="store_true",
                     help="compute and print the summary only, write nothing")
    run.add_argument("--threads", type=int, metavar="N",
                     help="worker threads (default: the cores; one for a folder of small "
                          "files, under 256 KiB on average)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on a Dask cluster: a scheduler's address (tcp://HOST:8786), or "
                          "local:N for N local worker processes started for the run; --out "
                          "must be a folder every worker can reach (needs sessiondata[dask])")
    run.add_argument("--resume", action="store_true",
                     help="with --scheduler: continue an interrupted run of the same job into "
                          "the same --out, reusing the partitions it finished")
    run.add_argument("--start", metavar="DATE", help="first session to run (YYYY-MM-DD)")
    run.add_argument("--end", metavar="DATE", help="last session to run (YYYY-MM-DD)")
    run.add_argument("--tz", default="UTC", metavar="TZ",
                     help="time zone of naive timestamps (default UTC), e.g. Europe/Berlin")
    run.add_argument("--stamp", choices=("start", "end"), default="start",
                     help="a row's time is the bar's start (default) or its end; end-stamped "
                          "bars are shifted back by the base interval")
    run.add_argument("--ts-format", metavar="FMT",
                     help="'auto' (ISO 8601 or an integer epoch, the default), a strptime "
                          "format such as '%%d.%%m.%%Y %%H:%%M', or an epoch unit s|ms|us|ns")
    run.add_argument("--ts-column", metavar="NAME", help="the timestamp column")
    run.add_argument("--date-column", metavar="NAME",
                     help="a date column, joined with --time-column")
    run.add_argument("--time-column", metavar="NAME", help="a time-of-day column")
    run.add_argument("--symbol-column", metavar="NAME",
                     help="the symbol column (default: 'symbol' or 'ticker' when present)")
    run.add_argument("--symbol", metavar="NAME",
                     help="the symbol of a single file without a symbol column (default: the "
                          "file name's stem)")
    run.add_argument("--delimiter", metavar="D",
                     help="CSV delimiter: ',', ';', 'tab' or '|' (default: from the header)")
    run.add_argument("--columns", metavar="NAME,NAME,...",
                     type=lambda text: [c.strip() for c in text.split(",")],
                     help="names of the fields of each CSV row, in order (e.g. "
                          "date,time,open,high,low,close,volume,oi); they replace the header "
                          "line when there is one")
    run.add_argument("--no-header", dest="header", action="store_false", default=None,
                     help="CSV files have no header line (give --columns)")
    run.add_argument("--format", metavar="NAME",
                     help="vendor files read directly: lean (QuantConnect LEAN equity minute "
                          "zips; lean:trade, lean:mid, lean:bid, lean:ask choose trade or quote "
                          "bars), databento (DBN ohlcv-1m, .dbn or .dbn.zst; needs "
                          "sessiondata[databento]), binance (kline CSVs); default: CSV or "
                          "Parquet by the file suffix")
    run.add_argument("--on-bad", choices=("raise", "drop"), default="raise",
                     help="a malformed or impossible row stops the run (raise, the default) "
                          "or is dropped and counted (drop)")
    run.add_argument("--json-summary", metavar="FILE", help="also write the summary as JSON")
    run.add_argument("--worst", type=int, default=WORST_SESSIONS, metavar="N",
                     help=f"how many worst sessions to list (default {WORST_SESSIONS})")
    kinds = run.add_argument_group(
        "gap kinds", "why a bar is missing: no_trade, outage, late_start, early_end, halt "
                     "(see sessiondata.classify)")
    kinds.add_argument("--halts", metavar="FILE",
                       help="halts to call 'halt': a CSV of symbol,start,end (ISO 8601; naive "
                            "times in --tz; symbol * for all)")
    kinds.add_argument("--quiet-alpha", type=float, default=ClassifyOptions.quiet_alpha,
                       metavar="P", help="a run of missing bars is no_trade while its "
                       "probability under the symbol's activity is at least P (default "
                       f"{ClassifyOptions.quiet_alpha:g})")
    kinds.add_argument("--outage-share", type=float, default=ClassifyOptions.outage_share,
                       metavar="F", help="an outage slot is missing for at least this share of "
                       "the symbols that normally have bars there (default "
                       f"{ClassifyOptions.outage_share:g})")
    kinds.add_argument("--activity-bucket", default=ClassifyOptions.activity_bucket,
                       metavar="IV", help="time-of-day bucket of a symbol's activity "
                       f"(default {ClassifyOptions.activity_bucket})")
    _add_anomaly_options(run)
    run.add_argument("--report", action="store_true",
                     help="also write OUT/report.html (needs sessiondata[report])")
    run.add_argument("--strict", action="store_true",
                     help="fail (exit 2, nothing exported) when the data fit another time "
                          "zone, stamp or base interval clearly better than the options "
                          "given (without it: a loud warning in the summary and manifest)")
    _add_inspect(sub, common)

    val = sub.add_parser(
        "validate", parents=[common], help="check the export of a run",
        description="Read an export back (manifest, session documents, bar and gap datasets "
                    "in Parquet or CSV) and check it; exit 1 when any problem is found.")
    val.add_argument("dir", metavar="DIR", help="the --out folder of a run")
    rep = sub.add_parser(
        "report", parents=[common], help="draw an export as a self-contained HTML page",
        description="Write DIR/report.html from an export: a heatmap of symbols x sessions "
                    "by data quality, the gaps of the worst sessions coloured by kind, the "
                    "worst symbols and sessions, the run's summary. Opens offline (the "
                    "plotting library is inlined); needs sessiondata[report].")
    rep.add_argument("dir", metavar="DIR", help="the --out folder of a run")
    rep.add_argument("--output", metavar="FILE", help="where to write (default DIR/report.html)")
    _add_check_parsers(sub, common, run)
    return parser


def _version() -> str:
    try:
        from . import __version__
        return __version__
    except Exception:  # pragma: no cover - only when the package is broken
        return "?"


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        debug = getattr(args, "debug", debug)
        _from_store(args)
        if args.command == "run":
            with _one_line_warnings():
                return cmd_run(args)
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "inspect":
            return cmd_inspect(args)
        if args.command in ("check", "diff"):
            return cmd_check(args) if args.command == "check" else cmd_diff(args)
        build_parser().print_help()
        return EXIT_BAD_INPUT
    except CliError as exc:
        if debug:
            traceback.print_exc()
        _fail(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): nothing more to say.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except (ValueError, TypeError, OSError, ImportError, LookupError) as exc:
        if debug:
            traceback.print_exc()
        _fail(_one_line(exc))
        return EXIT_BAD_INPUT
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {_one_line(exc)} (run with --debug for "
              "the traceback)")
        return EXIT_INTERNAL


@contextlib.contextmanager
def _one_line_warnings():
    """The readers' warnings (a file skipped, a column unused) as one line each on stderr,
    ``sessiondata: warning: ...``, each said once (a folder is listed more than once)."""
    said: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if text not in said:
            said.add(text)
            print(f"{PROG}: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", readers.ReadWarning)
        warnings.showwarning = show
        yield


def _one_line(exc: BaseException) -> str:
    text = str(exc) if not isinstance(exc, KeyError) else str(exc.args[0] if exc.args else exc)
    text = " ".join(text.split())
    if isinstance(exc, ImportError) and not text:
        text = "a required package is missing"
    if isinstance(exc, OSError) and getattr(exc, "filename", None) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    return text or type(exc).__name__


def _fail(message: str) -> None:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Calendars and intervals
# --------------------------------------------------------------------------------------------


def parse_calendar(spec: str):
    """A Calendar from ``XNYS`` / ``CME_GLOBEX`` / ``24/7`` / ``always`` /
    ``weekly:TZ,HH:MM,HH:MM[,DAYS]``."""
    text = spec.strip()
    if text.lower() in ("24/7", "always", "24x7"):
        return Calendar.always()
    if text.upper() == "FX":
        return Calendar.fx()
    if text.lower().startswith("weekly:"):
        parts = [p.strip() for p in text[len("weekly:"):].split(",", 3)]
        if len(parts) < 3 or not all(parts[:3]):
            raise CliError(f"--calendar {spec!r}: expected weekly:TZ,HH:MM,HH:MM[,Mon-Fri], "
                           "e.g. weekly:Europe/Berlin,09:00,17:30")
        days = parts[3] if len(parts) > 3 and parts[3] else "Mon-Fri"
        try:
            return Calendar.weekly(parts[0], parts[1], parts[2], days)
        except (ValueError, TypeError) as exc:
            raise CliError(f"--calendar {spec!r}: {exc}") from None
    try:
        return Calendar.exchange(text)
    except ImportError:
        raise CliError(f"--calendar {text}: exchange calendars need the exchange_calendars "
                       "package: pip install 'sessiondata[calendars]' (or use '24/7' or "
                       "'weekly:TZ,HH:MM,HH:MM')") from None
    except ValueError as exc:
        raise CliError(f"--calendar: {exc}") from None


def parse_intervals(base: str, derived: str) -> tuple[str, list[str]]:
    try:
        base_iv = parse_interval(base)
        if base_iv.is_session:
            raise ValueError("the base interval cannot be '1d'; use an intraday interval")
        names = [] if derived.strip().lower() in ("", "none") else \
            [d.strip() for d in derived.split(",") if d.strip()]
        out = []
        for name in names:
            iv = parse_interval(name)
            check_derivable(base_iv, iv)
            if iv != base_iv and iv.name not in out:
                out.append(iv.name)
    except ValueError as exc:
        raise CliError(f"--base/--derived: {exc}") from None
    return base_iv.name, out


def _parse_date(text: str | None, option: str) -> np.datetime64 | None:
    if text is None:
        return None
    try:
        return np.datetime64(_dt.date.fromisoformat(text.strip()), "D")
    except ValueError:
        raise CliError(f"{option} {text!r} is not a date YYYY-MM-DD") from None


# --------------------------------------------------------------------------------------------
# The data of a run
# --------------------------------------------------------------------------------------------


def read_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options of ``run``'s arguments."""
    options = dict(stamp=args.stamp, tz=args.tz, ts_format=args.ts_format,
                   ts_column=args.ts_column, date_column=args.date_column,
                   time_column=args.time_column, symbol_column=args.symbol_column,
                   symbol=args.symbol, delimiter=args.delimiter)
    for name in ("format", "columns", "header"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    return options


class Progress:
    """Progress of a run on stderr, drawn by rich: files (or symbol batches) done, bars/s and
    the time left; only on a terminal, and only once the run has taken half a second."""

    def __init__(self, total: int, enabled: bool | None = None, stream: Any = None):
        self.stream = stream or sys.stderr
        self.enabled = (_isatty(self.stream) if enabled is None else enabled) and total > 1
        self.total = total
        self._bar: Any = None
        self._task: Any = None
        self._t0 = time.monotonic()

    def __call__(self, symbols: int, bars: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            if time.monotonic() - self._t0 < 0.5:
                return
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar,
                                       TextColumn, TimeRemainingColumn)

            self._bar = Bar(TextColumn("sessiondata run"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("parts  {task.fields[rate]}"), TimeRemainingColumn(),
                            console=Console(file=self.stream), transient=True)
            self._task = self._bar.add_task("run", total=self.total, rate="")
            self._bar.start()
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        self._bar.update(self._task, advance=1, rate=f"{bars / elapsed / 1e6:,.1f}M bars/s")

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    base, derived = parse_intervals(args.base, args.derived)
    start = _parse_date(args.start, "--start")
    end = _parse_date(args.end, "--end")
    if start is not None and end is not None and end < start:
        raise CliError(f"--end {end} is before --start {start}")
    if args.data is None:
        calendar = parse_calendar(args.calendar) if args.calendar else sample.sample_calendar()
        if base != "1m":
            raise CliError("the embedded sample holds 1m bars; use --base 1m (or give DATA)")
    else:
        if not args.calendar:
            raise CliError("--calendar is required with DATA (e.g. XNYS, CME_GLOBEX, FX, 24/7, "
                           "weekly:Europe/Berlin,09:00,17:30; 'sessiondata inspect DATA' "
                           "says which fits)")
        calendar = parse_calendar(args.calendar)
    out = None if args.no_export else args.out
    options = read_options(args)
    parts = 1
    # The folder is listed for the progress bar's total only when a bar can show (a quiet
    # or redirected run lists it once, in job.run).
    if not args.quiet and _isatty(sys.stderr) and args.data is not None \
            and not _is_store_url(args.data) and Path(args.data).is_dir() \
            and options.get("format") is None:
        with warnings.catch_warnings():     # job.run warns of each skipped file, once
            warnings.simplefilter("ignore", readers.ReadWarning)
            parts = max(1, len(readers.data_files(args.data, args.on_bad, [], [], options)))
    if args.resume and not (args.scheduler and out is not None):
        raise CliError("--resume continues an interrupted run on a Dask cluster: give "
                       "--scheduler (and an export, not --no-export)")
    client: Any = contextlib.nullcontext(None)
    if args.scheduler:
        from .distributed import cluster

        client = cluster(args.scheduler)
    progress = Progress(parts, enabled=False if args.quiet else None)
    check = Plausibility(calendar, base, options, args.strict)
    made: list[Summary] = []   # the one summary, made for the manifest and read again below

    def summarize(run: Any) -> dict[str, Any]:
        made.append(Summary(run, out))
        return made[-1].to_json(args.worst)

    try:
        with client as dask_client, warnings.catch_warnings():
            warnings.simplefilter("ignore", PlausibilityWarning)   # said below, loudly
            result = job.run(args.data, calendar, base=base, derived=derived, out=out,
                             fmt=args.bars, export_base=args.export_base, on_bad=args.on_bad,
                             start=start, end=end, threads=args.threads, read_options=options,
                             durable=args.fsync, classify=classify_options(args),
                             progress=progress,
                             summary=summarize,
                             client=dask_client, resume=args.resume, strict=args.strict,
                             plausibility=check, anomalies=anomaly_options(args),
                             filled_as_missing=args.filled_as_missing)
    except ValueError as exc:
        # The engine's run-level "no bars in the run" names no file: say which input.
        if args.data is None or not str(exc).startswith("no bars in the run"):
            raise
        raise CliError(f"{args.data}: {exc} (every row of the input was empty, dropped or "
                       "outside the sessions)") from exc
    finally:
        progress.finish()
    summary = made[-1] if made and made[-1].run is result else Summary(result, out)
    if args.json_summary:
        doc = summary.to_json(args.worst)
        doc["plausibility"] = check.to_json()
        write_json(args.json_summary, doc)
    if not args.quiet:
        print(summary.render(args.worst, PROG))
    _say_plausibility(check, args.quiet)
    if args.report:
        if out is None:
            raise CliError("--report draws the export: drop --no-export")
        from .report import write_report

        from . import storage

        # Drawn from the run itself (nothing of the export is read back); the page of an
        # export on a store is written here.
        where = (None if storage.is_remote(out)
                 else storage.resolve(out)[1] if storage.is_url(out) else out)
        path = write_report(where, None if where is not None else "report.html", run=result,
                            summary=summary.to_json(args.worst))
        if not args.quiet:
            print(f"wrote {path}")
    if _wants_check(args):
        return _check_and_report(args, result, args.check_format)
    return EXIT_OK


def _is_store_url(value: Any) -> bool:
    from . import storage

    return storage.is_url(value)


def _from_store(args: argparse.Namespace) -> None:
    """URLs of object stores (issue 24): ``--storage-option`` for the process; ``validate``,
    ``report``, ``check`` and ``diff`` of an export on a store read a local copy of the
    files its latest manifest lists, and ``--halts`` at a URL is read from a local copy."""
    import atexit
    import shutil
    import tempfile

    from . import storage

    storage.set_default_options(storage.parse_options(getattr(args, "storage_option", None)))
    names = {"validate": ["dir"], "report": ["dir"], "check": ["dir"],
             "diff": ["old", "new"]}.get(args.command, [])
    for name in names:
        value = getattr(args, name, None)
        if not isinstance(value, str) or not storage.is_url(value):
            continue
        if not storage.is_remote(value):
            setattr(args, name, storage.resolve(value)[1])
            continue
        tmp = tempfile.mkdtemp(prefix="sessiondata-store-")
        atexit.register(shutil.rmtree, tmp, True)
        storage.download_export(value, tmp)
        args.given = {**getattr(args, "given", {}), name: value}   # named in the output
        if args.command == "report" and not args.output:
            args.output = "report.html"    # beside us, not in the temporary copy
        setattr(args, name, tmp)
    halts = getattr(args, "halts", None)
    if isinstance(halts, str) and storage.is_remote(halts):
        one, _ = storage.entry(halts)
        if one is None:
            raise CliError(f"--halts {halts}: a prefix, not a file")
        fd, local = tempfile.mkstemp(prefix="sessiondata-halts-", suffix=one.name)
        atexit.register(os.unlink, local)
        with os.fdopen(fd, "wb") as f:
            f.write(one.read_bytes())
        args.halts = local


# -- anomalies (issue 22): the detectors' options of ``run`` -------------------------------------


def _add_anomaly_options(run: argparse.ArgumentParser) -> None:
    """``--anomalies``, ``--anomaly-threshold`` and ``--filled-as-missing``."""
    from .anomalies import KINDS as ANOMALY_KINDS

    group = run.add_argument_group(
        "anomalies", "bars that are there but not real: " + ", ".join(ANOMALY_KINDS)
        + " (see docs/anomalies.md)")
    group.add_argument("--anomalies", default="all", metavar="KINDS",
                       help="the kinds to look for, separated by commas; 'all' (the default) "
                            "or 'none' (the detectors off)")
    group.add_argument("--anomaly-threshold", action="append", default=[],
                       metavar="NAME=VALUE",
                       help="change one detector threshold (repeatable), e.g. "
                            "spike_sigmas=15; the names and defaults are "
                            "sessiondata.AnomalyParams' (docs/anomalies.md)")
    group.add_argument("--filled-as-missing", action="store_true",
                       help="score filled bars (O=H=L=C=previous close, zero volume: hidden "
                            "gaps) as missing in the base interval's completeness (default: "
                            "counted as present)")


def anomaly_options(args: argparse.Namespace) -> Any:
    """The detectors' ``AnomalyParams`` of ``run``'s arguments."""
    import dataclasses

    from .anomalies import AnomalyParams

    try:
        text = args.anomalies.strip()
        params = AnomalyParams() if text == "all" else AnomalyParams().replace(kinds=text)
        known = {f.name: f for f in dataclasses.fields(AnomalyParams)}
        changes: dict[str, Any] = {}
        for item in args.anomaly_threshold:
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or name not in known or name == "kinds":
                raise ValueError(f"--anomaly-threshold {item!r}: expected NAME=VALUE with NAME "
                                 f"one of {sorted(set(known) - {'kinds'})}")
            default = getattr(params, name)
            if isinstance(default, tuple):
                changes[name] = tuple(float(v) for v in value.split(","))
            elif isinstance(default, int):
                changes[name] = int(value)
            else:
                changes[name] = float(value)
        return params.replace(**changes) if changes else params
    except (ValueError, TypeError) as exc:
        raise CliError(f"anomalies: {exc}") from None


def classify_options(args: argparse.Namespace) -> ClassifyOptions:
    """The gap kinds' options of ``run``'s arguments."""
    try:
        halts = Halts.read(args.halts, tz=args.tz) if args.halts else None
        return ClassifyOptions(activity_bucket=args.activity_bucket,
                               quiet_alpha=args.quiet_alpha, outage_share=args.outage_share,
                               halts=halts)
    except (ValueError, TypeError) as exc:
        raise CliError(f"gap kinds: {exc}") from None


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    path = write_report(args.dir, args.output)
    if not args.quiet:
        print(f"wrote {path}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    name = getattr(args, "given", {}).get("dir", root)   # an export on a store: its URL
    problems = validate_export(root)
    if problems:
        print(f"FAIL {name}: {plural(len(problems), 'problem')}")
        for p in problems:
            print(f"  {p}")
        return EXIT_PROBLEMS
    if not args.quiet:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        print(f"OK   {name}: {plural(len(manifest.get('sessions', [])), 'session')}, "
              f"{plural(len(manifest.get('symbols', [])), 'symbol')}, "
              f"{manifest.get('format', 'parquet')} datasets")
    if "dir" in getattr(args, "given", {}):
        _say_uncommitted(str(name), args.quiet)
    return EXIT_OK


def _say_uncommitted(url: str, quiet: bool) -> None:
    """The runs into an export on a store that never committed (failed or killed): their
    files, for cleanup (the next run into it removes them)."""
    from . import storage

    fs, root = storage.resolve(url)
    for run, files in sorted(storage.uncommitted(fs, root).items()):
        if not quiet:
            print(f"note: {url.rstrip('/')}/{storage.RUNS}/{run}/ holds {len(files)} "
                  "file(s) of a run that did not commit (removed by the next run into "
                  f"{url}, or continued by --resume)")



# --------------------------------------------------------------------------------------------
# Plausibility (issue 19): said after the summary
# --------------------------------------------------------------------------------------------


def _say_plausibility(check: Plausibility, quiet: bool) -> None:
    message = check.message()
    if message is None:
        return
    line = f"WARNING: implausible options: {message}"
    rule = "!" * min(len(line), 100)
    if not quiet:
        print(f"\n{rule}\n{line}\n{rule}")
    print(f"{PROG}: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# inspect (issue 19): what a file is, and the run command for it
# --------------------------------------------------------------------------------------------


def _add_inspect(sub: Any, common: argparse.ArgumentParser) -> None:
    ins = sub.add_parser(
        "inspect", parents=[common], help="say what a data file or folder is, and the run "
                                          "command for it",
        description="Read DATA whole and say what it is: format, columns, base interval, "
                    "time zone and stamp, the hours each weekday covers, the calendars that "
                    "fit (ranked), volume; and print the 'sessiondata run' command to use.")
    ins.add_argument("data", metavar="DATA", help="a data file or a folder of them")
    ins.add_argument("--json", action="store_true", help="print the findings as JSON")
    ins.add_argument("--format", metavar="NAME",
                     help="the vendor format, when it cannot be told (lean, databento, "
                          "binance)")
    ins.add_argument("--calendar", metavar="CAL",
                     help="also score this calendar (any --calendar form of run)")


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspection import inspect

    extra = [parse_calendar(args.calendar)] if args.calendar else []
    found = inspect(args.data, format=args.format, calendars=extra)
    if args.json:
        print(json.dumps(found.to_json(), indent=2))
    elif not args.quiet:
        print(found.render())
    return EXIT_OK if found.command else EXIT_BAD_INPUT


# --------------------------------------------------------------------------------------------
# check and diff: quality gates and two deliveries compared (sessiondata.check, .diff)
# --------------------------------------------------------------------------------------------

_RULE_OPTIONS = ("fail-under", "fail-over", "warn-under", "warn-over", "fail", "warn")


def _add_rule_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "quality rules", "METRIC[@SCOPE][:INTERVAL]=VALUE, comma-separated (e.g. "
        "completeness=99.5,data_quality@symbol=99.9,gaps_over_30:5m=0); metrics: "
        "completeness, data_quality, lost, outage, late_start, early_end, no_trade, halt, "
        "gaps, missing, gaps_<kind>, gaps_over_N; scopes: cell (default), symbol, session, "
        "totals; interval: the base interval by default, * for all. Added to the rules of "
        "--rules FILE or of [tool.sessiondata.check] in the nearest pyproject.toml "
        "(docs/check.md)")
    g.add_argument("--rules", metavar="FILE",
                   help="a TOML file of rules (instead of pyproject.toml's)")
    for name in _RULE_OPTIONS:
        bound = {"fail-under": "a minimum", "fail-over": "a maximum", "warn-under":
                 "a minimum", "warn-over": "a maximum"}.get(name, "the metric's own bound")
        level = "error (exit 1)" if name.startswith("fail") else "warning"
        g.add_argument(f"--{name}", action="append", metavar="SPEC",
                       dest=f"rule_{name.replace('-', '_')}",
                       help=f"rules with {bound}, failing as {level}")


def _add_check_parsers(sub: Any, common: argparse.ArgumentParser,
                       run: argparse.ArgumentParser) -> None:
    from .check import FORMATS

    chk = sub.add_parser(
        "check", parents=[common], help="gate on data quality: rules on every cell of an export",
        description="Evaluate quality rules on every cell (symbol x session x interval, or "
                    "the rule's scope) of an export; exit 0 when no error rule fails, 1 when "
                    "one does, 2 on bad input.")
    chk.add_argument("dir", metavar="OUT", help="the --out folder of a run")
    chk.add_argument("--format", choices=FORMATS, default="table",
                     help="table (default; failing cells, worst first), json (JSON Lines, "
                          "one failing finding per line), junit (JUnit XML), github "
                          "(annotations; a markdown table appended to $GITHUB_STEP_SUMMARY)")
    chk.add_argument("--junit", metavar="FILE", help="also write the JUnit XML to FILE")
    chk.add_argument("--all", action="store_true",
                     help="json: every evaluation, passing ones too")
    chk.add_argument("--limit", type=int, metavar="N",
                     help="failing cells shown (table: 30, github: 10 annotations)")
    _add_rule_options(chk)
    dif = sub.add_parser(
        "diff", parents=[common], help="what changed between two deliveries of a history",
        description="Compare two exports (or two data folders, run here on --calendar with "
                    "their base bars): per symbol x session x interval the bars added, "
                    "removed and changed, gaps opened and closed, quality before and after; "
                    "exit 1 when history changed beyond the tolerance.")
    dif.add_argument("old", metavar="OLD", help="an export folder, or a data file or folder")
    dif.add_argument("new", metavar="NEW", help="the same, delivered again")
    dif.add_argument("--out", metavar="DIFF",
                     help="write DIFF/changes/ (one row per changed bar), DIFF/cells.parquet "
                          "and DIFF/summary.json")
    dif.add_argument("--tolerance", type=float, default=0.0, metavar="ABS",
                     help="a value changed when |new - old| > ABS + RTOL * |old| (default 0)")
    dif.add_argument("--rtol", type=float, default=0.0, metavar="RTOL",
                     help="relative tolerance (default 0)")
    dif.add_argument("--format", choices=("table", "json"), default="table",
                     help="table (default) or json (the summary)")
    dif.add_argument("--limit", type=int, default=30, metavar="N",
                     help="changed cells shown (default 30)")
    data = dif.add_argument_group("data folders", "when OLD and NEW are data, not exports")
    data.add_argument("--calendar", metavar="CAL", help="as for run; required with data")
    data.add_argument("--base", default="1m", metavar="IV")
    data.add_argument("--derived", default="5m,15m,1h", metavar="IV,IV")
    data.add_argument("--tz", default="UTC", metavar="TZ")
    data.add_argument("--stamp", choices=("start", "end"), default="start")
    data.add_argument("--ts-format", metavar="FMT")
    data.add_argument("--on-bad", choices=("raise", "drop"), default="raise")
    data.add_argument("--symbol", metavar="NAME",
                      help="the symbol of a single file without a symbol column (default: "
                           "the file name's stem, which differs between two deliveries)")
    g = run.add_argument_group("quality gate", "check the run's result against rules (see "
                                               "'sessiondata check --help')")
    g.add_argument("--check", action="store_true",
                   help="after the run, evaluate the rules (of the options below, --rules "
                        "or pyproject.toml); exit 1 when an error rule fails")
    g.add_argument("--check-format", choices=FORMATS, default="table",
                   help="the check's output format (default table)")
    _add_rule_options(run)


def _rule_specs(args: argparse.Namespace) -> dict[str, list[str]]:
    return {name: getattr(args, f"rule_{name.replace('-', '_')}", None) or []
            for name in _RULE_OPTIONS}


def _wants_check(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "check", False) or getattr(args, "rules", None)
                or any(_rule_specs(args).values()))


def _check_and_report(args: argparse.Namespace, target: Any, fmt: str,
                      junit: str | None = None) -> int:
    """Evaluate the rules on ``target`` (a RunResult or an export) and print the findings."""
    from .check import EXIT_FAIL, EXIT_PASS, check, gather_rules, render, write_step_summary

    rules = gather_rules(rules_file=getattr(args, "rules", None), specs=_rule_specs(args))
    findings = check(target, rules)
    if not findings.source or findings.source == "the run":
        findings.source = str(getattr(args, "out", "") or "the run")
    text = render(findings, fmt, limit=getattr(args, "limit", None),
                  everything=getattr(args, "all", False))
    if text and not (args.quiet and fmt == "table"):
        print(text, end="" if text.endswith("\n") else "\n")
    if fmt == "github":
        write_step_summary(findings)
    if junit:
        _write_text(junit, render(findings, "junit"))
    return EXIT_FAIL if findings.errors else EXIT_PASS


def _write_text(path: str, text: str) -> None:
    from .export import write_atomic

    write_atomic(path, text)


def cmd_check(args: argparse.Namespace) -> int:
    return _check_and_report(args, args.dir, args.format, args.junit)


def cmd_diff(args: argparse.Namespace) -> int:
    import tempfile

    from .diff import diff
    from .export import is_export

    with tempfile.TemporaryDirectory(prefix="sessiondata-diff-") as tmp:
        sides = []
        for name, path in (("old", args.old), ("new", args.new)):
            if is_export(path):
                sides.append(path)
                continue
            if not Path(path).exists():
                raise CliError(f"{name} {path}: no such file or folder")
            if not args.calendar:
                raise CliError(f"{path} is not an export: give --calendar (and the options "
                               "of run that the data needs) to run both on the same calendar")
            base, derived = parse_intervals(args.base, args.derived)
            options = dict(stamp=args.stamp, tz=args.tz, ts_format=args.ts_format,
                           symbol=args.symbol)
            out = Path(tmp) / name
            job.run(path, parse_calendar(args.calendar), base=base, derived=derived, out=out,
                    export_base=True, on_bad=args.on_bad, read_options=options)
            sides.append(str(out))
        result = diff(sides[0], sides[1], tolerance=args.tolerance, rtol=args.rtol)
    given = getattr(args, "given", {})
    result.summary["old"] = given.get("old", args.old)
    result.summary["new"] = given.get("new", args.new)
    if args.out:
        result.write(args.out)
    if args.format == "json":
        print(json.dumps(result.summary))
    elif not args.quiet:
        print(result.render(args.limit))
        if args.out:
            print(f"wrote {args.out}")
    return EXIT_PROBLEMS if result.changed else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
