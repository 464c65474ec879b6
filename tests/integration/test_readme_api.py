"""README's Python API example runs as written (from a fresh folder, with its own ledger)."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_api_example_runs(tmp_path, capsys):
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S)
    assert block, "README lost its API example"
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block.group(1), "README.md", "exec"), {"__name__": "readme_example"})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "bundle:" in out or "FAILED" in out
    if "bundle:" in out:  # released: the bundle holds exactly the rows the example asked for
        import pandas as pd

        assert len(pd.read_csv(tmp_path / "api-demo-bundle" / "synthetic.csv")) == 500
