"""Spilled synthetic blocks: content kept, resident pages let go, no file left behind."""
from __future__ import annotations

import gc
import os
import sys
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import pytest

from synthrelease.io import spill

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")


def rss_file_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))


def test_release_keeps_content_and_lets_go_of_resident_pages(monkeypatch):
    release = spill.release_mapped_pages
    monkeypatch.setattr(spill, "release_mapped_pages", lambda: None)  # the pager thread idles
    block = spill.spilled_array((64, 1 << 20), np.float16)  # 128 MiB
    values = np.arange(1 << 20, dtype=np.float16)
    before = rss_file_kib()
    for row in block:
        row[:] = values
    assert rss_file_kib() - before > 100 * 1024  # written pages are resident
    release()
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


def test_the_pager_lets_go_of_pages_read_without_a_block_loop_and_ends_with_the_arrays(monkeypatch):
    monkeypatch.setattr(spill, "PAGER_SECONDS", 0.2)
    before = rss_file_kib()
    block = spill.spilled_array((32, 1 << 21), np.float16)  # 128 MiB
    block[:] = 1.0  # one whole-array write, no explicit release
    expected = np.full(1 << 21, 1.0, dtype=np.float16)
    for _ in range(50):
        if rss_file_kib() - before < 16 * 1024:
            break
        time.sleep(0.1)
    assert rss_file_kib() - before < 16 * 1024  # without the pager: +128 MiB for good
    np.testing.assert_array_equal(block[31], expected)  # the written content is kept
    del block
    gc.collect()
    for _ in range(50):
        time.sleep(0.1)
        if not spill._PAGER:
            break
    assert not spill._PAGER and not any(t.name == "synthrelease-spill-pager" and t.is_alive()
                                        for t in threading.enumerate())


@pytest.mark.parametrize("spilled", [False, True])
def test_take_rows_equals_iloc(monkeypatch, spilled):
    from synthrelease.gan.sampling import stack_chunks

    monkeypatch.setattr(spill, "SPILL_ABOVE_BYTES", 1 if spilled else 1 << 40)
    monkeypatch.setattr(spill, "TAKE_BLOCK_BYTES", 2 * 30 * 7)  # 7 columns per block
    rng = np.random.default_rng(4)
    df = pd.DataFrame(rng.random((30, 70)).astype(np.float16), columns=[f"g{i}" for i in range(70)])
    df.insert(0, "kind", rng.choice(["a", "b"], 30).astype(object))
    frame = stack_chunks(iter([df.iloc[:10], df.iloc[10:].set_axis(pd.RangeIndex(10, 30))]), 30)
    assert spill.is_spilled(frame["g5"].to_numpy()) == spilled
    rows = np.array([0, 3, 17, 29])
    pd.testing.assert_frame_equal(spill.take_rows(frame, rows), frame.iloc[rows])


def test_no_room_in_the_temporary_folder_is_a_one_line_error(tmp_path, monkeypatch):
    from collections import namedtuple

    from synthrelease.errors import SynthreleaseError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(spill.shutil, "disk_usage", lambda folder: usage(1 << 40, 1 << 40, 1 << 20))
    spill.check_room(spill.SPILL_ABOVE_BYTES - 1)  # not spilled: no check
    with pytest.raises(SynthreleaseError, match=f"temporary folder {tmp_path}: no room for the 3.0 GiB.*TMPDIR"):
        spill.check_room(3 << 30)

    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spill.os, "posix_fallocate", full)
    with pytest.raises(SynthreleaseError, match=r"no room.*No space left on device") as e:
        spill.spilled_array((4, 4), np.float32)
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == []


def test_float_block_bytes_counts_plain_float_columns():
    from synthrelease.gan.sampling import float_block_bytes
    from synthrelease.metadata.schema import Metadata

    cols = {"kind": {"type": "categorical", "categories": ["a"]},
            **{f"g{i}": {"type": "float", "min": 0, "max": 1} for i in range(70)}}
    meta = Metadata.model_validate({"version": 1, "name": "t", "columns": cols})
    assert float_block_bytes(meta, 1000) == 1000 * 70 * 8
    assert float_block_bytes(meta.model_copy(update={"float_storage": "float16"}), 1000) == 1000 * 70 * 2
    few = Metadata.model_validate({"version": 1, "name": "t", "columns": dict(list(cols.items())[:10])})
    assert float_block_bytes(few, 1000) == 0
