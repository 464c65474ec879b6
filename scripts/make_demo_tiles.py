"""Write the bundled demo tile set: 32×32 H&E tiles drawn by the public tissue simulator (CC0).

``synthrelease/data/tiles.npz``: 400 RGB tiles, half ``dense`` and half ``sparse`` nuclei,
rendered by :mod:`synthrelease.modalities.image.simulator` around two fixed, public
parameter settings (the class differs in nuclei density and size), each tile jittered
by 0.08 in the normalised parameter space and given its own layout. No real image is
involved, so ``synthrelease demo --modality image`` runs anywhere. These tiles come from
the simulator's own family, so the demo shows the pipeline end to end, not how far the
simulator reaches: ``benchmarks/image_tiles.py`` measures that on a real H&E slide.
Deterministic (seed 0):

    python scripts/make_demo_tiles.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "synthrelease" / "data" / "tiles.npz"
SIZE = 32
JITTER = 0.08
# A typical in-focus H&E dermis field: moderate stains, some fibres, little lumen (normalised units)
BASE = {"nuclei_density": 0.55, "nucleus_radius": 0.35, "nucleus_radius_spread": 0.3, "nucleus_elongation": 0.3,
        "chromatin_texture": 0.4, "nuclear_stain": 0.6, "stroma_stain": 0.5, "cytoplasm": 0.3,
        "fibre_density": 0.4, "fibre_width": 0.4, "fibre_coherence": 0.5, "lumen_fraction": 0.15,
        "ihc_positivity": 0.0, "blur": 0.2, "noise": 0.3, "stain_hue": 0.7, "brightness": 0.6}
CLASSES = {"dense": {"nuclei_density": 0.85, "nucleus_radius": 0.3},
           "sparse": {"nuclei_density": 0.3, "nucleus_radius": 0.45}}


def main() -> None:
    from synthrelease.modalities.image import simulator

    rng = np.random.default_rng(0)
    labels = np.array(["dense"] * 200 + ["sparse"] * 200)
    rng.shuffle(labels)
    centre = {name: np.array([{**BASE, **CLASSES[name]}[p] for p in simulator.PARAMETER_NAMES]) for name in CLASSES}
    params = np.stack([centre[lab] for lab in labels])
    params = simulator.perturb_parameters(params, JITTER, rng)
    images = simulator.render_tiles(params, rng.integers(0, 2**62, len(labels)), size=SIZE, stain="he")
    ids = np.array([f"tile{i:04d}" for i in range(len(labels))])
    np.savez_compressed(OUT, images=images, labels=labels, image_id=ids)
    print(f"wrote {OUT} ({len(labels)} tiles, {OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
