"""offrl-bench: offline RL benchmarks on Minari datasets with pluggable algorithms."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("offrl-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
