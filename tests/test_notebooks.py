"""Both notebooks run from top to bottom: every code cell, in order, in one fresh interpreter started in
`notebooks/` (what a Jupyter kernel would execute; no Jupyter needed, plots go to a non-interactive backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert code, f"{path} has no code cells"
    assert not any(line.lstrip().startswith(("%", "!")) for cell in code for line in cell.splitlines()), \
        "notebooks stay plain Python (no magics), so they run here and in any kernel"
    return "\n\n".join(code)


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", notebook_source(NOTEBOOKS / name)], cwd=NOTEBOOKS, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{name} failed:\n{result.stderr[-3000:]}"
