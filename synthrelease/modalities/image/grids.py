"""Tile mosaics for reports: one image of many tiles, and PNG data URIs for self-contained HTML.

A mosaic of real tiles shows private data: it belongs in the steward's internal report only.
"""

from __future__ import annotations

import base64
import io

import numpy as np

SEPARATOR = 2
"""White pixels between tiles (and around the mosaic)."""


def tile_grid(images: np.ndarray, *, columns: int = 8, max_tiles: int = 64) -> np.ndarray:
    """Arrange the first ``max_tiles`` tiles in rows of ``columns``, separated by 2-pixel white lines.

    Args:
        images: uint8 ``[n, H, W, C]`` (or ``[n, H, W]``), C = 1 or 3, n ≥ 1.

    Returns:
        uint8 ``[rows·(H+2)+2, cols·(W+2)+2, C]``; empty cells of the last row stay white.
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.dtype != np.uint8 or arr.shape[-1] not in (1, 3) or len(arr) == 0:
        raise ValueError(f"images must be a non-empty uint8 [n, H, W, 1 or 3], not {arr.dtype} {arr.shape}")
    if columns < 1 or max_tiles < 1:
        raise ValueError("columns and max_tiles must be positive")
    arr = arr[:max_tiles]
    n, h, w, c = arr.shape
    cols = min(columns, n)
    rows = -(-n // cols)
    s = SEPARATOR
    grid = np.full((rows * (h + s) + s, cols * (w + s) + s, c), 255, dtype=np.uint8)
    for i, tile in enumerate(arr):
        r, k = divmod(i, cols)
        y, x = s + r * (h + s), s + k * (w + s)
        grid[y:y + h, x:x + w] = tile
    return grid


def png_data_uri(image: np.ndarray) -> str:
    """``data:image/png;base64,...`` of a uint8 ``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]`` image (Pillow)."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(f"image must be uint8 [H, W] or [H, W, 3], not {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
