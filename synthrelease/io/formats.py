"""Table formats for input and output: CSV, TSV, Parquet and AnnData (``.h5ad``).

One entry point reads a user's table into a :class:`pandas.DataFrame` and reports the
:class:`TableFormat` it came in, and one writes a DataFrame back in that format, atomically.

Guarantees:

* Every malformed input raises :class:`~synthrelease.errors.InputFileError` with a one-line
  message that names the file (and the format); no traceback, no cell values.
* An ``.h5ad`` file is read through ``anndata``'s backed mode and its ``X`` matrix is copied
  into one preallocated float32 array in chunks of :data:`H5AD_CHUNK_ROWS` rows (or the
  equivalent number of columns for CSC): peak memory is the dense float32 result
  (``n_obs × n_vars × 4`` bytes) plus ``obs`` plus one chunk of ``X`` as stored, never a
  second dense copy (the DataFrame wraps the array without copying it).
* Synthetic ``.h5ad`` output never reuses the input's cell ids: its ``obs`` index is
  ``syn-0``, ``syn-1``, ...
* Every write goes to a temporary file in the target's folder and is renamed into place.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from synthrelease.errors import InputFileError
from synthrelease.io.delimited import write_delimited
from synthrelease.io.files import atomic_output
from synthrelease.io.spill import release_mapped_pages

if TYPE_CHECKING:  # anndata is imported lazily: only .h5ad work pays for it
    import anndata

FormatKind = Literal["csv", "tsv", "parquet", "h5ad"]

KINDS: tuple[str, ...] = ("csv", "tsv", "parquet", "h5ad")
"""Every :attr:`TableFormat.kind`."""

ACCEPTED = ".csv, .tsv, .parquet, .h5ad"
"""The accepted extensions, as named in error messages."""

H5AD_CHUNK_ROWS = 10_000
"""Rows of ``X`` densified at a time when an AnnData matrix is copied into the table."""

SYNTHETIC_OBS_PREFIX = "syn-"
"""Prefix of the fresh ``obs`` index written for synthetic cells (``syn-0``, ``syn-1``, ...)."""

OBS_ID_DEFAULT = "obs_id"
"""Column that holds the ``obs`` index (cell ids) when the index has no name."""

SPARSE_ZERO_SHARE = 0.5
"""A written ``X`` is stored as CSR when more than this share of its values are zero."""

_SUFFIX = {"csv": ".csv", "tsv": ".tsv", "parquet": ".parquet", "h5ad": ".h5ad"}
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
_TEXT_EXT = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": None}
_BINARY_EXT = {".parquet": "parquet", ".pq": "parquet", ".h5ad": "h5ad"}
_SPREADSHEET_EXT = {".xlsx", ".xls", ".xlsm", ".xlsb", ".ods"}
_SEP_ALIASES = {"\\t": "\t", "tab": "\t"}  # a shell passes --sep '\t' as backslash + t


@dataclass(frozen=True)
class TableFormat:
    """How a table is stored on disk.

    Attributes:
        kind: ``"csv"``, ``"tsv"``, ``"parquet"`` or ``"h5ad"``.
        sep: field separator of ``csv``/``tsv`` (``","``/``"\\t"`` or an explicit ``--sep``);
            ignored by the binary kinds.
        obs_columns: ``h5ad`` only: the DataFrame columns that came from ``obs`` (the cell-id
            column first, when there was one), in order.
        var_names: ``h5ad`` only: the DataFrame columns that came from ``X``, one per gene, in
            the file's ``var_names`` order.
        obs_id_column: ``h5ad`` only: which of ``obs_columns`` holds the input's ``obs`` index
            (real cell ids; declare it an identifier), or None.
    """

    kind: FormatKind
    sep: str = ","
    obs_columns: tuple[str, ...] = ()
    var_names: tuple[str, ...] = ()
    obs_id_column: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown table format kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(self.sep, str) or not self.sep:
            raise ValueError("sep must be a non-empty string")
        object.__setattr__(self, "obs_columns", tuple(str(c) for c in self.obs_columns))
        object.__setattr__(self, "var_names", tuple(str(c) for c in self.var_names))
        if self.kind != "h5ad" and (self.obs_columns or self.var_names):
            raise ValueError("obs_columns and var_names belong to the h5ad format only")

    @property
    def suffix(self) -> str:
        """The canonical file extension: ``.csv``, ``.tsv``, ``.parquet`` or ``.h5ad``."""
        return _SUFFIX[self.kind]

    def restricted_to(self, columns: Collection[str]) -> TableFormat:
        """This layout naming only ``columns`` (e.g. the public metadata's): ``obs_columns`` and
        ``var_names`` filtered, ``obs_id_column`` kept only when it is one of them."""
        keep = set(columns)
        return TableFormat(self.kind, self.sep, tuple(c for c in self.obs_columns if c in keep),
                           tuple(g for g in self.var_names if g in keep),
                           self.obs_id_column if self.obs_id_column in keep else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (:meth:`from_dict` reads them back)."""
        return {"kind": self.kind, "sep": self.sep, "obs_columns": list(self.obs_columns),
                "var_names": list(self.var_names), "obs_id_column": self.obs_id_column}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TableFormat:
        """The layout :meth:`to_dict` wrote.

        Raises:
            ValueError: an unknown kind, an empty separator, or fields of the wrong type.
        """
        obs_id = d.get("obs_id_column")
        if obs_id is not None and not isinstance(obs_id, str):
            raise ValueError("obs_id_column must be a string or null")
        names = [d.get("obs_columns", []), d.get("var_names", [])]
        if not all(isinstance(n, list) and all(isinstance(c, str) for c in n) for n in names):
            raise ValueError("obs_columns and var_names must be lists of strings")
        return cls(d["kind"], d.get("sep", ","), tuple(names[0]), tuple(names[1]), obs_id)


def _split_suffix(path: Path) -> tuple[str, str | None]:
    """(format extension, compression method or None), both lower-case; ``x.csv.gz`` → (".csv", "gzip")."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSION and suffixes[-2] in _TEXT_EXT:
        return suffixes[-2], _COMPRESSION[suffixes[-1]]
    return (suffixes[-1] if suffixes else ""), None


def separator_problem(sep: str) -> str | None:
    """Why ``sep`` cannot separate the fields of delimited text, or None: one character, not a line
    break, quote, letter or digit (pandas reads a longer one as a regular expression, slowly and with a
    warning, and a letter or line break splits the values themselves)."""
    if len(sep) != 1:
        return "must be one character (e.g. ',', ';', '|' or '\\t')"
    if sep in "\r\n\"'" or sep.isalnum():
        return "cannot separate fields (a line break, a quote, a letter or a digit); use e.g. ',', ';', '|' or '\\t'"
    return None


def detect_format(path: str | os.PathLike[str], sep: str | None = None) -> TableFormat:
    """The :class:`TableFormat` of ``path``, from its extension (case-insensitive) alone.

    ``.csv`` → comma-separated; ``.tsv``/``.tab`` → tab-separated; ``.txt`` → delimited text,
    only with an explicit ``sep``; ``.parquet``/``.pq`` → Parquet; ``.h5ad`` → AnnData. Delimited
    text may be compressed (``.csv.gz``, ``.tsv.bz2``, ...). An explicit ``sep`` (the CLI's
    ``--sep``; the two characters ``\\t`` and the word ``tab`` mean a tab) makes any
    ``.csv``/``.tsv``/``.tab``/``.txt`` file delimited text with that separator (kind ``"tsv"``
    for a tab, else ``"csv"``); binary formats ignore it. The file is not opened.

    Raises:
        InputFileError: a spreadsheet (``.xlsx``, ``.xls``, ``.ods``), ``.txt`` without ``sep``,
            or any other extension; the message names the path and the accepted formats.
    """
    p = Path(path)
    ext, _ = _split_suffix(p)
    if ext in _SPREADSHEET_EXT:
        what = "spreadsheet (.ods)" if ext == ".ods" else "Excel"
        raise InputFileError(f"{p}: {what} files are not accepted; save the sheet as CSV (accepted: {ACCEPTED})")
    if ext in _BINARY_EXT:
        return TableFormat(_BINARY_EXT[ext])  # type: ignore[arg-type]
    if ext in _TEXT_EXT:
        chosen = _SEP_ALIASES.get(sep, sep) if sep is not None else _TEXT_EXT[ext]
        if chosen is None:
            raise InputFileError(f"{p}: a .txt table needs an explicit separator (--sep ',' or --sep '\\t'); "
                                 f"accepted: {ACCEPTED}")
        if chosen == "":
            raise InputFileError(f"{p}: the separator must not be empty")
        problem = separator_problem(chosen)
        if problem:
            raise InputFileError(f"{p}: --sep {chosen!r} {problem}")
        return TableFormat("tsv" if chosen == "\t" else "csv", sep=chosen)
    shown = f"extension {ext!r}" if ext else "no extension"
    raise InputFileError(f"{p}: unknown table format ({shown}); accepted: {ACCEPTED} "
                         "(.tab, .pq, and .txt with --sep also work)")


def read_format(path: str | os.PathLike[str], sep: str | None = None) -> TableFormat:
    """The :class:`TableFormat` :func:`read_table_as` reports for ``path``, without reading its rows:
    an ``.h5ad`` file is opened in backed mode for its ``obs`` columns, cell-id column and
    ``var_names`` (``X`` is not read); other formats come from the extension alone.

    Raises:
        InputFileError: as :func:`detect_format`, or an unreadable ``.h5ad`` file.
    """
    p = Path(path)
    fmt = detect_format(p, sep)
    if fmt.kind != "h5ad":
        return fmt
    ad = _anndata()
    try:
        adata = ad.read_h5ad(p, backed="r")
    except Exception as e:  # h5py/anndata raise OSError, KeyError, ...
        raise InputFileError(f"{p}: cannot parse h5ad table: {type(e).__name__}") from None
    try:
        obs_cols = tuple(str(c) for c in adata.obs.columns)
        id_col = str(adata.obs.index.name) if adata.obs.index.name is not None else OBS_ID_DEFAULT
        return TableFormat("h5ad", obs_columns=((id_col,) if id_col not in obs_cols else ()) + obs_cols,
                           var_names=tuple(str(v) for v in adata.var_names), obs_id_column=id_col)
    finally:
        file = getattr(adata, "file", None)
        if file is not None:
            file.close()


def read_table_as(path: str | os.PathLike[str], sep: str | None = None, *,
                  chunk_rows: int | None = None,
                  x_dtype: np.dtype[Any] | type = np.float32) -> tuple[pd.DataFrame, TableFormat]:
    """Read a user's table and report its format.

    CSV/TSV are parsed with ``pd.read_csv(sep=..., skipinitialspace=True)`` (pandas' own type
    inference, nothing more); Parquet with ``pd.read_parquet``; ``.h5ad`` with ``anndata`` in
    backed mode (see :func:`frame_from_anndata` for the column layout; gene columns are
    float32).

    Args:
        path: the table; its format comes from :func:`detect_format`.
        sep: explicit separator for delimited text (the CLI's ``--sep``).
        chunk_rows: ``.h5ad`` only: rows densified at a time (default :data:`H5AD_CHUNK_ROWS`).
        x_dtype: ``.h5ad`` only: the gene columns' dtype (float32, or float16 for a metadata's
            ``float_storage: float16``; each chunk is converted as it is densified).

    Raises:
        InputFileError: one line naming the file: not found, an unaccepted format, unparsable
            (``cannot parse <kind> table: <ExceptionType>``), empty (no rows or no columns),
            a tab-/comma-/semicolon-separated file read with the wrong separator, or an AnnData
            file whose gene names repeat or clash with an ``obs`` column.
    """
    p = Path(path)
    if p.is_dir():
        raise InputFileError(f"{p}: a folder, not a data file ({ACCEPTED}; a folder holds image tiles only "
                             "with image metadata)")
    if not p.is_file():
        raise InputFileError(f"{p}: data file not found")
    fmt = detect_format(p, sep)
    if fmt.kind == "h5ad":
        return _read_h5ad(p, chunk_rows or H5AD_CHUNK_ROWS, x_dtype)
    try:
        if fmt.kind == "parquet":
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, sep=fmt.sep, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputFileError(f"{p}: table has no rows or no columns") from None
    except ImportError as e:  # e.g. .zst needs the optional 'zstandard' package
        import re

        named = re.search(r"'([A-Za-z0-9_.-]+)'", str(e))
        package = e.name or (named.group(1) if named else "that the compression needs")
        raise InputFileError(f"{p}: reading this compressed file needs the Python package '{package}', which is not "
                             "installed: decompress the file first, or install that package") from None
    except Exception as e:  # any parser failure is bad input, named by file
        hint = _separator_hint(p, fmt, None)
        raise InputFileError(hint or f"{p}: cannot parse {fmt.kind} table: {type(e).__name__}") from None
    if fmt.kind in ("csv", "tsv") and df.shape[1] == 1:
        hint = _separator_hint(p, fmt, str(df.columns[0]))
        if hint:
            raise InputFileError(hint)
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise InputFileError(f"{p}: table has no rows or no columns")
    return df, fmt


_SEP_NAMES = {"\t": ("tab", "use a .tsv extension or --sep '\\t'"),
              ",": ("comma", "use a .csv extension or --sep ','"),
              ";": ("semicolon", "use --sep ';'")}


def _separator_hint(p: Path, fmt: TableFormat, header: str | None) -> str | None:
    """A one-line 'looks X-separated' message when the header line holds another separator.

    ``header`` is the single column name pandas found; None means "sniff the first line of the
    file" (after a parser error; skipped for compressed files).
    """
    if fmt.kind not in ("csv", "tsv"):
        return None
    if header is None:
        if _split_suffix(p)[1] is not None:
            return None
        try:
            with open(p, encoding="utf-8", errors="replace") as f:
                header = f.readline(1 << 16)
        except OSError:
            return None
        if fmt.sep in header:
            return None
    for other, (name, advice) in _SEP_NAMES.items():
        if other != fmt.sep and other in header:
            return f"{p}: looks {name}-separated; {advice}"
    return None


# --------------------------------------------------------------------------------------- AnnData


def _anndata() -> Any:
    try:
        import anndata
    except ImportError:  # a declared dependency; only a broken install lands here
        raise InputFileError("reading or writing .h5ad needs the 'anndata' package (pip install anndata)") from None
    return anndata


def _read_h5ad(p: Path, chunk_rows: int, x_dtype: Any = np.float32) -> tuple[pd.DataFrame, TableFormat]:
    ad = _anndata()
    try:
        with warnings.catch_warnings():
            # repeated cell ids are harmless here (they become a column); repeated genes are refused below
            warnings.filterwarnings("ignore", "(Observation|Variable) names are not unique", UserWarning)
            adata = ad.read_h5ad(p, backed="r")
    except MemoryError:
        raise InputFileError(f"{p}: the h5ad file's obs/var tables do not fit in memory") from None
    except Exception:
        raise InputFileError(f"{p}: {_h5ad_problem(p)}") from None
    try:
        return _frame(adata, str(p), chunk_rows, x_dtype)
    except InputFileError:
        raise
    except ValueError as e:  # e.g. a corrupt sparse structure (_check_sparse): say what is wrong
        raise InputFileError(f"{p}: cannot read h5ad table: {str(e)[:200] or type(e).__name__}") from None
    except MemoryError:
        raise InputFileError(f"{p}: the h5ad table's X matrix does not fit in memory") from None
    except Exception:  # a truncated dataset, an unreadable chunk, ...
        raise InputFileError(f"{p}: {_h5ad_problem(p)}") from None
    finally:
        file = getattr(adata, "file", None)
        if file is not None:
            file.close()


H5AD_ELEMENTS = ("obs", "var", "X")


def _h5ad_problem(p: Path) -> str:
    """What is wrong with an .h5ad file anndata could not read, in words (never a value of it)."""
    import h5py

    try:
        if not h5py.is_hdf5(p):
            return "not an HDF5 file (an .h5ad file is the HDF5 file AnnData writes)"
        with h5py.File(p, "r") as f:
            missing = [name for name in H5AD_ELEMENTS if name not in f]
            if missing:
                return (f"an HDF5 file without AnnData's {', '.join(repr(m) for m in missing)} "
                        "(not an .h5ad written by anndata)")
            unknown = [name for name in H5AD_ELEMENTS if "encoding-type" not in f[name].attrs
                       and isinstance(f[name], h5py.Group)]
            if unknown:
                return f"AnnData element {unknown[0]!r} has no encoding-type (not written by anndata?)"
    except OSError:
        return "a damaged or truncated HDF5 file (an HDF5 block cannot be read)"
    except Exception:
        return "a damaged HDF5 file"
    return ("an .h5ad whose obs, var or X this anndata cannot decode (an unknown encoding, damaged or "
            "truncated data)")


def frame_from_anndata(adata: anndata.AnnData, *, chunk_rows: int | None = None,
                       x_dtype: Any = np.float32) -> tuple[pd.DataFrame, TableFormat]:
    """The table of an in-memory (or backed) AnnData object, and its ``h5ad`` TableFormat.

    Columns, in order: the ``obs`` index (cell ids) as a column named after the index, or
    ``obs_id`` when unnamed (left out when an ``obs`` column of that name already holds the same
    values); the ``obs`` columns (categoricals become plain values, as a CSV read would give);
    then one float32 column per gene in ``var_names`` order, copied from ``X`` (dense, CSR or
    CSC) in chunks. The frame never shares memory with ``adata``. ``layers``, ``raw``, ``obsm``
    and ``uns`` are not read.

    Raises:
        InputFileError: repeated gene names, a gene name equal to an ``obs`` column, a cell-id
            column that clashes with an ``obs`` column, no ``X`` with genes, or no cells/columns.
    """
    return _frame(adata, "AnnData object", chunk_rows or H5AD_CHUNK_ROWS, x_dtype)


def _plain(series: pd.Series) -> pd.Series:
    """A categorical ``obs`` column as plain values (strings stay objects, numbers become numbers)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype(object).infer_objects()
    return series


def _frame(adata: Any, source: str, chunk_rows: int, x_dtype: Any = np.float32) -> tuple[pd.DataFrame, TableFormat]:
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    n_obs, n_vars = (int(x) for x in adata.shape)
    var_names = [str(v) for v in adata.var_names]
    obs = adata.obs
    obs_cols = [str(c) for c in obs.columns]
    seen: set[str] = set()
    for g in var_names:
        if g in seen:
            raise InputFileError(f"{source}: gene name {g!r} appears more than once in var_names; "
                                 "make var_names unique")
        seen.add(g)
    clash = next((c for c in obs_cols if c in seen), None)
    if clash is not None:
        raise InputFileError(f"{source}: gene name {clash!r} is also an obs column; rename one of them")

    id_col = str(obs.index.name) if obs.index.name is not None else OBS_ID_DEFAULT
    if id_col in seen:
        raise InputFileError(f"{source}: the cell-id column {id_col!r} (the obs index) is also a gene name; "
                             "rename the obs index")
    ids = np.asarray(obs.index, dtype=object)
    add_ids = id_col not in obs_cols
    if not add_ids and not np.array_equal(np.asarray(obs[id_col], dtype=object), ids):
        raise InputFileError(f"{source}: the cell-id column {id_col!r} (the obs index) clashes with an obs "
                             "column of that name holding other values; rename one of them")
    if n_obs == 0 or (n_vars == 0 and not obs_cols):
        raise InputFileError(f"{source}: table has no rows or no columns")

    index = pd.RangeIndex(n_obs)
    columns: dict[str, Any] = {id_col: ids} if add_ids else {}
    for c, name in zip(obs.columns, obs_cols, strict=True):
        columns[name] = _plain(obs[c]).reset_index(drop=True)
    obs_frame = pd.DataFrame(columns, index=index, copy=True)  # never a view of adata.obs
    genes = _dense_x(adata, source, n_obs, n_vars, chunk_rows, x_dtype)
    gene_frame = pd.DataFrame(genes, index=index, columns=pd.Index(var_names, dtype=object), copy=False)
    df = pd.concat([obs_frame, gene_frame], axis=1, copy=False)
    fmt = TableFormat("h5ad", obs_columns=tuple(obs_frame.columns), var_names=tuple(var_names),
                      obs_id_column=id_col)
    return df, fmt


def _dense_x(adata: Any, source: str, n_obs: int, n_vars: int, chunk_rows: int,
             dtype: Any = np.float32) -> np.ndarray:
    """``X`` as one ``dtype`` (float32 or float16) array [n_obs, n_vars], filled chunk by chunk.

    CSR and dense ``X``: a row-major array filled in chunks of ``chunk_rows`` rows; CSC: a
    column-major array filled in column chunks of about as many values. Sparse chunks are
    densified straight into their slice of the result (``toarray(out=...)``), so the only
    allocation besides the result is one sparse chunk.
    """
    X = adata.X
    _check_x(X, source, n_obs, n_vars)
    csc = getattr(X, "format", None) == "csc"
    out = np.empty((n_obs, n_vars), dtype=dtype, order="F" if csc else "C")
    if n_vars == 0:
        return out
    if X is None:
        raise InputFileError(f"{source}: has {n_vars} genes but no X matrix")
    if csc:
        step = max(1, (chunk_rows * n_vars) // max(n_obs, 1))
        for k in range(0, n_vars, step):
            _fill(out[:, k:k + step], X[:, k:k + step])
    else:
        for i in range(0, n_obs, chunk_rows):
            _fill(out[i:i + chunk_rows], X[i:i + chunk_rows])
    return out


_KIND_WORDS = {"S": "byte strings", "U": "text", "O": "Python objects", "c": "complex numbers",
               "M": "dates", "m": "time spans", "V": "raw records"}


def _check_x(X: Any, source: str, n_obs: int, n_vars: int) -> None:
    """Refuse an ``X`` whose shape disagrees with obs/var or whose values are not numbers."""
    if X is None:
        return
    shape = tuple(int(d) for d in getattr(X, "shape", ()))
    if shape != (n_obs, n_vars):
        raise InputFileError(f"{source}: X has shape {shape}, but obs has {n_obs} rows and var {n_vars} genes")
    dtype = np.dtype(getattr(X, "dtype", np.float64))
    if dtype.kind not in "biuf":
        kind = _KIND_WORDS.get(dtype.kind, "values of another kind")
        raise InputFileError(f"{source}: X holds {kind}, not numbers")


def _check_sparse(block: Any, shape: tuple[int, ...]) -> None:
    """Refuse a sparse chunk whose structure is corrupt before scipy densifies it (out-of-range
    indices make scipy's C code write outside the array: a segmentation fault, not an error).

    Raises:
        ValueError: index pointers not monotone or not spanning the data, or an index out of range.
    """
    indices, indptr = getattr(block, "indices", None), getattr(block, "indptr", None)
    if indices is None or indptr is None:
        return
    minor = shape[1] if getattr(block, "format", "csr") == "csr" else shape[0]
    if len(indptr) == 0 or indptr[0] != 0 or indptr[-1] != len(indices) or np.any(np.diff(indptr) < 0):
        raise ValueError("corrupt sparse X: index pointers do not span its values")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= minor):
        raise ValueError("corrupt sparse X: a column index lies outside the matrix")


def _fill(view: np.ndarray, block: Any) -> None:
    """Copy a dense or sparse block of ``X`` into ``view`` (a contiguous slice of the result)."""
    if not hasattr(block, "toarray"):
        view[...] = np.asarray(block)
        return
    _check_sparse(block, view.shape)
    if view.dtype != np.float32:  # float16: scipy cannot densify into it; convert the chunk
        view[...] = block.toarray()
        return
    try:
        block.astype(np.float32, copy=False).toarray(out=view)
    except (TypeError, ValueError):  # a sparse type without out= support
        view[...] = block.toarray()


def anndata_from_frame(df: pd.DataFrame, fmt: TableFormat, *, first_index: int = 0) -> anndata.AnnData:
    """An AnnData object for a (synthetic) table laid out as ``fmt`` describes.

    ``X``: the columns in ``fmt.var_names`` that ``df`` has, as float32, stored as CSR when more
    than half of the values are zero (:data:`SPARSE_ZERO_SHARE`), else dense; ``var`` index:
    those gene names. ``obs``: the ``fmt.obs_columns`` that ``df`` has, then every other column
    of ``df``, in table order, except ``fmt.obs_id_column``: the input's cell ids are never
    written. The ``obs`` index is fresh (``syn-0``, ``syn-1``, ...; from ``syn-<first_index>`` for a
    later chunk of a stream; named ``fmt.obs_id_column`` so a re-read yields the input's column
    layout), so synthetic cells never carry real ids.

    Raises:
        ValueError: a gene column is not numeric.
    """
    ad = _anndata()
    present = {str(c): c for c in df.columns}
    genes = [g for g in fmt.var_names if g in present]
    gene_set = set(genes)
    obs_names = [c for c in fmt.obs_columns if c in present and c != fmt.obs_id_column]
    declared = {*obs_names, fmt.obs_id_column}
    obs_names += [c for c in present if c not in gene_set and c not in declared]
    n = len(df)
    index = pd.Index([f"{SYNTHETIC_OBS_PREFIX}{i}" for i in range(first_index, first_index + n)], dtype=object)
    obs = df[[present[c] for c in obs_names]].copy()
    obs.columns = pd.Index(obs_names, dtype=object)
    obs.index = index
    obs.index.name = fmt.obs_id_column  # so a re-read names the (synthetic) id column as the input did
    obs = obs.infer_objects()  # object columns of numbers (e.g. after a concat) become numbers
    positions = [df.columns.get_loc(present[g]) for g in genes]
    try:
        for g in genes:  # numbers only, before anything is allocated
            if not pd.api.types.is_numeric_dtype(df[present[g]].dtype) and len(df):
                df[present[g]].to_numpy(dtype=np.float32)
        nonzero = [np.count_nonzero(df[present[g]].to_numpy()) for g in genes]
    except (TypeError, ValueError) as e:
        raise ValueError(f"gene columns must be numeric to write .h5ad: {type(e).__name__}") from None
    size = n * len(genes)
    X: Any
    if size and sum(nonzero) < (1 - SPARSE_ZERO_SHARE) * size:
        X = _csr_in_row_blocks(df, positions, int(sum(nonzero)))
    else:
        X = np.empty((n, len(genes)), dtype=np.float32)
        for lo, hi in _row_blocks(n, len(genes)):
            X[lo:hi] = df.iloc[lo:hi].iloc[:, positions].to_numpy(dtype=np.float32)
            release_mapped_pages()
    var = pd.DataFrame(index=pd.Index(genes, dtype=object))
    return ad.AnnData(X=X, obs=obs, var=var)


WRITE_BLOCK_CELLS = 1 << 24
"""Cells per row block when a wide table is converted for writing (64 MiB as float32)."""


def _row_blocks(n_rows: int, n_columns: int) -> list[tuple[int, int]]:
    step = max(1, WRITE_BLOCK_CELLS // max(1, n_columns))
    return [(lo, min(n_rows, lo + step)) for lo in range(0, n_rows, step)]


def _csr_in_row_blocks(df: pd.DataFrame, positions: list[int], nnz: int) -> Any:
    """float32 CSR of the columns at ``positions``, filled row block by row block into arrays
    allocated once (``nnz`` values): no dense copy of the matrix, no stacking copy."""
    import scipy.sparse as sp

    n = len(df)
    index_type = np.int32 if max(nnz, len(positions)) < 2 ** 31 else np.int64
    data, indices = np.empty(nnz, dtype=np.float32), np.empty(nnz, dtype=index_type)
    indptr = np.zeros(n + 1, dtype=index_type)
    at = 0
    for lo, hi in _row_blocks(n, len(positions)):
        block = df.iloc[lo:hi].iloc[:, positions].to_numpy(dtype=np.float32)
        rows, cols = np.nonzero(block)
        k = len(rows)
        data[at:at + k], indices[at:at + k] = block[rows, cols], cols
        indptr[lo + 1:hi + 1] = at + np.cumsum(np.bincount(rows, minlength=hi - lo))
        at += k
        release_mapped_pages()  # a spilled synthetic table: only this block's pages were resident
    return sp.csr_matrix((data, indices, indptr), shape=(n, len(positions)))


# --------------------------------------------------------------------------------------- writing


def write_table_as(path: str | os.PathLike[str], df: pd.DataFrame, fmt: TableFormat) -> Path:
    """Write ``df`` to ``path`` in format ``fmt`` (whatever the suffix), atomically.

    CSV/TSV: ``fmt.sep``, no index, pandas' default float formatting, compressed when the path
    ends in ``.gz``/``.bz2``/``.xz``/``.zip``/``.zst``. Parquet: no index. ``h5ad``:
    :func:`anndata_from_frame`. The data go to a temporary file in the target's folder that is
    renamed onto ``path`` only when complete; a failure leaves ``path`` as it was.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    p = Path(path)
    with atomic_output(p) as tmp:
        if fmt.kind == "parquet":
            _write_parquet(tmp, df)
        elif fmt.kind == "h5ad":
            _write_h5ad(tmp, df, fmt)
        else:
            _write_delimited(tmp, df, fmt.sep, _split_suffix(p)[1])
    return p


def _write_delimited(tmp: Path, df: pd.DataFrame, sep: str, compression: str | None) -> None:
    """``df.to_csv`` (no index); uncompressed ones through :func:`synthrelease.io.delimited.write_delimited`
    (row blocks, the same bytes, wide float16 blocks formatted by lookup)."""
    if compression is not None:
        df.to_csv(tmp, sep=sep, index=False, compression=compression)
        return
    write_delimited(tmp, df, sep)


PARQUET_ROW_GROUP_CELLS = 1 << 27
"""Cells per Parquet row group at most (a 20,000-column table: ~6,700 rows per group)."""


def _write_parquet(tmp: Path, df: pd.DataFrame) -> None:
    """``df`` as Parquet (no index) in row groups of at most :data:`PARQUET_ROW_GROUP_CELLS`
    cells, each converted to Arrow on its own: no Arrow copy of a wide table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.Schema.from_pandas(df, preserve_index=False)
    step = max(1, PARQUET_ROW_GROUP_CELLS // max(1, df.shape[1]))
    with pq.ParquetWriter(tmp, schema) as writer:
        for lo in range(0, max(1, len(df)), step):
            group = pa.Table.from_pandas(df.iloc[lo:lo + step], schema=schema, preserve_index=False)
            writer.write_table(group, row_group_size=max(1, group.num_rows))
            release_mapped_pages()


def _write_h5ad(tmp: Path, df: pd.DataFrame, fmt: TableFormat) -> None:
    """Write into ``tmp`` through a sibling that ends in ``.h5ad`` (anndata may insist on the suffix)."""
    adata = anndata_from_frame(df, fmt)
    sibling = tmp.with_name(tmp.name + ".h5ad")
    try:
        adata.write_h5ad(sibling)
        os.replace(sibling, tmp)
    finally:
        if sibling.exists():
            sibling.unlink()


def write_h5ad_stream(path: str | os.PathLike[str], chunks: Iterable[pd.DataFrame], fmt: TableFormat) -> int:
    """Write the rows of ``chunks`` to ``path`` as one AnnData file laid out as ``fmt``
    (:func:`anndata_from_frame`), atomically; returns the rows written.

    ``X`` goes to disk chunk by chunk: stored as CSR when the first chunk is mostly zeros
    (:data:`SPARSE_ZERO_SHARE`; appended with anndata's ``sparse_dataset(...).append``, 64-bit
    index pointers), else dense (a resizable HDF5 dataset). The ``obs`` columns (every column
    that is not a gene) are held in memory and written at the end; the ``obs`` index runs
    ``syn-0``, ``syn-1``, ... across the chunks. A failure leaves ``path`` as it was.

    Raises:
        ValueError: no rows, or a gene column that is not numeric.
    """
    import h5py
    import scipy.sparse as sp
    from anndata.io import sparse_dataset, write_elem

    ad = _anndata()
    p = Path(path)
    with atomic_output(p) as tmp, h5py.File(tmp, "w") as f:
        obs_parts: list[pd.DataFrame] = []
        sparse = False
        n = 0
        for chunk in chunks:
            part = anndata_from_frame(chunk, fmt, first_index=n)
            if n == 0:  # the root, var and the empty mappings by anndata's own writer; obs is rewritten last
                sparse = sp.issparse(part.X)
                write_elem(f, "/", ad.AnnData(obs=part.obs.iloc[:0], var=part.var))
                kwargs = {"indptr_dtype": np.int64} if sparse else {"maxshape": (None, part.n_vars), "chunks": True}
                write_elem(f, "X", part.X, dataset_kwargs=kwargs)
            elif sparse:
                sparse_dataset(f["X"]).append(part.X if sp.issparse(part.X) else sp.csr_matrix(part.X))
            else:
                x = f["X"]
                x.resize(n + part.n_obs, axis=0)
                x[n:] = part.X.toarray() if sp.issparse(part.X) else part.X
            obs_parts.append(part.obs)
            n += part.n_obs
            release_mapped_pages()
        if n == 0:
            raise ValueError("no rows to write")
        shell = ad.AnnData(obs=pd.concat(obs_parts) if len(obs_parts) > 1 else obs_parts[0])
        shell.strings_to_categoricals()  # as AnnData.write_h5ad (and so the release's bundle) stores text
        write_elem(f, "obs", shell.obs)
    return n


def write_table_atomic(path: str | os.PathLike[str], df: pd.DataFrame) -> Path:
    """Write a DataFrame atomically, its format chosen by suffix.

    ``.parquet``/``.pq`` → Parquet; ``.tsv``/``.tab`` → tab-separated; anything else →
    comma-separated CSV (no index, pandas' default float formatting). ``.h5ad`` needs to know
    which columns are genes: use :func:`synthrelease.io.formats.write_table_as` with a TableFormat.

    Raises:
        ValueError: ``path`` ends in ``.h5ad``.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".h5ad":
        raise ValueError(f"{path}: writing .h5ad needs a TableFormat naming the gene columns; "
                         "use synthrelease.io.formats.write_table_as")
    if suffix in (".parquet", ".pq"):
        fmt = TableFormat("parquet")
    elif suffix in (".tsv", ".tab"):
        fmt = TableFormat("tsv", sep="\t")
    else:
        fmt = TableFormat("csv", sep=",")
    return write_table_as(path, df, fmt)


def read_table(path: str | os.PathLike[str], sep: str | None = None) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet or AnnData table without type guessing beyond pandas' defaults.

    The format comes from the extension (see :func:`synthrelease.io.formats.detect_format`);
    ``sep`` is an explicit separator for delimited text. Use
    :func:`synthrelease.io.formats.read_table_as` to learn the format too.

    Raises:
        InputFileError: missing, unreadable, empty, unparsable or unaccepted file (one line
            naming the file).
    """
    return read_table_as(path, sep)[0]
