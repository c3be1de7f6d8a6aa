"""The per-gap sums of the gap classification, slot by slot or piece by piece."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

_I64: TypeAlias = npt.NDArray[np.int64]
_F64: TypeAlias = npt.NDArray[np.float64]
_I8: TypeAlias = npt.NDArray[np.int8]
_U8: TypeAlias = npt.NDArray[np.uint8]

def slot_pieces(slot0: _I64, n: _I64, n_slots: int, p_off: _I64, p_start: _I64) -> None: ...
def piece_starts_by_mark(p_start: _I64, p_len: _I64, n_slots: int,
                         inv: _I64) -> tuple[_I64, _I64]: ...
def piece_runs(p_off: _I64, p_start: _I64, p_len: _I64, g_sym: _I64, run_start: _I64,
               run_bucket: _I64, p_run: _I64, missing_sb: _I64) -> None: ...
def rate_times_slots(rate: _F64, e_kb: _F64, out: _F64) -> None: ...
def gap_levels(g_sym: _I64, g_ses: _I64, g_slot0: _I64, g_n: _I64, p_off: _I64,
               p_start: _I64, p_len: _I64, p_run: _I64, run_start: _I64, run_len: _I64,
               run_bucket: _I64, rate: _F64, usual_sk: _F64, present_sk: _F64,
               s_first: _I64, s_last: _I64, around: int, min_around: int, activity: _F64,
               quiet: _F64, g_lo: int = 0, g_hi: int = -1) -> None: ...
def locate_gaps(g_sym: _I64, g_ses: _I64, g_start: _I64, g_n: _I64, window_open: _I64,
                window_first: _I64, step_ns: int, g_win: _I64, g_slot0: _I64,
                missing_sk: _I64) -> None: ...
def cross_section(g_sym: _I64, p_off: _I64, p_start: _I64, p_len: _I64, p_run: _I64,
                  inv: _I64, u: _I64, u_len: _I64, n_slots: int, run_session: _I64,
                  run_bucket: _I64, active: _U8, n_active_kb: _F64, min_symbols: float,
                  outage_share: float) -> tuple[_F64, _U8, _I64, _I64]: ...
def gap_kinds(g_sym: _I64, g_ses: _I64, g_start: _I64, g_end: _I64, g_slot0: _I64,
              g_n: _I64, g_win: _I64, p_off: _I64, p_start: _I64, p_len: _I64,
              log_quiet: _F64, inv: _I64, share_slot: _F64, outage_slot: _U8,
              outage_start: _I64, outage_end: _I64, window_first: _I64, window_slots: _I64,
              halted: _I64, since_ns: _I64, until_ns: _I64, session_open_ns: _I64,
              session_close_ns: _I64, log_alpha: float, no_trade: int, outage: int,
              late_start: int, early_end: int, halt: int, kind: _I8, share: _F64,
              g_lo: int = 0, g_hi: int = -1) -> None: ...
