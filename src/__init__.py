"""sessiondata: intraday bar data of a trading session, for many symbols at once.

Aggregates base bars into derived intervals on a trading calendar, finds the bars that should
exist and do not, scores data quality and exports it all, over a compiled Cython core.
"""

from . import _core  # fails with a how-to-build message when the kernels are missing
from .api import find_gaps, quality, resample
from .kernels import Grid
from .results import GapInfo, Gaps, QualityReport, RunResult
from .bars import Bars, BadBarError
from .calendar import Calendar, Windows
from .intervals import Interval, parse_interval
from .session import SessionData, SymbolSessionData
from .processing import DataProcessor, DataQualityManager
from .coordinator import SessionCoordinator, SessionSummary
from .engine import Engine, Source, SymbolEvent
from .session import Event
from .faults import Fault
from .job import run
from .inspection import inspect as inspect
from .check import check
from .diff import diff
from .anomalies import Anomalies, AnomalyInfo, AnomalyParams, find_anomalies

from ._version import __version__

__all__ = [
    "Bars",
    "DataProcessor",
    "DataQualityManager",
    "Engine",
    "Event",
    "Fault",
    "Source",
    "SymbolEvent",
    "SessionCoordinator",
    "SessionData",
    "SessionSummary",
    "SymbolSessionData",
    "BadBarError",
    "Calendar",
    "Gaps",
    "GapInfo",
    "Grid",
    "Interval",
    "QualityReport",
    "RunResult",
    "Windows",
    "find_gaps",
    "find_anomalies",
    "Anomalies",
    "AnomalyInfo",
    "AnomalyParams",
    "parse_interval",
    "quality",
    "resample",
    "run",
    "inspect",
    "check",
    "diff",
]
