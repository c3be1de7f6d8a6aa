"""sessiondata: intraday bar data of a trading session."""
from . import _core
