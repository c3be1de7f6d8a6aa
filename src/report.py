"""The report: an export drawn as one self-contained HTML page (``sessiondata report DIR``).

The page opens offline: plotly's JavaScript is inlined once, every figure is plotly JSON in
the page, nothing is fetched.  Plotly (the ``[report]`` extra) because its heatmap renders
symbols x sessions as one image with hover on every cell, dropdowns switch the coloured
score and the session of the timeline without a server, and one ``plotly.min.js`` serves
every figure (bokeh's inline resources would work too, at about the same size).

At the end of ``sessiondata run --report`` it is drawn from the run itself (the results
model's columns, the gap and anomaly tables the export writes, the summary): nothing is read
back.  ``sessiondata report DIR`` reads the export through the export module's readers: the
manifest, the gaps with their kinds and the anomalies from their datasets, and from the session
documents only what the export holds nowhere else (each symbol and session's expected,
present, coverage and lost bars, and the sessions' windows).  Both draw the same page, byte
for byte.  What it shows:

- the run's summary (totals per interval, the gap kinds, the two scores);
- two heatmaps of symbols x sessions side by side, completeness and data quality, so a
  symbol at 34% completeness whose missing bars are a quiet market shows red on the left and
  green on the right; the numbers on hover: completeness, data quality, missing bars and
  why, anomalies;
- the gaps and the anomalies (issue 22) of the worst sessions on a timeline of the session's
  local time from its open to its close, gaps coloured by kind, anomalies as markers by kind
  (a dropdown picks the session); at most ``timeline_sessions`` sessions and, in each, the
  ``timeline_symbols`` symbols missing most (or with anomalies);
- the worst symbols and sessions as tables, in the CLI summary's order (completeness, then
  bars missing, then name).

Data quality in the report (the heatmap, the tables): ``100 * (expected - lost - anomalous) /
expected``, where ``lost`` are the slots lost to outage, late_start and early_end (as in the
summary) and ``anomalous`` the bars inside an anomaly range of the base interval (bars that
are there but not real: filled, stale, spike, ...; at most the bars present).  The summary's
and the documents' ``data_quality`` count ``lost`` only; the report says which it shows.
"""

from __future__ import annotations

import datetime as _dt
import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from .documents import rounded
from .export import (
    anomalies_table,
    gaps_table,
    read_dataset,
    read_manifest,
    read_session_docs,
    write_atomic,
)
from .results import ANOMALY_KINDS, KINDS, RunResult, data_quality, local_time, quality_score

KIND_COLOURS = {"no_trade": "#9aa5b1", "outage": "#d62728", "late_start": "#ff7f0e",
                "early_end": "#9467bd", "halt": "#1f77b4"}
ANOMALY_COLOURS = {"filled": "#8c564b", "stale": "#e377c2", "spike": "#000000",
                   "jump": "#17becf", "volume_shift": "#bcbd22", "clock_shift": "#7f7f7f",
                   "duplicate_session": "#2ca02c"}
TIMELINE_SESSIONS = 25
TIMELINE_SYMBOLS = 40
WORST_ROWS = 15


def _plotly() -> Any:
    try:
        import plotly
        import plotly.graph_objects  # noqa: F401
        import plotly.offline  # noqa: F401
    except ImportError:
        raise ImportError("the report needs plotly: pip install 'sessiondata[report]'") from None
    return plotly


