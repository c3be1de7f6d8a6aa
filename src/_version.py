"""The version of sessiondata, in this one place: the build reads it (pyproject.toml's
``[tool.setuptools.dynamic]``) and the package exports it as ``sessiondata.__version__``."""

__version__ = "0.1.0"
