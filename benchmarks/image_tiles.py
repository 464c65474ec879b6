"""Image-tile releases on the H&E skin slide (run by hand): the DP DCGAN and Sim-PE at several ε.

Data: ``../shared/data/he_skin_region.svs`` (CMU-1-Small-Region, CC0), tiled with
``synthrelease.io.tiles.tile_slide`` at 64 × 64, stride 64, keeping tiles whose share of
tissue pixels (mean RGB below 220, a public threshold) is at least 0.5, then each tile
averaged 2 × 2 to 32 × 32 (public preprocessing). Split 80/20 with a seeded permutation
(public seed: a benchmark, not a release). No labels: an unconditional GAN. Also writes
the tiles as ``--write-npz PATH`` (to feed ``synthrelease release``).

For ε ∈ {1, 10} (δ = 1e-5) and "∞" (ε = 10⁶, negligible noise), and each generator
(``dcgan``: ``synthrelease.modalities.image.model.train_tile_gan``; ``dcgan_pretrained``: the
same after 1,000 non-private steps on simulated H&E tiles (public, no ε); ``sim_pe``: Private
Evolution over the public H&E tissue simulator,
``synthrelease.modalities.image.private_evolution.evolve_tiles``), scores the synthetic tiles
with ``synthrelease.modalities.image.audits.run_image_audits`` against the real train and
holdout tiles, plus a real-vs-synthetic logistic classifier on the public tile view
(5-fold accuracy; 0.5 = indistinguishable) and the KS distance of the per-tile nuclei count
(haematoxylin channel of ``skimage.color.rgb2hed`` above a fixed level, connected components).

    OMP_NUM_THREADS=2 python benchmarks/image_tiles.py [--epsilons 1,10,inf] [--steps 500]
        [--generators dcgan,sim_pe] [--size 32|64] [--repeats 3] [--swap-red-green] [--tag NAME]

Writes benchmarks/results/image_tiles.{json,md} and a grid PNG per ε.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SLIDE = HERE.parents[1] / "shared" / "data" / "he_skin_region.svs"
RESULTS = HERE / "results"
COLUMNS = ("real_vs_synthetic_accuracy", "nuclei_count_ks", "kid", "kid_holdout_vs_train", "kid_scattering",
           "kid_scattering_holdout_vs_train", "simulator_reach_share_dp", "prdc_precision",
           "prdc_recall", "prdc_density", "prdc_coverage",
           "diversity_synthetic", "nn_pixel_train_median", "nn_pixel_holdout_median", "exact_copy_share",
           "near_copy_share_train", "near_copy_share_holdout", "nn_mia_auc", "train_seconds", "steps_per_second")


def load_tiles(size: int = 32) -> np.ndarray:
    from synthrelease.io.tiles import tile_slide

    tiles, _ = tile_slide(SLIDE, size=2 * size, stride=2 * size, tissue_threshold=220, min_tissue_share=0.5,
                          max_tiles=None)
    small = tiles.reshape(len(tiles), size, 2, size, 2, 3).mean(axis=(2, 4))
    return small.round().astype(np.uint8)


PRETRAIN_STEPS = 1000
"""Non-private steps of ``dcgan_pretrained`` on simulated H&E tiles before its DP fine-tuning."""
NUCLEI_LEVEL = 0.06
"""Haematoxylin optical density above which a pixel counts as nuclear (a fixed, public level)."""


def nuclei_counts(tiles: np.ndarray) -> np.ndarray:
    """Connected regions of haematoxylin above :data:`NUCLEI_LEVEL` per tile (a morphology proxy)."""
    from scipy import ndimage
    from skimage.color import rgb2hed

    counts = np.empty(len(tiles))
    for i, tile in enumerate(tiles):
        mask = rgb2hed(tile)[..., 0] > NUCLEI_LEVEL
        counts[i] = ndimage.label(mask)[1]
    return counts


def real_vs_synthetic(real: np.ndarray, synthetic: np.ndarray) -> float:
    """5-fold accuracy of a logistic classifier telling real from synthetic tiles on the tile view."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from synthrelease.modalities.image.features import feature_view

    m = min(len(real), len(synthetic))
    x = np.concatenate([feature_view(real[:m]).to_numpy(), feature_view(synthetic[:m]).to_numpy()])
    y = np.r_[np.ones(m), np.zeros(m)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(cross_val_score(clf, x, y, cv=5).mean())


def run_generator(generator: str, train: np.ndarray, eps: float, steps: int) -> tuple[object, np.ndarray, float]:
    """Train (or evolve) on ``train``; return the model, as many synthetic tiles and the seconds."""
    from synthrelease.modalities.image.model import ImageTrainingConfig, sample_tiles, train_tile_gan
    from synthrelease.modalities.image.private_evolution import EvolvedTiles, evolve_within_reach, sample_evolved

    pretrain = generator == "dcgan_pretrained"
    cfg = ImageTrainingConfig(target_epsilon=eps, target_delta=1e-5, n_steps=steps,
                              batch_size=max(16, min(128, len(train) // 10)),
                              generator="dcgan" if pretrain else generator, pretrain_stain="he" if pretrain else "",
                              pretrain_steps=PRETRAIN_STEPS if pretrain else 0)
    t0 = time.perf_counter()
    if generator == "sim_pe":  # as a release runs it: the DP reach check, then Sim-PE or the DCGAN
        def dcgan(reserved):
            return train_tile_gan(train, None, 0, dataclasses.replace(cfg, generator="dcgan"),
                                  reserved_entries=reserved)

        model = evolve_within_reach(train, None, 0, cfg, stain="he", public_units=len(train), tiles_per_unit=1,
                                    fallback=dcgan)
        seconds = time.perf_counter() - t0
        if isinstance(model, EvolvedTiles):
            return model, sample_evolved(model, len(train), seed=1)[0], seconds
        return model, sample_tiles(model, len(train), seed=1)[0], seconds
    model = train_tile_gan(train, None, 0, cfg)
    seconds = time.perf_counter() - t0
    return model, sample_tiles(model, len(train), seed=1)[0], seconds


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


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per (generator, ε): the median of each column over its runs (run = "median")."""
    out = []
    for key in dict.fromkeys((r["generator"], r["epsilon"]) for r in rows):
        runs = [r for r in rows if (r["generator"], r["epsilon"]) == key]
        med = {c: float(np.median([r[c] for r in runs])) for c in COLUMNS if isinstance(runs[0].get(c), (int, float))}
        out.append({"generator": key[0], "epsilon": key[1], "run": f"median of {len(runs)}", **med})
    return out


def main() -> None:
    from PIL import Image
    from scipy.stats import ks_2samp

    from synthrelease.modalities.image.audits import run_image_audits
    from synthrelease.modalities.image.grids import tile_grid

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epsilons", default="1,10,inf")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--generators", default="dcgan,sim_pe")
    ap.add_argument("--size", type=int, default=32, choices=(32, 64))
    ap.add_argument("--write-npz", default="")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs per generator and ε (fresh DP noise each); the table adds their median")
    ap.add_argument("--tag", default="", help="suffix of the result files (keeps other runs' tables)")
    ap.add_argument("--swap-red-green", action="store_true",
                    help="a tissue the simulator does not know: the tiles' red and green channels swapped "
                         "(green-purple tissue, outside every H&E stain vector); sim_pe still declares 'he'")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    tiles = load_tiles(a.size)
    if a.swap_red_green:
        tiles = np.ascontiguousarray(tiles[..., [1, 0, 2]])
    if a.write_npz:
        np.savez_compressed(a.write_npz, images=tiles)
    order = np.random.default_rng(0).permutation(len(tiles))
    cut = int(0.8 * len(tiles))
    train, hold = tiles[order[:cut]], tiles[order[cut:]]
    real_nuclei = nuclei_counts(train)
    rows = []
    RESULTS.mkdir(exist_ok=True)
    tag = ("" if a.size == 32 else f"-{a.size}px") + (f"-{a.tag}" if a.tag else "")
    for generator in a.generators.split(","):
        for eps_text, run in ((e, r) for e in a.epsilons.split(",") for r in range(a.repeats)):
            eps = 1e6 if eps_text == "inf" else float(eps_text)
            model, syn, seconds = run_generator(generator, train, eps, a.steps)
            res = run_image_audits(train, hold, syn, seed=0)
            Image.fromarray(tile_grid(syn, columns=8, max_tiles=64)).save(
                RESULTS / f"image_tiles{tag}-grid-{generator}-eps{eps_text}.png")
            reach = next((h for h in model.history if "simulator_in_reach" in h), {})
            row = {"generator": generator, "epsilon": eps_text, "run": run + 1,
                   "simulator_reach_share_dp": reach.get("simulator_reach_share_dp"),
                   "epsilon_spent": model.privacy.epsilon,
                   "train_tiles": len(train), "holdout_tiles": len(hold), "steps": a.steps,
                   "train_seconds": round(seconds, 1),
                   "steps_per_second": round(a.steps / seconds, 2) if generator.startswith("dcgan") else None,
                   "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                   "real_vs_synthetic_accuracy": real_vs_synthetic(hold, syn),
                   "nuclei_count_ks": float(ks_2samp(real_nuclei, nuclei_counts(syn)).statistic),
                   **{k: v for k, v in res.metrics.items() if isinstance(v, (int, float))}}
            rows.append(row)
            print(json.dumps({k: row.get(k) for k in ("generator", "epsilon", *COLUMNS)}), flush=True)
    Image.fromarray(tile_grid(train, columns=8, max_tiles=64)).save(RESULTS / f"image_tiles{tag}-grid-real-train.png")
    plain = plain_steps_per_second(max(16, min(128, len(train) // 10)), size=a.size)
    command = "OMP_NUM_THREADS=2 python benchmarks/image_tiles.py " + " ".join(sys.argv[1:])
    (RESULTS / f"image_tiles{tag}.json").write_text(json.dumps(
        {"command": command, "rows": rows, "medians": median_rows(rows) if a.repeats > 1 else [],
         "non_dp_steps_per_second": round(plain, 2)}, indent=1) + "\n")
    held_back = (" — red and green swapped: a tissue the simulator does not know" if a.swap_red_green else "")
    md = [f"# Image tiles: DP DCGAN and Sim-PE on the H&E skin slide ({a.size} × {a.size}){held_back}", "",
          f"Command: `{command}` (2 CPU cores). {len(train)} training / {len(hold)} holdout tiles of "
          f"{a.size} × {a.size} RGB ({2 * a.size} × {2 * a.size} tissue tiles averaged 2 × 2); unconditional; "
          "δ = 1e-5; ε = inf means 10⁶. Feature space = the public tile features (intensity, colour, texture, "
          "spectrum). KID: lower is better (two real samples: kid_holdout_vs_train). real_vs_synthetic_accuracy: "
          "a logistic classifier on the tile view, holdout vs synthetic, 5-fold (0.5 = indistinguishable). "
          "nuclei_count_ks: KS distance of the per-tile count of haematoxylin regions (rgb2hed H > "
          f"{NUCLEI_LEVEL}). Grids: `image_tiles{tag}-grid-*.png` (real training tiles are shown only here, in a "
          "benchmark on public CC0 data). dcgan: the DP DCGAN plus the DP tile mean embedding (80 % of ε); "
          "sim_pe: as a release runs it — a DP reach check (5 % of ε; simulator_reach_share_dp), then "
          "Private Evolution over the public H&E simulator (no network trained on private tiles), or the DCGAN "
          "when the tiles are beyond the simulator's reach. kid_scattering: KID in the wavelet scattering space.",
          "", f"Without DP the DCGAN's networks run {plain:.2f} steps/s at the same batch size.",
          "", "| generator | ε | run | " + " | ".join(COLUMNS) + " |", "|---|---|---|" + "---|" * len(COLUMNS)]
    for r in rows + (median_rows(rows) if a.repeats > 1 else []):
        md.append(f"| {r['generator']} | {r['epsilon']} | {r.get('run', '')} | " + " | ".join(
            f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "—")) for c in COLUMNS) + " |")
    (RESULTS / f"image_tiles{tag}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