def write_report(folder: str | os.PathLike | None = None,
                 output: str | os.PathLike | None = None, *,
                 timeline_sessions: int = TIMELINE_SESSIONS,
                 timeline_symbols: int = TIMELINE_SYMBOLS,
                 run: RunResult | None = None, summary: dict[str, Any] | None = None) -> Path:
    """Write the report of the export in ``folder`` (default ``folder/report.html``).

    Parameters
    ----------
    folder : path, optional
        An export (the ``--out`` folder of a run); only where the page goes when ``run``
        is given.
    output : path, optional
        Where to write the page (required when ``folder`` is not given).
    timeline_sessions, timeline_symbols : int
        How many of the worst sessions get a timeline, and how many symbols each shows.
    run : RunResult, optional
        The run itself, at the end of ``sessiondata run --report``: the page is drawn from
        its columns and nothing of the export is read back (the same page).
    summary : dict, optional
        With ``run``: the summary the manifest holds (``Summary.to_json``).

    Returns
    -------
    Path
        The page written.
    """
    if output is not None:
        path = Path(output)
    elif folder is not None:
        path = Path(folder) / "report.html"
    else:
        raise ValueError("write_report needs an export folder or an output path")
    export = None
    if run is None:
        if folder is None:
            raise ValueError("write_report needs an export folder or a run")
        export = Path(folder)
        manifest = read_manifest(export)
        if not manifest:
            raise ValueError(f"{folder}: not a sessiondata export (no manifest.json)")
    _plotly()   # before any work: the extra is missing
    if export is not None:
        grid, gaps, anomalies = _Grid.of_export(export, manifest)
    else:
        assert run is not None
        manifest = run_manifest(run, summary)
        grid, gaps, anomalies = _Grid.of_run(run)
    page = render_page(grid, manifest, gaps, anomalies, timeline_sessions, timeline_symbols)
    write_atomic(path, page)
    os.chmod(path, 0o644)  # a page to open and share, not a private temporary file
    return path


