"""Aggregation of base bars into derived intervals laid on a session grid."""

from typing import Sequence, TypeAlias

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_I64: TypeAlias = npt.NDArray[np.int64]
_F64: TypeAlias = npt.NDArray[np.float64]

def aggregate_grids(
    ts: _I64, open: _F64, high: _F64, low: _F64, close: _F64, volume: _F64,
    grids: Sequence[tuple[_I64, _I64, _I64, int]],
    outs: Sequence[Sequence[_I64 | _F64]],
    base_ns: int,
) -> list[tuple[int, int, int]]: ...
def aggregate_bars(
    ts: _I64, open: _F64, high: _F64, low: _F64, close: _F64, volume: _F64,
    g_open: _I64, g_close: _I64, g_base_slots: _I64, step_ns: int, base_ns: int,
    out_ts: _I64, out_open: _F64, out_high: _F64, out_low: _F64, out_close: _F64,
    out_volume: _F64, out_count: _I64, out_coverage: _F64,
) -> tuple[int, int, int]: ...
def bucket_capacity(g_open: _I64, g_close: _I64, step_ns: int, first_ns: int,
                    last_ns: int) -> int: ...

@disjoint_base
class Aggregator:
    last_ns: int
    def __init__(self, g_open: npt.ArrayLike, g_close: npt.ArrayLike,
                 g_base_slots: npt.ArrayLike, step_ns: int, base_ns: int,
                 g_last_open: npt.ArrayLike | None = None) -> None: ...
    def update(self, ts: int, open: float, high: float, low: float, close: float,
               volume: float) -> int: ...
    def update_many(self, ts: npt.ArrayLike, open: npt.ArrayLike, high: npt.ArrayLike,
                    low: npt.ArrayLike, close: npt.ArrayLike, volume: npt.ArrayLike) -> int: ...
    def advance(self, now_ns: int) -> int: ...
    def flush(self) -> int: ...
    @property
    def pending(self) -> int: ...
    def drain(self) -> dict[str, np.ndarray]: ...
