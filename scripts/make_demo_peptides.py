"""Write the bundled demo peptide set: synthesised from public rules, no real records (CC0).

``synthrelease/data/peptides.csv``: 600 peptides with ids, half ``amp_like`` (cationic,
amphipathic helices: a heptad of hydrophobic and cationic positions, as antimicrobial
peptides such as magainins are built) and half ``background`` (letters drawn from the
UniProtKB/Swiss-Prot amino-acid composition, release notes 2024). Nothing here comes from
a real sequence database; it exists so that ``synthrelease demo --modality sequence`` runs
anywhere. Deterministic (seed 0):

    python scripts/make_demo_peptides.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "synthrelease" / "data" / "peptides.csv"
AMINO = "ACDEFGHIKLMNPQRSTVWY"
# UniProtKB/Swiss-Prot composition (%), public statistics
BACKGROUND = np.array([8.25, 1.38, 5.46, 6.72, 3.86, 7.07, 2.27, 5.91, 5.80, 9.64, 2.41, 4.06, 4.74, 3.93,
                       5.53, 6.65, 5.36, 6.86, 1.10, 2.92])
HYDROPHOBIC, CATIONIC, SMALL = "LIFWVA", "KR", "GS"
HEPTAD = "hcchhch"  # helical wheel: hydrophobic face and cationic face


def amp_like(rng: np.random.Generator) -> str:
    length = int(rng.integers(12, 31))
    offset = int(rng.integers(0, 7))
    out = []
    for i in range(length):
        kind = HEPTAD[(i + offset) % 7]
        pool = HYDROPHOBIC if kind == "h" else CATIONIC
        if rng.random() < 0.12:
            pool = SMALL
        out.append(pool[int(rng.integers(0, len(pool)))])
    return "".join(out)


def background(rng: np.random.Generator) -> str:
    length = int(rng.integers(10, 41))
    p = BACKGROUND / BACKGROUND.sum()
    return "".join(rng.choice(list(AMINO), size=length, p=p))


def main() -> None:
    rng = np.random.default_rng(0)
    rows = [("amp_like", amp_like(rng)) for _ in range(300)] + [("background", background(rng)) for _ in range(300)]
    order = rng.permutation(len(rows))
    df = pd.DataFrame({"peptide_id": [f"pep{i:04d}" for i in range(len(rows))],
                       "sequence": [rows[i][1] for i in order], "activity": [rows[i][0] for i in order]})
    df.to_csv(OUT, index=False)
    print(f"wrote {OUT} ({len(df)} peptides)")


if __name__ == "__main__":
    main()