def run_manifest(run: RunResult, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the report reads of an export's manifest, from the run that made it."""
    manifest: dict[str, Any] = {"calendar": run.calendar.name, "base_interval": run.base,
                                "sessions": [str(s) for s in run.sessions],
                                "symbols": list(run.symbols), "summary": summary or {}}
    if run.anomalies is not None:
        manifest["anomalies"] = {"interval": run.anomalies.interval,
                                 "kinds": run.anomalies.counts()}
    return manifest


# -- the data -------------------------------------------------------------------------------


class _Grid:
    """Per symbol x session of the base interval: expected, present, lost, missing per kind,
    anomalies; made from a run's columns (:meth:`of_run`) or read from an export
    (:meth:`of_export`), the same either way."""

    def __init__(self, manifest: dict[str, Any]):
        self.symbols = list(manifest.get("symbols", []))
        self.sessions = list(manifest.get("sessions", []))
        self.base = manifest.get("base_interval", "1m")
        n_s, n_k = len(self.symbols), len(self.sessions)
        self.member = np.zeros((n_s, n_k), bool)
        self.expected = np.zeros((n_s, n_k), np.int64)
        self.present = np.zeros((n_s, n_k), np.int64)
        self.covered = np.zeros((n_s, n_k))
        self.lost = np.zeros((n_s, n_k), np.int64)
        self.kinds = np.zeros((len(KINDS), n_s, n_k), np.int64)
        # anomalies (issue 22): per cell how many, and the bars inside them
        self.anomalies = np.zeros((n_s, n_k), np.int64)
        self.anomalous = np.zeros((n_s, n_k), np.int64)
        self.has_anomalies = "anomalies" in manifest
        # the anomalies are the documents' on the base interval only (the detectors' interval)
        self.anomaly_interval = (manifest.get("anomalies") or {}).get("interval", self.base)
        self.opens: list[str | None] = [None] * n_k    # the session's open, local time
        self.closes: list[str | None] = [None] * n_k
        self.timezone = "UTC"

    @classmethod
    def of_run(cls, run: RunResult) -> tuple["_Grid", Any, Any]:
        """The grid of a run, from its columns (as its session documents say it), with its
        gaps and anomalies of the base interval (as the export's datasets hold them)."""
        grid = cls(run_manifest(run))
        t = run.intervals[grid.base]
        n_s = len(run.symbols)
        has = np.array([t.has[s] and grid.base in run.intervals_of(s) for s in range(n_s)],
                       bool).reshape(n_s, 1)
        grid.member = run.member & has
        scored = grid.member & t.scored.reshape(n_s, 1)
        grid.expected = np.where(scored, t.expected, 0)
        grid.present = np.where(scored, t.present, 0)
        # the documents' coverage, rounded as they write it
        grid.covered = np.where(scored, np.reshape(rounded(t.covered.ravel(), 6),
                                                   t.covered.shape), 0.0)
        if t.gap_kind is not None and t.lost is not None:
            grid.lost = np.where(scored, t.lost, 0)
        tz = run.calendar.tz
        w = run.windows
        if w.n_sessions:
            grid.timezone = str(getattr(tz, "key", tz))
        for k in range(w.n_sessions):
            sl = w.session_slice(k)
            opens, closes = w.open_ns[sl], w.close_ns[sl]
            if len(opens):
                grid.opens[k] = _minute(local_time(int(opens[0]), tz).isoformat())
                grid.closes[k] = _minute(local_time(int(closes[-1]), tz).isoformat())
        gaps = gaps_table(run, grid.base)
        anomalies = None
        if run.anomalies is not None:
            anomalies = anomalies_table(run)
            if run.anomalies.interval != grid.base:   # none of the base interval's
                anomalies = anomalies.slice(0, 0)
        grid.count(gaps, anomalies, classified=t.gap_kind is not None)
        return grid, gaps, anomalies

    @classmethod
    def of_export(cls, folder: Path, manifest: dict[str, Any]) -> tuple["_Grid", Any, Any]:
        """The grid of an export, with its gaps and anomalies of the base interval: the
        kinds and the anomalies from those datasets, the scores and the windows from the
        session documents (the one place the export holds them)."""
        grid = cls(manifest)
        row = {s: i for i, s in enumerate(grid.symbols)}
        classified = False   # the gaps have kinds (a run's always have)
        for k, doc in enumerate(read_session_docs(folder)):
            grid.timezone = doc.get("timezone", grid.timezone)
            windows = doc.get("windows") or []
            if windows:
                grid.opens[k] = _minute(str(windows[0]["open"]))
                grid.closes[k] = _minute(str(windows[-1]["close"]))
            for symbol, entry in doc.get("symbols", {}).items():
                iv = entry.get("intervals", {}).get(grid.base)
                if iv is None or symbol not in row:
                    continue
                s = row[symbol]
                grid.member[s, k] = True
                q = iv.get("quality")
                if q is not None:
                    grid.expected[s, k] = q["expected"]
                    grid.present[s, k] = q["present"]
                    grid.covered[s, k] = q["coverage"]
                    grid.lost[s, k] = q.get("lost", 0)
                classified = classified or "kinds" in iv.get("gaps", {})
        gaps = read_dataset(folder, "gaps", grid.base)
        anomalies = (read_dataset(folder, "anomalies", grid.base) if grid.has_anomalies
                     else None)
        grid.count(gaps, anomalies, classified=classified)
        return grid, gaps, anomalies

    def count(self, gaps: Any, anomalies: Any, *, classified: bool = True) -> None:
        """Missing bars per kind (when the gaps are ``classified``), and the anomalies and
        their bars, per cell of a member, from the gap and anomaly tables of the base
        interval (``export.gaps_table``, ``export.anomalies_table``)."""
        shape = self.member.shape
        size = shape[0] * shape[1]
        if classified:
            cell = self._cells(gaps)
            kind = _codes(gaps.column("kind"), KINDS)
            bars = gaps.column("bar_count").to_numpy()
            ok = cell >= 0
            for i in range(len(KINDS)):
                m = ok & (kind == i)
                self.kinds[i] = np.bincount(cell[m], weights=bars[m], minlength=size
                                            ).astype(np.int64).reshape(shape)
            self.kinds *= self.member
        if anomalies is not None and self.anomaly_interval == self.base:
            cell = self._cells(anomalies)
            bars = anomalies.column("bar_count").to_numpy()
            ok = cell >= 0
            self.anomalies = np.bincount(cell[ok], minlength=size).reshape(shape) * self.member
            self.anomalous = (np.bincount(cell[ok], weights=bars[ok], minlength=size)
                              .astype(np.int64).reshape(shape) * self.member)
        # at most the bars present: an anomaly's bars are bars that are there
        self.anomalous = np.minimum(self.anomalous, self.present)

    def _cells(self, table: Any) -> np.ndarray:
        """Cell ``symbol * sessions + session`` of each row (-1 for a symbol or session the
        manifest does not list)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        symbol = table.column("symbol")
        if pa.types.is_dictionary(symbol.type):
            symbol = symbol.cast(pa.string())
        s = pc.index_in(symbol, value_set=pa.array(self.symbols, pa.string()))
        labels = pa.array(np.array(self.sessions, "datetime64[D]"), pa.date32())
        k = pc.index_in(table.column("session"), value_set=labels)
        s_np = s.fill_null(-1).to_numpy()
        k_np = k.fill_null(-1).to_numpy()
        return np.where((s_np >= 0) & (k_np >= 0), s_np * len(self.sessions) + k_np, -1)

    @staticmethod
    def score(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return quality_score(num, den)

    def completeness(self, axis: int | None = None) -> np.ndarray:
        if axis is None:
            return self.score(self.covered, self.expected)
        return self.score(self.covered.sum(axis=axis), self.expected.sum(axis=axis))

    @property
    def bad(self) -> np.ndarray:
        """Per cell the slots that count against data quality here: lost, and the bars in
        an anomaly (see the module's docstring)."""
        return np.minimum(self.lost + self.anomalous, self.expected)

    def data_quality(self, axis: int | None = None) -> np.ndarray:
        if axis is None:
            return data_quality(self.expected, self.bad)
        e = self.expected.sum(axis=axis)
        return data_quality(e, self.bad.sum(axis=axis))


# -- the page -------------------------------------------------------------------------------


def render_report(folder: Path, manifest: dict[str, Any],
                  timeline_sessions: int = TIMELINE_SESSIONS,
                  timeline_symbols: int = TIMELINE_SYMBOLS) -> str:
    """The report page of an export, as HTML text."""
    grid, gaps, anomalies = _Grid.of_export(Path(folder), manifest)
    return render_page(grid, manifest, gaps, anomalies, timeline_sessions, timeline_symbols)


def render_page(grid: _Grid, manifest: dict[str, Any], gaps: Any, anomalies: Any,
                timeline_sessions: int = TIMELINE_SESSIONS,
                timeline_symbols: int = TIMELINE_SYMBOLS) -> str:
    """The report page of a grid, its manifest (what :func:`run_manifest` holds) and the gap
    and anomaly tables of its base interval, as HTML text."""
    plotly = _plotly()
    summary = manifest.get("summary") or {}
    figures = [("Completeness and data quality by symbol and session", _heatmap(grid))]
    timeline = _timeline(grid, gaps, timeline_sessions, timeline_symbols, anomalies)
    if timeline is not None:
        figures.append(("Gaps and anomalies of the worst sessions, by kind", timeline))
    config = {"displaylogo": False, "responsive": True}
    divs = []
    for i, (title, fig) in enumerate(figures):
        body = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{i}",
                           config=config)
        divs.append(f"<h2>{html.escape(title)}</h2>\n{body}")
    title = f"sessiondata report: {manifest.get('calendar', '')}"
    js = plotly.offline.get_plotlyjs()
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{js}</script>', "</head>", "<body>",
        f"<h1>{html.escape(title)}</h1>",
        _summary_html(manifest, summary, grid),
        *divs,
        "<h2>Worst sessions</h2>", _worst_sessions_html(grid, summary),
        "<h2>Worst symbols</h2>", _worst_symbols_html(grid),
        "<p class=note>Kinds: <b>no_trade</b> a quiet market (consistent with the symbol's "
        "activity at that time of day), <b>outage</b> lost data (missing across most symbols, "
        "or too long to be quiet), <b>late_start</b>/<b>early_end</b> a symbol's data begins "
        "after the open or stops before the close, <b>halt</b> a halt you supplied. "
        "Completeness counts every missing bar; data quality only the bars lost to outage, "
        "late_start and early_end"
        + (", and here the bars inside an anomaly (bars that are there but not real: "
           "filled, stale, spike, jump, volume_shift, clock_shift, duplicate_session)"
           if grid.has_anomalies else "") + ".</p>",
        "</body>", "</html>",
    ]
    return "\n".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.notes { text-align: left; }
