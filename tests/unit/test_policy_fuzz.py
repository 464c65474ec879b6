"""Property test: any YAML thrown at the policy loader gives a Policy or one clear error naming the file."""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthrelease.errors import InputFileError, PolicyError
from synthrelease.policy.schema import Policy, load_policy

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "policies").glob("*.yaml"))]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from([".nan", ".inf", "-.inf", "1e309", "yes", "NO", "~", "0x1F", "2026-11-25",
                                     "NaN", "inf", "-0.0", 1e308, -1e308, 5e-324, 10**100, -(10**100), 0, -0.0]))
documents = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), kids, max_size=4)),
                         max_leaves=12)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_policies(draw: st.DrawFn) -> Any:
    """A shipped policy with a few keys replaced, removed or added."""
    doc = copy.deepcopy(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(documents)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(documents)
    return doc


def _check(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed-policy.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            policy, sha = load_policy(path)
        except (PolicyError, InputFileError) as e:
            msg = str(e)
            assert "\n" not in msg and "fuzzed-policy.yaml" in msg, msg
            assert "Traceback" not in msg and len(msg) < 600, msg
            return
        assert isinstance(policy, Policy) and len(sha) == 64
        pc = policy.privacy
        assert math.isfinite(pc.max_epsilon) and pc.max_epsilon > 0 and 0 < pc.max_delta < 1


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated_policies())
def test_mutated_shipped_policies_load_or_fail_clearly(doc):
    _check(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(documents)
def test_random_yaml_documents_fail_clearly(doc):
    _check(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(st.text(max_size=200))
def test_random_text_fails_clearly(text):
    _check(text)
