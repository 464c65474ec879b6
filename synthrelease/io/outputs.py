"""Output paths: never overwrite an input, never nest the internal report in a bundle, fail before ε.

Every command that writes checks its outputs here BEFORE it reads private rows or
reserves ε, so a run that could not finish (a read-only folder, /proc, a full disk) is
refused as bad input (exit 2) instead of failing after training with ε spent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from synthrelease.errors import InputFileError


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve(strict=False)


def _same_file(a: Path, b: Path) -> bool:
    if _resolved(a) == _resolved(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(output: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = (),
                     force: bool = False, option: str = "-o") -> Path:
    """Refuse writing ``output`` over one of ``inputs`` (always) or over an existing file (unless ``force``).

    Raises:
        InputFileError: naming the path and the option.
    """
    out = Path(output)
    for src in inputs:
        if _same_file(out, Path(src)):
            raise InputFileError(f"{out}: {option} is an input of this command ({src}); it is never overwritten: "
                                 "choose another output path")
    if out.exists() or out.is_symlink():
        if out.is_dir():
            raise InputFileError(f"{out}: {option} is an existing folder; choose a file path")
        if not force:
            raise InputFileError(f"{out}: {option} exists; pass --force to replace it, or choose another path")
    return out


def _is_bundle_folder(folder: Path) -> bool:
    """A folder holding a signed manifest (``manifest.json`` and ``manifest.sig``)."""
    return (folder / "manifest.json").is_file() and (folder / "manifest.sig").is_file()


def _is_bundle_archive(path: Path) -> bool:
    """An existing tar archive with a signed manifest in it (read as a listing only: nothing is extracted)."""
    import tarfile

    if not path.is_file():
        return False
    try:
        with tarfile.open(path, "r:*") as tar:
            names = {Path(n).name for n in tar.getnames()[:10_000]}
    except (tarfile.TarError, OSError, EOFError):
        return False
    return {"manifest.json", "manifest.sig"} <= names


def refuse_internal_output(output: str | os.PathLike[str], *, option: str = "-o", suffix: str) -> Path:
    """Refuse an INTERNAL output (a page or record computed on private rows) that would land in or
    on a shareable bundle, or that does not end in ``suffix``: inside a folder with a signed
    manifest (at any depth), or onto a signed bundle archive (even with ``--force``).

    Raises:
        InputFileError: naming the path and the option.
    """
    out = Path(output)
    if out.suffix.lower() != suffix:
        raise InputFileError(f"{out}: {option} must end in {suffix} (an internal {suffix[1:].upper()} file)")
    resolved = _resolved(out)
    for folder in resolved.parents:
        if _is_bundle_folder(folder):
            raise InputFileError(f"{out}: {option} lies inside a signed release bundle ({folder}); internal "
                                 "outputs never go into a shareable bundle: choose a path outside it")
    if _is_bundle_archive(resolved):
        raise InputFileError(f"{out}: {option} is a signed release bundle archive; it is never replaced by an "
                             "internal output: choose another path")
    return out


def refuse_nested(a: str | os.PathLike[str], b: str | os.PathLike[str], *, names: tuple[str, str]) -> None:
    """Refuse two output locations when one is, or lies inside, the other.

    Raises:
        InputFileError: e.g. an internal report inside the shareable bundle folder.
    """
    ra, rb = _resolved(a), _resolved(b)
    if ra == rb or ra in rb.parents or rb in ra.parents:
        raise InputFileError(f"{b}: {names[1]} must not be {names[0]} ({a}) or inside it, nor contain it: "
                             f"choose separate locations")


def _existing_ancestor(path: Path) -> Path:
    p = _resolved(path)
    while not p.exists():
        p = p.parent
    return p


def check_writable(path: str | os.PathLike[str], *, option: str, needed_bytes: int = 0) -> None:
    """The folder that will hold ``path`` accepts a new file and has ``needed_bytes`` free.

    Creates and removes a probe file in the nearest existing ancestor (so /proc, read-only
    mounts and missing permissions are caught), then compares the free space with the
    rough size estimate.

    Raises:
        InputFileError: naming the path, the option and what is wrong.
    """
    target = Path(path)
    parent = _existing_ancestor(target if target.is_dir() else target.parent)
    if not parent.is_dir():
        raise InputFileError(f"{target}: {option}: {parent} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".synthrelease-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputFileError(f"{target}: {option}: cannot write in {parent} ({e.strerror or type(e).__name__})"
                             ) from None
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(parent).free
        if needed_bytes and free < needed_bytes:
            raise InputFileError(f"{target}: {option}: only {free / 2**20:.0f} MiB free in {parent}, about "
                                 f"{needed_bytes / 2**20:.0f} MiB needed")


def release_size_estimate(data: str | os.PathLike[str]) -> int:
    """A rough upper estimate of a bundle's bytes: CSV + Parquet of as many rows as the input, plus slack."""
    try:
        size = Path(data).stat().st_size
    except OSError:
        size = 0
    return 3 * size + (8 << 20)
