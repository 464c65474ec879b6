"""FASTA reading and writing, alphabets, and the checks of a sequence column."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from synthrelease.errors import DataValidationError, InputFileError
from synthrelease.io.fasta import LINE_WIDTH, read_fasta, write_fasta
from synthrelease.metadata.alphabets import ALPHABETS, check_sequences, resolve_alphabet

LONG = "ACDEFGHIKLMNPQRSTVWY" * 7  # 140 letters: three lines when written


def _one_line_error(excinfo, path) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


# --- reading ---------------------------------------------------------------------------------------------------

def test_read_multiline_records_key_value_headers_and_id_pipe_label(tmp_path):
    path = tmp_path / "peptides.fasta"
    path.write_bytes(b">p1 label=AMP source=frog\r\nGLFDIVKK\r\nVVGALGSL\r\n\r\n"
                     b">p2|nonAMP\nMKTAYIAK\n>p3 source=toad note=a=b\nKK KK\nDD\n>p4\nacgt\n")
    df = read_fasta(path)
    assert list(df.columns) == ["id", "sequence", "label", "source", "note"]
    assert df["id"].tolist() == ["p1", "p2", "p3", "p4"]
    assert df["sequence"].tolist() == ["GLFDIVKKVVGALGSL", "MKTAYIAK", "KKKKDD", "acgt"]  # case kept, lines joined
    assert df["label"].tolist()[:2] == ["AMP", "nonAMP"] and df["label"].isna().tolist() == [False, False, True, True]
    assert df["source"].tolist()[0] == "frog" and pd.isna(df["source"][1]) and df["source"][2] == "toad"
    assert df["note"][2] == "a=b"  # split at the first '='


def test_ids_with_several_pipes_stay_whole(tmp_path):
    path = tmp_path / "u.fa"
    path.write_text(">sp|P12345|NAME_HUMAN\nMKT\n")
    df = read_fasta(path)
    assert df["id"].tolist() == ["sp|P12345|NAME_HUMAN"] and list(df.columns) == ["id", "sequence"]


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("nohead.fasta", b"ACGT\n>a\nACGT\n", "line 1"),
    ("emptyrec.fasta", b">a\nACGT\n>b\n>c\nAC\n", "record 2 (line 3)"),
    ("emptylast.fasta", b">a\nACGT\n\n>b\n\n", "record 2 (line 4)"),
    ("dup.fasta", b">a\nAC\n>b\nAC\n>a\nGG\n", "record 3 (line 5) repeats the id of record 1"),
    ("binary.fasta", b">a\nAC\x00\x01GT\n", "NUL"),
    ("latin.fasta", b">a x=caf\xe9\nACGT\n", "UTF-8"),
    ("empty.fasta", b"", "no FASTA records"),
    ("blank.fasta", b"\n  \n\n", "no FASTA records"),
    ("freetext.fasta", b">a Homo sapiens\nACGT\n", "record 1 (line 1)"),
    ("noid.fasta", b">\nACGT\n", "no id"),
    ("reserved.fasta", b">a sequence=x\nACGT\n", "reserved"),
    ("twice.fasta", b">a k=1 k=2\nACGT\n", "appears twice"),
    ("emptypipe.fasta", b">a|\nACGT\n", "empty part"),
    ("table.csv", b">a\nACGT\n", "accepted extensions"),
])
def test_bad_fasta_files_are_refused_in_one_line_naming_the_file(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputFileError) as excinfo:
        read_fasta(path)
    assert expected in _one_line_error(excinfo, path)


def test_missing_and_corrupt_gzip_files_are_refused(tmp_path):
    with pytest.raises(InputFileError) as excinfo:
        read_fasta(tmp_path / "absent.fa")
    assert "not found" in _one_line_error(excinfo, tmp_path / "absent.fa")
    bad = tmp_path / "bad.fa.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(InputFileError) as excinfo:
        read_fasta(bad)
    _one_line_error(excinfo, bad)


def test_error_messages_never_show_sequences_or_ids(tmp_path):
    path = tmp_path / "private.fasta"
    path.write_text(">SECRETID1\nMKTAYIAKQR\n>SECRETID1\nWWWWHHHHCC\n")
    with pytest.raises(InputFileError) as excinfo:
        read_fasta(path)
    msg = str(excinfo.value)
    assert "SECRETID1" not in msg and "MKTAYIAKQR" not in msg and "WWWW" not in msg


# --- writing ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["out.fasta", "out.faa", "out.fa.gz"])
def test_write_then_read_round_trips(tmp_path, name):
    df = pd.DataFrame({"seq": [LONG, "KK", "ACDE" * 15], "label": ["AMP", "nonAMP", None],
                       "mic": [1.5, np.nan, 3.0], "name": ["x1", "x2", "x3"]})
    path = write_fasta(tmp_path / name, df, sequence_column="seq", id_column="name", header_columns=("label", "mic"))
    back = read_fasta(path)
    assert back["id"].tolist() == ["x1", "x2", "x3"]
    assert back["sequence"].tolist() == df["seq"].tolist()
    assert back["label"].tolist()[:2] == ["AMP", "nonAMP"] and pd.isna(back["label"][2])
    assert back["mic"][0] == "1.5" and pd.isna(back["mic"][1])
    assert [p.name for p in tmp_path.iterdir()] == [name]  # atomic: no temporary file left
    if not name.endswith(".gz"):
        lines = path.read_text().splitlines()
        assert lines[0] == ">x1 label=AMP mic=1.5" and lines[4] == ">x2 label=nonAMP"
        assert [len(x) for x in lines[1:4]] == [LINE_WIDTH, LINE_WIDTH, len(LONG) - 2 * LINE_WIDTH]
        assert lines[-1] == "ACDE" * 15  # exactly 60 letters: one line
    else:
        assert gzip.decompress(path.read_bytes()).startswith(b">x1 ")


def test_write_default_ids_and_round_trip_without_headers(tmp_path):
    df = pd.DataFrame({"s": ["ACGT", "GGCC"], "label": ["a", "b"]})
    path = write_fasta(tmp_path / "syn.fna", df, sequence_column="s")
    back = read_fasta(path)
    assert back["id"].tolist() == ["syn-0", "syn-1"] and back["sequence"].tolist() == ["ACGT", "GGCC"]
    assert list(back.columns) == ["id", "sequence"]


@pytest.mark.parametrize(("frame", "kwargs", "expected"), [
    (pd.DataFrame({"s": ["AC", None]}), {}, "row 2"),
    (pd.DataFrame({"s": ["AC", "A C"]}), {}, "row 2"),
    (pd.DataFrame({"s": ["AC", "GG"], "i": ["a", "a"]}), {"id_column": "i"}, "row 2: id repeats"),
    (pd.DataFrame({"s": ["AC", "GG"], "i": ["a", "b|c"]}), {"id_column": "i"}, "row 2: id"),
    (pd.DataFrame({"s": ["AC"], "k": ["two words"]}), {"header_columns": ("k",)}, "row 1: column 'k'"),
    (pd.DataFrame({"s": []}), {}, "no rows"),
])
def test_write_refuses_rows_that_would_not_read_back(tmp_path, frame, kwargs, expected):
    with pytest.raises(DataValidationError, match=expected):
        write_fasta(tmp_path / "x.fasta", frame, sequence_column="s", **kwargs)
    assert not list(tmp_path.iterdir())


def test_write_refuses_bad_arguments(tmp_path):
    df = pd.DataFrame({"s": ["AC"], "id": ["z"]})
    with pytest.raises(ValueError, match="accepted extensions"):
        write_fasta(tmp_path / "x.txt", df, sequence_column="s")
    with pytest.raises(ValueError, match="not in the table"):
        write_fasta(tmp_path / "x.fa", df, sequence_column="nope")
    with pytest.raises(ValueError, match="header key"):
        write_fasta(tmp_path / "x.fa", df, sequence_column="s", header_columns=("id",))


# --- alphabets and checks --------------------------------------------------------------------------------------

def test_resolve_alphabet():
    assert resolve_alphabet("protein") == ALPHABETS["protein"] and resolve_alphabet(" DNA ") == "ACGT"
    assert resolve_alphabet("rna") == "ACGU"
    assert resolve_alphabet("TGCAN") == "ACGNT"
    assert resolve_alphabet(resolve_alphabet("TGCAN")) == "ACGNT"
    for bad in ("AACG", "acgt", "", "AC-GT", "AC GT"):
        with pytest.raises(ValueError):
            resolve_alphabet(bad)


def test_check_sequences_cleans_and_clips():
    s = pd.Series([" acgt ", "GGGGGGGG", "ac"], index=[10, 20, 30], name="seq")
    out = check_sequences(s, "dna", min_length=2, max_length=5, too_long="clip", source="x.csv", column="seq")
    assert out.tolist() == ["ACGT", "GGGGG", "AC"] and out.index.tolist() == [10, 20, 30] and out.name == "seq"
    assert s.tolist()[0] == " acgt "  # input untouched


@pytest.mark.parametrize(("bad", "problem"), [
    (None, "missing sequence"), (np.nan, "missing sequence"), ("   ", "empty sequence"), (17, "not a text value"),
    ("GATTACAXQZ", "letter outside the alphabet"), ("GA TTACA", "letter outside the alphabet"),
    ("G", "shorter than the minimum length 2"), ("GATTACAGATTACA", "longer than the maximum length 10"),
])
def test_check_sequences_refusals_name_source_column_and_first_row_never_the_sequence(bad, problem):
    s = pd.Series(["ACGT", "ACGTAC", bad, "ACG", bad], index=[5, 6, 7, 8, 9])
    with pytest.raises(DataValidationError) as excinfo:
        check_sequences(s, "dna", min_length=2, max_length=10, source="train.fasta", column="dna_seq")
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert msg.startswith("train.fasta: column 'dna_seq', row 3: ") and problem in msg  # 1-based position, not index
    assert "2 bad row(s)" in msg
    if isinstance(bad, str) and bad.strip():
        assert bad.strip() not in msg and "X" not in msg.replace("train.fasta", "")


def test_check_sequences_argument_errors():
    s = pd.Series(["ACGT"])
    with pytest.raises(ValueError, match="too_long"):
        check_sequences(s, "dna", min_length=1, max_length=5, too_long="drop", source="f", column="c")
    with pytest.raises(ValueError, match="min_length"):
        check_sequences(s, "dna", min_length=6, max_length=5, source="f", column="c")


def test_a_gzip_bomb_is_refused_without_decompressing_it_whole(tmp_path, monkeypatch):
    """Issue 26.5: a 2 MB .fasta.gz holding 1 GiB took 4.6 GB; the text read is bounded."""
    import gzip

    from synthrelease.errors import InputFileError
    from synthrelease.io import fasta

    monkeypatch.setattr(fasta, "MAX_FASTA_BYTES", 1 << 20)  # 1 MiB here; 512 MiB shipped
    path = tmp_path / "bomb.fasta.gz"
    with gzip.open(path, "wb") as f:
        f.write(b">a\n" + b"A" * (4 << 20) + b"\n")
    with pytest.raises(InputFileError, match=r"bomb\.fasta\.gz: decompresses to more than 1 MiB"):
        fasta.read_fasta(path)


@pytest.mark.parametrize("name", ["out.fasta", "out.fa.gz"])
def test_a_stream_of_chunks_writes_what_write_fasta_writes(tmp_path, name):
    from synthrelease.io.fasta import write_fasta_stream

    df = pd.DataFrame({"seq": [LONG, "KK", "ACDE" * 15, "MKT"], "label": ["AMP", "nonAMP", None, "AMP"]})
    write_fasta(tmp_path / f"whole-{name}", df, sequence_column="seq", header_columns=("label",))
    chunks = [df.iloc[:1], df.iloc[1:1], df.iloc[1:3], df.iloc[3:]]
    assert write_fasta_stream(tmp_path / name, iter(chunks), sequence_column="seq", header_columns=("label",)) == 4
    back = read_fasta(tmp_path / name)
    assert back["id"].tolist() == [f"syn-{i}" for i in range(4)] and back["sequence"].tolist() == df["seq"].tolist()
    streamed, whole = (tmp_path / name).read_bytes(), (tmp_path / f"whole-{name}").read_bytes()
    if name.endswith(".gz"):
        streamed, whole = gzip.decompress(streamed), gzip.decompress(whole)
    assert streamed == whole


def test_a_stream_that_fails_leaves_no_file(tmp_path):
    from synthrelease.io.fasta import write_fasta_stream

    def chunks():
        yield pd.DataFrame({"seq": ["ACDE"]})
        yield pd.DataFrame({"seq": ["AC DE"]})  # row 2: whitespace

    with pytest.raises(DataValidationError, match="row 2"):
        write_fasta_stream(tmp_path / "x.fasta", chunks(), sequence_column="seq")
    with pytest.raises(DataValidationError, match="no rows"):
        write_fasta_stream(tmp_path / "y.fasta", iter([]), sequence_column="seq")
    assert list(tmp_path.iterdir()) == []
