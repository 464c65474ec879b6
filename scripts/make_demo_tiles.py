"""Write the bundled demo tile set: procedural H&E-like 32×32 tiles, no real image (CC0).

``synthrelease/data/tiles.npz``: 400 RGB tiles, half ``dense`` (12–20 nuclei) and half
``sparse`` (3–6 nuclei): an eosin-pink background with noise and haematoxylin-purple
disks of radius 1.5–3 pixels. Drawn from public rules so that
``synthrelease demo --modality image`` runs anywhere. Deterministic (seed 0):

    python scripts/make_demo_tiles.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "synthrelease" / "data" / "tiles.npz"
SIZE = 32
EOSIN = np.array([232.0, 170.0, 205.0])
HAEMATOXYLIN = np.array([95.0, 60.0, 150.0])


def tile(rng: np.random.Generator, nuclei: int) -> np.ndarray:
    img = EOSIN + rng.normal(0, 8, (SIZE, SIZE, 3))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for _ in range(nuclei):
        cy, cx, r = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(1.5, 3.0)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img[mask] = HAEMATOXYLIN + rng.normal(0, 10, (int(mask.sum()), 3))
    return np.clip(img, 0, 255).round().astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(0)
    labels = np.array(["dense"] * 200 + ["sparse"] * 200)
    rng.shuffle(labels)
    images = np.stack([tile(rng, int(rng.integers(12, 21)) if lab == "dense" else int(rng.integers(3, 7)))
                       for lab in labels])
    ids = np.array([f"tile{i:04d}" for i in range(len(labels))])
    np.savez_compressed(OUT, images=images, labels=labels, image_id=ids)
    print(f"wrote {OUT} ({len(labels)} tiles, {OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