.note { color: #555; max-width: 60em; }
"""


def _pct(x: float) -> str:
    return f"{x:.2f}%"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td{" class=notes" if i == len(r) - 1 and headers[-1] == "notes" else ""}>'
        f"{html.escape(str(c))}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_html(manifest: dict[str, Any], summary: dict[str, Any], grid: _Grid) -> str:
    sessions = grid.sessions
    lines = [f"<p>{html.escape(str(summary.get('dataset', '')))}: "
             f"{len(grid.symbols):,} symbols, {len(sessions):,} sessions"
             + (f" ({sessions[0]} .. {sessions[-1]})" if sessions else "")
             + f", calendar {html.escape(str(manifest.get('calendar', '')))}, base "
             f"{html.escape(grid.base)}.</p>"]
    e = int(grid.expected.sum())
    lost = int(grid.lost.sum())
    bad = int(grid.bad.sum())
    missing = int((grid.expected - grid.present).sum())
    anomalous = (f" and {int(grid.anomalous.sum()):,} bars in "
                 f"{int(grid.anomalies.sum()):,} anomalies" if grid.has_anomalies else "")
    lines.append(f"<p><b>Completeness {_pct(_scalar(grid.covered.sum(), e))}</b> "
                 f"({missing:,} of {e:,} expected bars missing); <b>data quality "
                 f"{_pct(_scalar(e - bad, e))}</b> ({lost:,} bars lost to outage, late_start "
                 f"or early_end{anomalous}).</p>")
    totals = summary.get("totals") or {}
    if totals:
        rows = [[iv, f"{t['bars']:,}", f"{t['expected']:,}", f"{t['gaps']:,}",
                 f"{t['missing']:,}", _pct(t["quality"]),
                 _pct(t["data_quality"]) if "data_quality" in t else "-"]
                for iv, t in totals.items()]
        lines.append(_table(["interval", "bars", "expected", "gaps", "missing",
                             "completeness", "data quality"], rows))
    kinds = grid.kinds.sum(axis=(1, 2))
    base_kinds = (totals.get(grid.base) or {}).get("kinds") or {}
    rows = [[k, f"{base_kinds.get(k, {}).get('gaps', 0):,}", f"{int(kinds[i]):,}"]
            for i, k in enumerate(KINDS)]
    lines.append(f"<p>Why bars are missing ({html.escape(grid.base)}):</p>")
    lines.append(_table(["kind", "gaps", "missing bars"], rows))
    found = (manifest.get("anomalies") or {}).get("kinds")
    if isinstance(found, dict):
        lines.append(f"<p>Bars that are there but not real ({html.escape(grid.base)}): "
                     "anomalies per kind</p>")
        lines.append(_table(["kind", "anomalies", "sessions", "bars"],
                            [[k, f"{c.get('count', 0):,}", f"{c.get('sessions', 0):,}",
                              f"{c.get('bars', 0):,}"] for k, c in found.items()]))
    return "\n".join(lines)


def _scalar(num: float, den: float) -> float:
    return float(quality_score(float(num), float(den)))


def _heatmap(grid: _Grid) -> Any:
    """Completeness (left) and data quality (right) side by side: both at once, each on its
    own scale."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_s, n_k = grid.member.shape
    dq = np.where(grid.member, grid.data_quality(), np.nan)
    comp = np.where(grid.member, grid.completeness(), np.nan)
    missing = grid.expected - grid.present
    # Hover: both scores, the missing bars and why, the anomalies.
    # float32: the page carries every cell (plotly writes arrays as base64 typed arrays).
    custom = np.stack([comp, dq, missing, grid.kinds[KINDS.index("no_trade")], grid.lost,
                       grid.kinds[KINDS.index("halt")], grid.anomalies, grid.anomalous],
                      axis=-1)
    custom = np.where(grid.member[..., None], custom, np.nan).astype(np.float32)
    # Each score's scale starts at its lowest cell, and at 99% at most: a cell that lost a
    # little data still stands out from the complete ones.
    low_dq = min(99.0, float(np.floor(np.nanmin(np.r_[dq.ravel(), [100.0]]))))
    low_comp = min(99.0, float(np.floor(np.nanmin(np.r_[comp.ravel(), [100.0]]))))
    hover = ("%{y} %{x}<br>completeness %{customdata[0]:.2f}%<br>data quality "
             "%{customdata[1]:.2f}%<br>missing %{customdata[2]}: no_trade %{customdata[3]}, "
             "lost %{customdata[4]}, halt %{customdata[5]}"
             + ("<br>anomalies %{customdata[6]} (%{customdata[7]} bars)"
                if grid.has_anomalies else "") + "<extra></extra>")
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=("completeness",
                                        "data quality" + (" (lost and anomalous bars)"
                                                          if grid.has_anomalies else "")))
    for col, (z, low, x) in enumerate(((comp, low_comp, 0.46), (dq, low_dq, 1.0)), start=1):
        fig.add_trace(go.Heatmap(
            z=z.astype(np.float32), x=grid.sessions, y=grid.symbols, customdata=custom,
            hovertemplate=hover, colorscale="RdYlGn", zmin=low, zmax=100.0,
            colorbar={"title": {"text": "%"}, "x": x, "len": 0.9}, xgap=0, ygap=0),
            row=1, col=col)
    fig.update_layout(
        height=int(min(2400, max(380, 160 + 10 * n_s))),
        margin={"l": 90, "r": 30, "t": 60, "b": 60})
    fig.update_xaxes(type="category", title_text="session")
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_yaxes(title_text="symbol", row=1, col=1)
    return fig


