"""`metadata infer` drafts sequence columns of tables (issue 29.4): only real sequences, flagged for review."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from synthrelease.metadata.infer import SEQUENCE_REVIEW, infer_metadata, metadata_to_yaml
from synthrelease.metadata.infer_sequences import draft_alphabet, looks_like_sequences, sequence_alphabet
from synthrelease.metadata.schema import Metadata
from synthrelease.modalities.sequence.draft import draft_fasta_metadata

PEPTIDES = Path(str(resources.files("synthrelease") / "data" / "peptides.csv"))


def _random_words(letters: str, n: int, low: int, high: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(letters), int(rng.integers(low, high + 1)))) for _ in range(n)]


def test_the_demo_peptides_draft_as_a_sequence_table_flagged_for_review():
    df = pd.read_csv(PEPTIDES)
    meta = infer_metadata(df, name="peptides")
    spec = meta.columns["sequence"]
    lengths = df["sequence"].str.len()
    assert (spec.type, spec.alphabet, spec.min_length, spec.max_length) == (
        "sequence", "protein", lengths.min(), lengths.max())
    assert meta.columns["peptide_id"].type == "identifier"  # pep0001: digits, not letters
    assert meta.target == "activity" and meta.modality == "sequence" and meta.reviewed is False
    text = metadata_to_yaml(meta, draft=True)
    comment = text.index("# REVIEW: alphabet, min_length and max_length")
    assert comment < text.index("\n  sequence:\n") and "PRIVATE" in text[comment:text.index("\n  sequence:\n")]
    assert "reviewed: false" in text and "read" in text.splitlines()[2]  # the draft header's wording stays
    assert Metadata.model_validate(yaml.safe_load(text)) == meta  # the comment is a comment: reads back equal
    assert "REVIEW" not in metadata_to_yaml(meta, draft=False)
    assert SEQUENCE_REVIEW.startswith("REVIEW")


@pytest.mark.parametrize(("values", "expected"), [
    (_random_words("ACGT", 60, 12, 30), "dna"),
    ([w.lower() for w in _random_words("ACGU", 60, 12, 30)], "rna"),  # lower case reads as upper case
    ([*_random_words("ACGT", 60, 30, 30)[:-1], "ACGTNACGTACGTACGTACGTACGTACGTA"], "ACGNT"),  # DNA with a rare N
    (_random_words("ACDEFGHIKLMNPQRSTVWY", 80, 5, 9), "protein"),
])
def test_sequence_columns_get_their_alphabet(values, expected):
    s = pd.Series(values, dtype=object)
    assert looks_like_sequences(s)
    assert sequence_alphabet(s) == expected
    assert infer_metadata(pd.DataFrame({"seq": s})).columns["seq"].alphabet == expected


NOT_SEQUENCES = {
    "ids with digits": [f"pep{i:04d}" for i in range(60)],
    "short codes": _random_words("ACDEFGHIKLMNPQRSTVWY", 60, 2, 4),
    "free text": [f"patient {i} was admitted with fever" for i in range(60)],
    "title-case names": [w.capitalize() for w in _random_words("ACDEFGHIKLMNPQRSTVWY", 60, 6, 9)],
    "a few categories": ["FEMALE", "MALE", "FEMALES"] * 20,
    "distinct english words": ["POSITIVE", "NEGATIVE", "UNKNOWN", "BORDERLINE", "SUSPICIOUS", "RECURRENT", "JOINT",
                               "OUTCOME", "ZONE", "BLOOD", "HEALTHY", "CANCER", "SEVERE", "STABLE", "RELAPSE",
                               "REMISSION", "TUMOUR", "BENIGN", "MALIGNANT", "CHRONIC"],
    "random upper-case ids": _random_words("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 60, 8, 8),
    "a missing value": [*_random_words("ACGT", 59, 10, 20), None],
    "numbers": list(range(60)),
}


@pytest.mark.parametrize("kind", list(NOT_SEQUENCES))
def test_ids_codes_text_and_words_are_not_sequences(kind):
    s = pd.Series(NOT_SEQUENCES[kind])
    assert not looks_like_sequences(s)
    table = pd.DataFrame({"c": s, "age": np.arange(len(s))})  # a table of identifiers only is no dataset
    assert infer_metadata(table).columns["c"].type != "sequence"


def test_a_table_that_cannot_be_a_sequence_table_keeps_the_column_as_an_identifier_with_a_note():
    df = pd.read_csv(PEPTIDES).head(100)
    df["age"] = np.arange(100)
    meta = infer_metadata(df)
    assert meta.modality == "table" and meta.columns["sequence"].type == "identifier"
    assert "'age'" in meta.columns["sequence"].description and "sequence" in meta.columns["sequence"].description


def test_one_sequence_column_per_table_and_an_explicit_target_is_kept():
    df = pd.read_csv(PEPTIDES).head(100)
    df["copy"] = df["sequence"].str[::-1]
    meta = infer_metadata(df, target="activity")
    assert meta.sequence_column == "sequence" and meta.columns["copy"].type == "identifier"
    assert "one sequence column" in meta.columns["copy"].description
    assert meta.target == "activity" and not meta.columns["activity"].description


def test_a_fasta_draft_with_several_header_keys_is_valid(tmp_path):
    path = tmp_path / "x.fasta"
    path.write_text("".join(f">s{i} activity={'ab'[i % 2]} source=lab{i}\nACDEFGHIK\n" for i in range(30)))
    meta = draft_fasta_metadata(path, name="x", target=None)  # used to fail: 'source' is neither label nor id
    assert meta.target == "activity" and meta.columns["source"].type == "identifier"
    assert meta.columns["sequence"].alphabet == "protein"
    assert draft_alphabet(pd.Series(["ACDXFG", "KLM*"])) == "ACDEFGHIKLMNPQRSTVWXY"  # letters outside, written out
