"""sessiondata: intraday bar data of a trading session, for many symbols at once.

Aggregates base bars into derived intervals on a trading calendar, finds the bars that should
exist and do not, scores data quality and exports it all, over a compiled Cython core.
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from . import _core  # fails with a how-to-build message when the kernels are missing
# Functions named as their modules are imported now: the first import of a submodule sets the
# package's attribute of that name to the module, which would hide a lazy function.
from .check import check
from .diff import diff

if TYPE_CHECKING:  # what the names below are, for type checkers and readers
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
    from .anomalies import Anomalies, AnomalyInfo, AnomalyParams, find_anomalies

# The public names are imported on first use (PEP 562), not with the package: the command
# line's main job then imports only the modules it runs (issue 18: its fixed cost), and
# ``import sessiondata`` stays cheap.  name -> (module, attribute).
_LAZY = {
    "find_gaps": ("api", "find_gaps"),
    "quality": ("api", "quality"),
    "resample": ("api", "resample"),
    "Grid": ("kernels", "Grid"),
    "GapInfo": ("results", "GapInfo"),
    "Gaps": ("results", "Gaps"),
    "QualityReport": ("results", "QualityReport"),
    "RunResult": ("results", "RunResult"),
    "Bars": ("bars", "Bars"),
    "BadBarError": ("bars", "BadBarError"),
    "Calendar": ("calendar", "Calendar"),
    "Windows": ("calendar", "Windows"),
    "Interval": ("intervals", "Interval"),
    "parse_interval": ("intervals", "parse_interval"),
    "SessionData": ("session", "SessionData"),
    "SymbolSessionData": ("session", "SymbolSessionData"),
    "DataProcessor": ("processing", "DataProcessor"),
    "DataQualityManager": ("processing", "DataQualityManager"),
    "SessionCoordinator": ("coordinator", "SessionCoordinator"),
    "SessionSummary": ("coordinator", "SessionSummary"),
    "Engine": ("engine", "Engine"),
    "Source": ("engine", "Source"),
    "SymbolEvent": ("engine", "SymbolEvent"),
    "Event": ("session", "Event"),
    "Fault": ("faults", "Fault"),
    "run": ("job", "run"),
    "inspect": ("inspection", "inspect"),
    "Anomalies": ("anomalies", "Anomalies"),
    "AnomalyInfo": ("anomalies", "AnomalyInfo"),
    "AnomalyParams": ("anomalies", "AnomalyParams"),
    "find_anomalies": ("anomalies", "find_anomalies"),
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        # A submodule (``sd.summary``, ``sd.export``...) as ``import sessiondata.x`` gives it:
        # they were reachable as attributes when the package imported them eagerly.
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module 'sessiondata' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{where[0]}", __name__), where[1])
    globals()[name] = value          # once: later lookups find it without this call
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