def _worst_sessions(grid: _Grid, n: int) -> list[int]:
    """Sessions in the CLI summary's order (``Summary.worst``): completeness, then bars
    missing (more first), then the label; only those missing any or below 100%."""
    comp = grid.completeness(0)
    missing = (grid.expected - grid.present).sum(axis=0)
    order = sorted(range(len(comp)), key=lambda k: (comp[k], -missing[k], grid.sessions[k]))
    return [k for k in order if missing[k] > 0 or comp[k] < 100.0][:max(n, 0)]


def _timeline(grid: _Grid, gaps: Any, n_sessions: int, n_symbols: int,
              anomalies: Any = None) -> Any:
    import plotly.graph_objects as go
    from zoneinfo import ZoneInfo

    worst = _worst_sessions(grid, n_sessions)
    # sessions with anomalies and nothing missing come after the worst, while room is left
    with_anomalies = [int(k) for k in np.flatnonzero(grid.anomalies.sum(axis=0) > 0)
                      if int(k) not in worst]
    worst = worst + with_anomalies[:max(0, n_sessions - len(worst))]
    have_anomalies = anomalies is not None and anomalies.num_rows > 0
    if not worst or (gaps.num_rows == 0 and not have_anomalies):
        return None
    tz = ZoneInfo(grid.timezone)
    import pyarrow as pa
    import pyarrow.compute as pc

    # Only the gaps of the sessions drawn, filtered in Arrow before anything is converted.
    chosen = pa.array(np.array([grid.sessions[k] for k in worst], "datetime64[D]"),
                      pa.date32())

    def columns(table: Any) -> tuple[np.ndarray, ...]:
        table = table.filter(pc.is_in(table.column("session"), value_set=chosen))
        return (np.array([str(d) for d in table.column("session").to_pylist()]),
                np.array(table.column("symbol").to_pylist(), object),
                np.array([str(k) for k in table.column("kind").to_pylist()], object),
                table.column("start").cast("int64").to_numpy(),
                table.column("end").cast("int64").to_numpy())

    labels, symbols, kinds, start, end = columns(gaps)
    if have_anomalies:
        a_labels, a_symbols, a_kinds, a_start, a_end = columns(anomalies)
    traces: list[Any] = []
    owner: list[int] = []
    titles = []
    ranges = []
    for j, k in enumerate(worst):
        label = grid.sessions[k]
        missing = grid.expected[:, k] - grid.present[:, k]
        # symbols missing most, then those with anomalies
        rank = np.lexsort((np.arange(len(missing)), -grid.anomalies[:, k], -missing))
        shown = [grid.symbols[s] for s in rank[:n_symbols]
                 if missing[s] > 0 or grid.anomalies[s, k] > 0]
        keep = (labels == label) & np.isin(symbols, shown)
        n_bad = int(((missing > 0) | (grid.anomalies[:, k] > 0)).sum())
        titles.append(f"{label}: {int(grid.lost[:, k].sum()):,} bars lost, "
                      f"{int(missing.sum()):,} missing"
                      + (f", {int(grid.anomalies[:, k].sum()):,} anomalies"
                         if grid.has_anomalies else "")
                      + (f" (the {len(shown)} symbols missing most)"
                         if len(shown) < n_bad else ""))
        # the axis runs from the session's open to its close (not from its first gap)
        ranges.append([grid.opens[k], grid.closes[k]] if grid.opens[k] else None)
        for kind in KINDS:
            m = keep & (kinds == kind)
            if not m.any():
                continue
            xs: list[Any] = []
            ys: list[Any] = []
            for sym, a, b in zip(symbols[m].tolist(), start[m].tolist(), end[m].tolist()):
                xs += [_local(a, tz), _local(b, tz), None]
                ys += [sym, sym, None]
            traces.append(go.Scatter(
                x=xs, y=ys, mode="lines", name=kind, legendgroup=kind,
                line={"color": KIND_COLOURS[kind], "width": 9},
                hovertemplate=f"%{{y}} {kind}<br>%{{x}}<extra></extra>", visible=j == 0,
                connectgaps=False))
            owner.append(j)
        if not have_anomalies:
            continue
        a_keep = (a_labels == label) & np.isin(a_symbols, shown)
        for kind in ANOMALY_KINDS:
            m = a_keep & (a_kinds == kind)
            if not m.any():
                continue
            xs, ys = [], []
            for sym, a, b in zip(a_symbols[m].tolist(), a_start[m].tolist(),
                                 a_end[m].tolist()):
                xs += [_local(a, tz), _local(b, tz), None]
                ys += [sym, sym, None]
            traces.append(go.Scatter(
                x=xs, y=ys, mode="lines+markers", name=f"anomaly: {kind}",
                legendgroup=f"anomaly-{kind}",
                line={"color": ANOMALY_COLOURS[kind], "width": 3},
                marker={"symbol": "diamond", "size": 9, "color": ANOMALY_COLOURS[kind]},
                hovertemplate=f"%{{y}} anomaly {kind}<br>%{{x}}<extra></extra>",
                visible=j == 0, connectgaps=False))
            owner.append(j)
    if not traces:
        return None
    fig = go.Figure(traces)

    def layout(j: int) -> dict[str, Any]:
        out: dict[str, Any] = {"title.text": titles[j]}
        if ranges[j] is not None:
            out["xaxis.range"] = ranges[j]
        return out

    buttons = [{"label": grid.sessions[k], "method": "update",
                "args": [{"visible": [o == j for o in owner]}, layout(j)]}
               for j, k in enumerate(worst)]
    first = worst[0]
    n_rows = min(n_symbols, max(1, int((((grid.expected - grid.present)[:, first] > 0)
                                        | (grid.anomalies[:, first] > 0)).sum())))
    xaxis: dict[str, Any] = {"type": "date", "title": f"local time ({grid.timezone})"}
    if ranges[0] is not None:
        xaxis["range"] = ranges[0]
    fig.update_layout(
        title={"text": titles[0]}, height=int(min(1200, max(320, 140 + 18 * n_rows))),
        margin={"l": 90, "r": 30, "t": 80, "b": 50},
        xaxis=xaxis,
        yaxis={"type": "category", "title": "symbol"},
        updatemenus=[{"type": "dropdown", "x": 1.0, "y": 1.15, "xanchor": "right",
                      "buttons": buttons}])
    return fig


