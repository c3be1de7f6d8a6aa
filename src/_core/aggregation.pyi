"""Aggregation of base bars into derived intervals laid on a session grid."""

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

def aggregate_bars(
    ts: I64, open: F64, high: F64, low: F64, close: F64, volume: F64,
    g_open: I64, g_close: I64, g_base_slots: I64, step_ns: int, base_ns: int,
    out_ts: I64, out_open: F64, out_high: F64, out_low: F64, out_close: F64,
    out_volume: F64, out_count: I64, out_coverage: F64,
) -> tuple[int, int, int]: ...
def bucket_capacity(g_open: I64, g_close: I64, step_ns: int, first_ns: int,
                    last_ns: int) -> int: ...

class Aggregator:
    last_ns: int
    def __init__(self, g_open: I64, g_close: I64, g_base_slots: I64, step_ns: int,
                 base_ns: int) -> None: ...
    def update(self, ts: int, open: float, high: float, low: float, close: float,
               volume: float) -> int: ...
    def update_many(self, ts: I64, open: F64, high: F64, low: F64, close: F64,
                    volume: F64) -> int: ...
    def advance(self, now_ns: int) -> int: ...
    def flush(self) -> int: ...
    @property
    def pending(self) -> int: ...
    def drain(self) -> dict[str, np.ndarray]: ...
