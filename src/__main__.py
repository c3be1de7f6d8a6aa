"""``python -m sessiondata``: the command line (see :mod:`sessiondata.cli`)."""

import sys

from .cli import main

sys.exit(main())
