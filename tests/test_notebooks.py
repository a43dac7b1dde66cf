"""Every notebook runs top to bottom in a real kernel (nbclient), offline:
the kernel finds no Jupyter server and no TSTREAM_URL, so it starts an
embedded server; the demo swarm seeds on 127.0.0.1. Any error output fails."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from jupyter_support import offline_env

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def test_the_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == ["01_search_and_watch.ipynb", "02_history_and_popularity.ipynb",
                                           "03_engine_internals.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_offline(path: Path, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    started = time.monotonic()
    client.execute(env=offline_env(tmp_path))
    elapsed = time.monotonic() - started
    errors = [(i, o.get("ename"), o.get("evalue"), "\n".join(o.get("traceback", []))[-2000:])
              for i, cell in enumerate(nb.cells) for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert outputs, "the notebook printed nothing"
    print(f"{path.name}: {elapsed:.1f} s")
    if path.stem.startswith("01"):
        views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert len(views) >= 3          # search box, player, stats panel
    if path.stem.startswith("02"):
        assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
