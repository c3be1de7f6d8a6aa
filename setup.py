"""Build the compiled kernels of ``sessiondata._core``.

Everything else lives in ``pyproject.toml``.  The compiler directives are set here, once, for
every module.  ``SESSIONDATA_DEBUG=1`` builds with bounds checks, wrap-around checks and
initialisation checks turned back on (and no optimisation), so the test suite can run the
kernels under guard rails.
"""

import os
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

CORE = Path("src") / "_core"
DEBUG = os.environ.get("SESSIONDATA_DEBUG", "0") not in ("", "0", "false", "False")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

# A release build is optimised and carries no debug information: Python's own CFLAGS often
# hold -g (the wheel's modules were ~1.2-2.7 MB each with it), and -g0, coming after them,
# wins.  On Linux the linker also drops the symbol table (-s); the module's entry point is in
# the dynamic symbol table, which stays.  MSVC adds debug information only when asked.
link_args: list[str] = []
if DEBUG:
    compile_args = ["-O0", "-g"]
elif os.name == "nt":
    compile_args = ["/O2"]
else:
    compile_args = ["-O3", "-g0"]
    if sys.platform.startswith("linux"):
        link_args = ["-s"]

extensions = [
    Extension(
        f"sessiondata._core.{pyx.stem}",
        [str(pyx)],
        include_dirs=[np.get_include(), str(CORE)],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for pyx in sorted(CORE.glob("*.pyx"))
]

setup(
    # A build folder per mode too: a debug build never reuses release objects, or back.
    options={"build": {"build_base": str(Path("build") / ("debug" if DEBUG else "release"))}},
    ext_modules=cythonize(
        extensions,
        include_path=[str(CORE)],
        compiler_directives=directives,
        # Generated C goes to a folder per build mode, so a debug build never reuses release C.
        build_dir=str(Path("build") / ("cython-debug" if DEBUG else "cython")),
    ),
)
