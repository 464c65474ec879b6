"""Spilled synthetic blocks: content kept, resident pages let go, no file left behind."""
from __future__ import annotations

import gc
import os
import sys
import tempfile

import numpy as np
import pandas as pd
import pytest

from synthrelease import spill

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")


def rss_file_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


def test_release_keeps_content_and_lets_go_of_resident_pages():
    block = spill.spilled_array((64, 1 << 20), np.float16)  # 128 MiB
    values = np.arange(1 << 20, dtype=np.float16)
    before = rss_file_kib()
    for row in block:
        row[:] = values
    assert rss_file_kib() - before > 100 * 1024  # written pages are resident
    spill.release_mapped_pages()
    assert rss_file_kib() - before < 16 * 1024
    np.testing.assert_array_equal(block[17], values)  # read back from the file
    np.testing.assert_array_equal(block[63], values)


def test_spill_file_has_no_name_and_dies_with_the_array(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    block = spill.spilled_array((3, 5), np.float32)
    block[:] = 2.0
    frame = pd.DataFrame(block.T, copy=False)
    assert os.listdir(tmp_path) == []  # unlinked at creation: a killed run leaves nothing
    assert spill.is_spilled(frame[1].to_numpy())
    assert not spill.is_spilled(np.ones(3))
    del block, frame
    gc.collect()
    assert spill._live() == []


def test_only_large_blocks_spill():
    assert spill.should_spill(spill.SPILL_ABOVE_BYTES)
    assert not spill.should_spill(spill.SPILL_ABOVE_BYTES - 1)
