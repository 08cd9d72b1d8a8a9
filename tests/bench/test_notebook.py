"""notebooks/entropy_collapse.ipynb: committed without outputs, and runs headless on real results."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "entropy_collapse.ipynb"


def test_committed_notebook_is_valid_and_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_notebook_runs_on_the_fixture_results(results_dir, monkeypatch):
    monkeypatch.setenv("RESULTS_DIR", str(results_dir / "compare_arith"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # "python3": ipykernel's spec, whose "python" jupyter_client runs as this interpreter (the venv's,
    # where bench is installed: the first cell's import fails under any other)
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(figures) == 6  # entropy, reward, pass@k, answer diversity, KL view, quantiles
    printed = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "riskpo ended with entropy" in printed and "riskpo_seeking ended with entropy" in printed
