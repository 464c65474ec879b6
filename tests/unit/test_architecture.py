"""The layered layout holds (issue 27): import-linter's contracts in pyproject.toml, function length."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "synthrelease"
MAX_FUNCTION_LINES = 100


def test_import_contracts_are_kept():
    """Layers import downward only, the modalities are independent, no sibling import cycles."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([exe, "--no-cache", str(REPO / "pyproject.toml")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_no_function_is_longer_than_a_screenful_and_a_half():
    """Orchestrations read as lists of named steps: no function over ~100 lines (docstring included)."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_the_modality_registry_names_modules_that_exist():
    from importlib import import_module

    from synthrelease.modalities.base import MODALITIES

    for name, (module, factory) in MODALITIES.items():
        assert getattr(import_module(module), factory)().name == name
