"""stages.return_freed_memory hands freed heap pages back to the OS (glibc), so RSS after a stage is what is live."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from synthrelease.pipeline.stages import return_freed_memory


def rss_mib() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc's malloc_trim")
def test_freed_small_pieces_leave_the_resident_memory():
    pieces = [np.ones(2000, dtype=np.uint8) for _ in range(150_000)]  # ~300 MB of heap-allocated pieces
    keep = pieces[::200]  # a few survivors pin the heap's top
    del pieces
    before = rss_mib()
    return_freed_memory()
    after = rss_mib()
    assert before - after > 150, (before, after)
    assert all(k.sum() == 2000 for k in keep)  # the live pieces are untouched
