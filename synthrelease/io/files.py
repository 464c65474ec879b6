"""Safe file input and atomic file output.

Every file written by synthrelease goes to a temporary file in the target's folder
and is renamed into place, so a crash never leaves a half-written output. Every file
read from a user is parsed without executing code (``yaml.safe_load``, JSON,
``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from synthrelease.errors import InputFileError

TEST_PAUSE_ENV = "SYNTHRELEASE_TEST_PAUSE_BEFORE_RENAME"
"""TEST ONLY: seconds :func:`staged_directory` sleeps before its rename (the kill test)."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of bytes."""
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Args:
        path: destination file; its folder is created if needed.
        data: the bytes to write.
        mode: permission bits (e.g. ``0o600`` for a private key; default: 0o666 less the
            umask), set before the rename so the file never exists with looser permissions.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _default_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(p.parent)
    return p


def write_text_atomic(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> Path:
    """Write UTF-8 text atomically (see :func:`write_bytes_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"), mode=mode)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the body succeeds."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.fchmod(fd, _default_mode())
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory in a temporary sibling and rename it to ``target`` on success.

    If the body raises (or the process dies), ``target`` is untouched and the
    temporary sibling is removed (or, after a kill, left as an obviously temporary
    ``.<name>.partial-*`` folder that holds no finished bundle).

    Raises:
        InputFileError: ``target`` already exists and is not an empty directory.
    """
    t = Path(target)
    if t.exists() and (not t.is_dir() or any(t.iterdir())):
        raise InputFileError(f"{t}: output directory exists and is not empty; choose a new --out")
    t.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=t.parent, prefix=f".{t.name}.partial-"))
    try:
        yield tmp
        os.chmod(tmp, _default_mode() | 0o111)  # mkdtemp makes 0700; a bundle is meant to be shared
        pause = os.environ.get(TEST_PAUSE_ENV)
        if pause:  # TEST ONLY: widens the staged-but-not-renamed window for the kill test
            time.sleep(float(pause))
        if t.exists():
            t.rmdir()
        os.replace(tmp, t)
        _fsync_dir(t.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


MAX_YAML_BYTES = 16 << 20
"""Policy and metadata files larger than this are refused (they are hand-written documents)."""


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (a 20,000-column metadata file: ~25× faster)."""


def _first_duplicate_key(node: yaml.Node) -> tuple[str, int, int] | None:
    """(key, first line, repeated line) of the first mapping key given twice, walking the node tree.

    ``yaml.compose`` builds nodes only (no Python objects); YAML's own rule for a repeated key
    is last-wins, a trap in a policy (``max_epsilon: 1`` then ``max_epsilon: 1000``).
    """
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode):
                    where = key_node.start_mark.line + 1
                    first = seen.setdefault((key_node.tag, key_node.value), where)
                    if first != where:
                        return key_node.value, first, where
                stack += [key_node, value_node]
        elif isinstance(current, yaml.SequenceNode):
            stack += current.value
    return None


def read_yaml(path: str | os.PathLike[str], what: str) -> Any:
    """Parse a YAML file safely (PyYAML's safe loader, libyaml's when built in), refusing duplicate keys
    and absurd nesting.

    Raises:
        InputFileError: the file is missing, unreadable, too large, too deeply nested, has a
            duplicate key (named with its line), or is not valid YAML.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: {what} file not found")
    try:
        if p.stat().st_size > MAX_YAML_BYTES:
            raise InputFileError(f"{p}: {what} file is larger than {MAX_YAML_BYTES >> 20} MiB; refusing to parse it")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"{p}: cannot read {what} file: {type(e).__name__}") from None
    loader = _SAFE_LOADER(text)  # parsed once: nodes for the duplicate-key check, then objects
    try:
        node = loader.get_single_node()
        duplicate = _first_duplicate_key(node) if node is not None else None
        if duplicate is not None:
            key, first, line = duplicate
            raise InputFileError(f"{p}:{line}: {what} file: key {key!r} appears twice (lines {first} and {line}); "
                                 "remove one of them")
        return loader.construct_document(node) if node is not None else None
    except RecursionError:
        raise InputFileError(f"{p}: {what} file is nested too deeply to be a {what}") from None
    except yaml.YAMLError as e:
        if "nesting depth" in str(getattr(e, "problem", "")):  # libyaml's own depth limit
            raise InputFileError(f"{p}: {what} file is nested too deeply to be a {what}") from None
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise InputFileError(f"{p}{where}: {what} file is not valid YAML: {problem}") from None
    finally:
        loader.dispose()
