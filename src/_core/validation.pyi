"""Validation of bars in one pass: a fault code per row."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

_I64: TypeAlias = npt.NDArray[np.int64]
_F64: TypeAlias = npt.NDArray[np.float64]

FAULTS: dict[int, str]

def validate_bars(
    ts: _I64, open: _F64, high: _F64, low: _F64, close: _F64, volume: _F64,
    w_open: _I64, w_close: _I64, base_ns: int, faults: npt.NDArray[np.uint8],
    stop_at_first: bool, last_ns: int = ..., volume_optional: bool = ...,
) -> tuple[int, list[int]]: ...
def locate_bars(
    ts: _I64, w_open: _I64, w_close: _I64, base_ns: int, faults: npt.NDArray[np.uint8],
) -> tuple[int, list[int]]: ...
def step_counts(ts: _I64) -> tuple[int, int, int, int]: ...
def prices_sound(
    open: _F64, high: _F64, low: _F64, close: _F64, volume: _F64,
    volume_optional: bool = ...,
) -> bool: ...
def window_fit(
    raw: _I64, open_ns: _I64, close_ns: _I64, open_raw: _I64, close_raw: _I64,
    session_ids: _I64, n_sessions: int, lo: int, hi: int, base_ns: int,
) -> tuple[int, int, int, int, int]: ...
