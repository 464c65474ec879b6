"""Image-tile releases on the H&E skin slide (run by hand): DP DCGAN at several ε.

Data: ``../shared/data/he_skin_region.svs`` (CMU-1-Small-Region, CC0), tiled with
``synthrelease.io.tiles.tile_slide`` at 64 × 64, stride 64, keeping tiles whose share of
tissue pixels (mean RGB below 220, a public threshold) is at least 0.5, then each tile
averaged 2 × 2 to 32 × 32 (public preprocessing). Split 80/20 with a seeded permutation
(public seed: a benchmark, not a release). No labels: an unconditional GAN. Also writes
the tiles as ``--write-npz PATH`` (to feed ``synthrelease release``).

For ε ∈ {1, 10} (δ = 1e-5) and "∞" (ε = 10⁶, negligible noise), trains
``synthrelease.modalities.image.model.train_tile_gan`` and scores the synthetic tiles with
``synthrelease.modalities.image.audits.run_image_audits`` against the real train and holdout tiles.

    OMP_NUM_THREADS=2 python benchmarks/image_tiles.py [--epsilons 1,10,inf] [--steps 500]

Writes benchmarks/results/image_tiles.{json,md} and a grid PNG per ε.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SLIDE = HERE.parents[1] / "shared" / "data" / "he_skin_region.svs"
RESULTS = HERE / "results"
COLUMNS = ("kid", "kid_holdout_vs_train", "prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage",
           "diversity_synthetic", "nn_pixel_train_median", "nn_pixel_holdout_median", "exact_copy_share",
           "near_copy_share_train", "near_copy_share_holdout", "nn_mia_auc", "train_seconds", "steps_per_second")


def load_tiles() -> np.ndarray:
    from synthrelease.io.tiles import tile_slide

    tiles, _ = tile_slide(SLIDE, size=64, stride=64, tissue_threshold=220, min_tissue_share=0.5, max_tiles=None)
    small = tiles.reshape(len(tiles), 32, 2, 32, 2, 3).mean(axis=(2, 4))
    return small.round().astype(np.uint8)


def plain_steps_per_second(batch: int, size: int = 32, steps: int = 50) -> float:
    """The same generator/discriminator step WITHOUT DP (no Opacus hooks, no clipping, no noise,
    no embedding loss): the speed a non-private DCGAN of this size reaches here."""
    import torch
    import torch.nn.functional as F

    from synthrelease.modalities.image.model import TileDiscriminator, TileGenerator

    torch.manual_seed(0)
    gen, disc = TileGenerator(64, 0, size, 3, 64), TileDiscriminator(0, size, 3, 32)
    opt_g, opt_d = torch.optim.Adam(gen.parameters(), 2e-4), torch.optim.Adam(disc.parameters(), 2e-4)
    real = torch.rand(batch, 3 * size * size) * 2 - 1
    t0 = time.perf_counter()
    for _ in range(steps):
        with torch.no_grad():
            fake = gen(torch.randn(batch, 64), None).flatten(1)
        loss = F.binary_cross_entropy_with_logits(disc(torch.cat([real, fake])),
                                                  torch.cat([torch.ones(batch), torch.zeros(batch)]))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        g = F.binary_cross_entropy_with_logits(disc(gen(torch.randn(batch, 64), None).flatten(1)), torch.ones(batch))
        opt_g.zero_grad()
        g.backward()
        opt_g.step()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    from PIL import Image

    from synthrelease.modalities.image.audits import run_image_audits
    from synthrelease.modalities.image.grids import tile_grid
    from synthrelease.modalities.image.model import ImageTrainingConfig, sample_tiles, train_tile_gan

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilons", default="1,10,inf")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--write-npz", default="")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    tiles = load_tiles()
    if a.write_npz:
        np.savez_compressed(a.write_npz, images=tiles)
    order = np.random.default_rng(0).permutation(len(tiles))
    cut = int(0.8 * len(tiles))
    train, hold = tiles[order[:cut]], tiles[order[cut:]]
    rows = []
    RESULTS.mkdir(exist_ok=True)
    for eps_text in a.epsilons.split(","):
        eps = 1e6 if eps_text == "inf" else float(eps_text)
        cfg = ImageTrainingConfig(target_epsilon=eps, target_delta=1e-5, n_steps=a.steps,
                                  batch_size=max(16, min(128, len(train) // 10)))
        t0 = time.perf_counter()
        model = train_tile_gan(train, None, 0, cfg)
        seconds = time.perf_counter() - t0
        syn, _ = sample_tiles(model, len(train), seed=1)
        res = run_image_audits(train, hold, syn, seed=0)
        Image.fromarray(tile_grid(syn, columns=8, max_tiles=64)).save(RESULTS / f"image_tiles-grid-eps{eps_text}.png")
        row = {"epsilon": eps_text, "epsilon_spent": model.privacy.epsilon, "train_tiles": len(train),
               "holdout_tiles": len(hold), "batch": cfg.batch_size, "steps": a.steps,
               "train_seconds": round(seconds, 1), "steps_per_second": round(a.steps / seconds, 2),
               "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               **{k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}}
        rows.append(row)
        print(json.dumps({k: row.get(k) for k in ("epsilon", *COLUMNS)}), flush=True)
    Image.fromarray(tile_grid(train, columns=8, max_tiles=64)).save(RESULTS / "image_tiles-grid-real-train.png")
    plain = plain_steps_per_second(max(16, min(128, len(train) // 10)))
    command = "OMP_NUM_THREADS=2 python benchmarks/image_tiles.py " + " ".join(sys.argv[1:])
    (RESULTS / "image_tiles.json").write_text(json.dumps({"command": command, "rows": rows,
                                                          "non_dp_steps_per_second": round(plain, 2)}, indent=1) + "\n")
    md = ["# Image tiles: DP DCGAN on the H&E skin slide", "",
          f"Command: `{command}` (2 CPU cores). {len(train)} training / {len(hold)} holdout tiles of 32 × 32 RGB "
          "(64 × 64 tissue tiles averaged 2 × 2); unconditional; δ = 1e-5; ε = inf means 10⁶. Feature space = "
          "the public tile features (intensity, colour, texture, spectrum): it sees colour and texture statistics, "
          "not cell morphology. KID: lower is better (two real samples: kid_holdout_vs_train). Grids: "
          "`image_tiles-grid-*.png` (real training tiles are shown only here, in a benchmark on public CC0 data). "
          "Model: the DP DCGAN plus the DP tile mean embedding (80 % of ε; the generator matches it) — "
          "`synthrelease.modalities.image.model` defaults.",
          "", f"Without DP (no Opacus hooks, clipping, noise or embedding loss) the same networks run "
          f"{plain:.2f} steps/s at the same batch size; the DP steps/s are in the table.",
          "", "| ε | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for r in rows:
        md.append(f"| {r['epsilon']} | " + " | ".join(
            f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "—")) for c in COLUMNS) + " |")
    (RESULTS / "image_tiles.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
