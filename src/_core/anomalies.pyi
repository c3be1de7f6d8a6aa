"""Anomaly kernels: per-bar passes behind sessiondata.anomalies."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

_I64: TypeAlias = npt.NDArray[np.int64]
_F64: TypeAlias = npt.NDArray[np.float64]
_U8: TypeAlias = npt.NDArray[np.uint8]
_U64: TypeAlias = npt.NDArray[np.uint64]
_I32: TypeAlias = npt.NDArray[np.int32]

def locate_bars(ts: _I64, w_open: _I64, w_close: _I64, w_session: _I64, s_first_open: _I64,
                bucket_ns: int, out_session: _I32, out_bucket: _I32) -> int: ...
def bar_flags(ts: _I64, open: _F64, high: _F64, low: _F64, close: _F64, volume: _F64,
              session: _I32, bucket: _I32, step_ns: int, ref_volume: float, out: _U8,
              out_class: _U8, out_counts: _I64, out_hash: _U64, out_by_class: _F64,
              out_by_range: _F64) -> None: ...
def find_runs(flags: _U8, need: int, forbid: int, link: int, session: _I32, bucket: _I32,
              klass: _U8, weight: _F64, min_len: int, max_weight: float, out_first: _I64,
              out_len: _I64, out_weight: _F64) -> int: ...
def find_spikes(high: _F64, low: _F64, close: _F64, volume: _F64, session: _I32, block: int,
                k_sigma: float, min_rel: float, ref_bars: int, max_bars: int,
                volume_ratio: float, out_first: _I64, out_len: _I64, out_price: _F64,
                out_ref: _F64, out_score: _F64) -> int: ...
def session_stats(session: _I32, volume: _F64, flags: _U8, out_first: _I64, out_count: _I64,
                  out_med_volume: _F64, out_zero_volume: _I64, out_filled: _I64) -> None: ...
def session_sketches(hashes: _U64, flags: _U8, session: _I32, out: _U64) -> None: ...
def clock_screen(prof: _F64, count: _I64, span_ns: _I64, weekend: _U8, bucket_ns: int,
                 per_hour: int, hours: _I64, z_cap: float, max_run: int, min_z: float,
                 min_sessions: int, eps: float) -> float: ...
