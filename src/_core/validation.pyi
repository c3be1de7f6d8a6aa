"""Validation of bars in one pass: a fault code per row."""

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

FAULTS: dict[int, str]

def validate_bars(
    ts: I64, open: F64, high: F64, low: F64, close: F64, volume: F64,
    w_open: I64, w_close: I64, base_ns: int, faults: npt.NDArray[np.uint8],
    stop_at_first: bool, last_ns: int = ..., volume_optional: bool = ...,
) -> tuple[int, list[int]]: ...
