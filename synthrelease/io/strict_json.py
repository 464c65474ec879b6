"""Strict JSON for untrusted or signed input: what :func:`json.loads` silently accepts is refused.

``json.loads`` keeps the last of two equal keys (a signed manifest could show one value to
one reader and another to the next), recurses once per nesting level (100 000 nested
brackets raise ``RecursionError``), accepts ``NaN`` / ``Infinity`` and ``1e999`` (infinity),
and raises a bare ``ValueError`` for integers beyond Python's 4 300-digit limit.
:func:`loads_strict` turns each of those into one error line naming the source.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from synthrelease.errors import InputFileError, SynthreleaseError

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted (a bundle manifest needs fewer than 10)."""
MAX_INT_DIGITS = 50
"""Longest integer literal accepted, in digits (far below Python's 4 300-digit limit)."""

# A JSON string; an unterminated one matches to the end of the text, so the scan never
# retries from inside it (linear time on any input).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class _Refused(ValueError):
    """Raised by a parsing hook; :func:`loads_strict` turns it into the caller's error class."""


class _DuplicateKeys(dict[str, Any]):
    """An object that had a key twice (kept until the whole text is parsed, to name its path)."""

    key: str


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` outside strings.

    A linear scan done by regular expressions and ``itertools`` (no recursion, no Python
    loop over characters), so it is safe on text that would make ``json.loads`` recurse too
    deep. Strings are removed first, so brackets inside them do not count.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _pairs_hook(seen_duplicates: list[_DuplicateKeys]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An ``object_pairs_hook`` that records (rather than merges) an object with a repeated key."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        marked = _DuplicateKeys(obj)
        marked.key = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        seen_duplicates.append(marked)
        return marked

    return hook


def _parse_int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"integer of {digits} digits (at most {MAX_INT_DIGITS} allowed)")
    return int(literal)


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        shown = literal if len(literal) <= 24 else literal[:24] + "..."
        raise _Refused(f"the number {shown} overflows to infinity")
    return value


def _parse_constant(literal: str) -> float:
    raise _Refused(f"{literal} is not a JSON number")


def _path_to(node: Any, target: object, path: str = "") -> str | None:
    """Where ``target`` sits inside ``node`` (``release.privacy``, ``files["a/b.csv"]``, ``[3]``).

    Recursive, but only on parsed values, whose depth :func:`loads_strict` has bounded.
    """
    if node is target:
        return path or "the top level"
    items: Any = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        step = (f".{k}" if path else k) if isinstance(k, str) and k.isidentifier() else f"[{json.dumps(k)}]"
        found = _path_to(v, target, path + step)
        if found is not None:
            return found
    return None


def loads_strict(text: str | bytes, *, source: str, error: type[SynthreleaseError] = InputFileError,
                 max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text, refusing everything ``json.loads`` accepts silently or crashes on.

    Checks, in order: (1) bytes are UTF-8; (2) nesting is at most ``max_depth`` levels,
    measured by :func:`nesting_depth` before ``json.loads`` runs; (3) while parsing: integers
    of at most :data:`MAX_INT_DIGITS` digits, no ``NaN`` / ``Infinity`` / overflowing number,
    valid JSON; (4) no object has the same key twice (named with the object's path).

    Args:
        text: the JSON document.
        source: names the document at the start of every message (``"{source}: ..."``).
        error: the error class raised (default :class:`InputFileError`, bad input).

    Raises:
        error: one line saying what is wrong.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{source}: not UTF-8 text (byte {e.start})") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{source}: JSON nested {depth} levels deep (at most {max_depth} allowed)")
    duplicates: list[_DuplicateKeys] = []
    try:
        value = json.loads(text, object_pairs_hook=_pairs_hook(duplicates), parse_int=_parse_int,
                           parse_float=_parse_float, parse_constant=_parse_constant)
    except _Refused as e:
        raise error(f"{source}: {e}") from None
    except json.JSONDecodeError as e:
        raise error(f"{source}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:  # not expected after the depth check; never a traceback
        raise error(f"{source}: JSON nested too deeply") from None
    if duplicates:
        first = duplicates[0]
        raise error(f"{source}: duplicate key {json.dumps(first.key)} in the object at {_path_to(value, first)} "
                    "(JSON readers disagree on which value counts)")
    return value
