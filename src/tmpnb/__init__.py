"""tmpnb: instant, temporary Jupyter notebooks from a warm pool of containers behind CHP."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tmpnb")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
