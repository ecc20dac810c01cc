"""gpubundle's target side: everything that runs on the air-gapped GPU host.

This package must import on a bare host's python3 (3.8+: the host's own, or the one
the installer carries) with only the standard library; optional dependencies (zstandard, pynvml, click, rich) are
imported where used, each with a fallback or a clear error. Docker is driven
through its CLI only.
"""

__version__ = "0.1.0"
