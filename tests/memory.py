"""Private (anonymous) resident memory of the test process, for tests that show data stays on disk."""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

import pytest

STATUS = Path("/proc/self/status")
needs_linux_glibc = pytest.mark.skipif(not STATUS.is_file() or platform.libc_ver()[0] != "glibc",
                                       reason="needs Linux /proc and glibc")
"""Marker for tests that read :func:`anonymous_memory`."""


def anonymous_memory() -> int:
    """Bytes of private (not file-backed) resident memory, after glibc has returned its free heap memory to
    the system (else freed temporaries stay counted). Memory-mapped file data is not included."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    line = next(line for line in STATUS.read_text().splitlines() if line.startswith("RssAnon"))
    return int(line.split()[1]) * 1024
