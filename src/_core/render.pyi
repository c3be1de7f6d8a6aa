"""The session documents' text: one session's compact JSON, rendered from the model's
columns (``documents._renderer`` lays them out)."""

from typing import Sequence, TypeAlias

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_I64: TypeAlias = npt.NDArray[np.int64]
_I32: TypeAlias = npt.NDArray[np.int32]
_I8: TypeAlias = npt.NDArray[np.int8]
_U8: TypeAlias = npt.NDArray[np.uint8]
_F64: TypeAlias = npt.NDArray[np.float64]

def plain_floats(values: _F64, digits: int) -> _U8: ...
def format_float(value: float, digits: int) -> bytes | None: ...

@disjoint_base
class SessionRenderer:
    def __init__(
        self,
        ints: _I64,            # [interval, 5, symbol, session]: bars, expected, present, partial, lost
        floats: _F64,          # [interval, 3, symbol, session]: score, coverage, data quality
        float_alt: _I32,       # same shape: text index of a float not plain, else -1
        gap_off: _I64,         # [interval, symbol * sessions + session + 1]
        gap_start: _I32,       # local second of the day of each gap's start
        gap_end: _I32,
        gap_count: _I64,
        gap_kind: _I8,
        gap_activity: _F64,
        gap_share: _F64,
        activity_alt: _I32,
        share_alt: _I32,
        iv_kinds: _U8,         # [interval]
        iv_name: _I32,         # [interval]
        scored: _U8,           # [interval, symbol]
        symbol_ivs: _I32,      # [symbol, i], -1 after its intervals
        symbol_head: _I32,     # [symbol]
        member: _U8,           # [symbol, session]
        loaded: _U8,
        rejected: _I32,
        tail: _I32,
        anomalies: _I32,
        kind_name: _I32,       # [kind]
        texts: _U8,
        text_off: _I64,
        anomaly_iv: int,
        no_anomaly: int,
        float_digits: Sequence[int],
        gap_digits: int,
    ) -> None: ...
    def render(self, k: int, head: bytes, foot: bytes) -> bytes: ...
    def write_files(
        self, sessions: Sequence[int], heads: Sequence[bytes], feet: Sequence[bytes],
        paths: Sequence[bytes],
    ) -> tuple[int, int] | None: ...
