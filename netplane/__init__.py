"""netplane: a Kubernetes-style networking data plane and service proxy."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("netplane")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