def _minute(iso: str) -> str:
    """``YYYY-MM-DD HH:MM`` of an ISO local time (a timeline's axis bound)."""
    return iso[:16].replace("T", " ")


def _codes(column: Any, names: tuple[str, ...] | list[str]) -> np.ndarray:
    """The codes (index in ``names``) of a text or dictionary column, -1 for another."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    return pc.index_in(column, value_set=pa.array(list(names), pa.string())
                       ).fill_null(-1).to_numpy()


def _local(ns: int, tz: Any) -> str:
    t = (_dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
         + _dt.timedelta(microseconds=ns // 1000)).astimezone(tz)
    return t.strftime("%Y-%m-%d %H:%M")


def _worst_sessions_html(grid: _Grid, summary: dict[str, Any]) -> str:
    notes = {p.get("session"): "; ".join(p.get("notes", []))
             for p in summary.get("per_session", [])}
    comp, dq = grid.completeness(0), grid.data_quality(0)
    rows = []
    for k in _worst_sessions(grid, WORST_ROWS):
        label = grid.sessions[k]
        rows.append([label, int(grid.member[:, k].sum()), f"{int(grid.expected[:, k].sum()):,}",
                     f"{int((grid.expected - grid.present)[:, k].sum()):,}",
                     f"{int(grid.kinds[0, :, k].sum()):,}", f"{int(grid.lost[:, k].sum()):,}",
                     f"{int(grid.kinds[KINDS.index('halt'), :, k].sum()):,}"]
                    + ([f"{int(grid.anomalies[:, k].sum()):,}"] if grid.has_anomalies else [])
                    + [_pct(comp[k]), _pct(dq[k]), notes.get(label, "")])
    if not rows:
        return "<p>No bar is missing.</p>"
    return _table(["session", "symbols", "expected", "missing", "no_trade", "lost", "halt"]
                  + (["anomalies"] if grid.has_anomalies else [])
                  + ["completeness", "data quality", "notes"], rows)


def _worst_symbols_html(grid: _Grid) -> str:
    comp, dq = grid.completeness(1), grid.data_quality(1)
    missing = (grid.expected - grid.present).sum(axis=1)
    # the CLI summary's order of symbols: completeness, then the name
    order = sorted(range(len(comp)), key=lambda s: (comp[s], grid.symbols[s]))
    anomalies = grid.anomalies.sum(axis=1)
    rows = [[grid.symbols[s], int(grid.member[s].sum()), f"{int(grid.expected[s].sum()):,}",
             f"{int(missing[s]):,}", f"{int(grid.kinds[0, s].sum()):,}",
             f"{int(grid.lost[s].sum()):,}"]
            + ([f"{int(anomalies[s]):,}"] if grid.has_anomalies else [])
            + [_pct(comp[s]), _pct(dq[s])]
            for s in order if missing[s] > 0 or anomalies[s] > 0][:WORST_ROWS]
    if not rows:
        return "<p>No bar is missing.</p>"
    return _table(["symbol", "sessions", "expected", "missing", "no_trade", "lost"]
                  + (["anomalies"] if grid.has_anomalies else [])
                  + ["completeness", "data quality"], rows)
