"""The notebooks run top to bottom in a fresh kernel (nbclient), without errors, and show what
their text promises. Epochs are cut short through ``DIALAB_NB_EPOCHS``."""
from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from dialogue_models.project import load_bot
from tests.conftest import DEMO_BOT, REPO_ROOT

QUICKSTART = REPO_ROOT / "notebooks" / "01_quickstart.ipynb"
KERNEL_NAME = "dialab-tests"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def this_interpreter_kernel(tmp_path: Path) -> KernelManager:
    """A kernel on the interpreter running the tests (the venv's), from a kernelspec written for
    the test: no installed ``python3`` spec (user-level, another env's) can be picked instead."""
    spec_dir = tmp_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "dialab tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)])
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def execute(path: Path, cwd: Path, tmp_path: Path, only: str | None = None
            ) -> nbformat.NotebookNode:
    """``path`` executed with ``cwd`` as the working directory (``only``: just the cell with that
    tag), plus a last cell that prints the kernel's interpreter."""
    nb = nbformat.read(path, as_version=4)
    if only is not None:
        nb.cells = [tagged(nb, only)]
    nb.cells.append(new_code_cell("import sys\nprint('interpreter:', sys.executable)",
                                  metadata={"tags": ["interpreter"]}))
    client = NotebookClient(nb, km=this_interpreter_kernel(tmp_path), timeout=120,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(cleanup_kc=True)
    return nb


def tagged(nb: nbformat.NotebookNode, tag: str) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def rich_outputs(cell: nbformat.NotebookNode) -> list[dict]:
    return [o.data for o in cell.outputs if o.output_type in ("execute_result", "display_data")]


def test_quickstart_is_saved_without_outputs():
    nb = nbformat.read(QUICKSTART, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.timeout(300)
def test_quickstart_runs_and_shows_parses_reports_and_the_confusion_matrix(tmp_path,
                                                                           monkeypatch):
    for name, value in {"DIALAB_NB_EPOCHS": "3", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                        "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
                        "MPLBACKEND": "Agg", "TMPDIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    # run from notebooks/, as Jupyter does; the notebook finds the repository itself
    nb = execute(QUICKSTART, QUICKSTART.parent, tmp_path)

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors
    assert f"interpreter: {sys.executable}\n" == stdout(tagged(nb, "interpreter"))
    assert f"repository: {REPO_ROOT.resolve()}" in stdout(tagged(nb, "setup"))
    assert "epochs: 3" in stdout(tagged(nb, "setup"))

    # the parse table: one known intent per parsed message
    intents = {m.intent for m in load_bot(DEMO_BOT).nlu.examples}
    (table,) = [d["text/html"] for d in rich_outputs(tagged(nb, "parse")) if "text/html" in d]
    rows = table.count("<tr>")
    shown = [v for v in re.findall(r"<td>([^<]*)</td>", table) if v in intents]
    assert rows >= 3 and len(shown) == rows, table

    summary = stdout(tagged(nb, "evaluate"))
    for key in ("n_examples", "intent_accuracy", "entity_f1", "intent_confusion_matrix.png"):
        assert key in summary, summary

    images = [d["image/png"] for d in rich_outputs(tagged(nb, "confusion-matrix"))
              if "image/png" in d]
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(PNG_MAGIC)


def test_quickstart_finds_the_repository_from_its_root_too(tmp_path):
    nb = execute(QUICKSTART, REPO_ROOT, tmp_path, only="setup")
    assert f"repository: {REPO_ROOT.resolve()}" in stdout(tagged(nb, "setup"))


DIALOGUE = REPO_ROOT / "notebooks" / "02_dialogue_policy.ipynb"


def test_dialogue_notebook_is_saved_without_outputs():
    nb = nbformat.read(DIALOGUE, as_version=4)
    nbformat.validate(nb)
    assert all(not c.outputs and c.execution_count is None for c in nb.cells
               if c.cell_type == "code")


@pytest.mark.timeout(300)
def test_dialogue_notebook_trains_evaluates_and_converses(tmp_path, monkeypatch):
    for name, value in {"DIALAB_NB_EPOCHS": "2", "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
                        "MPLBACKEND": "Agg", "TMPDIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    nb = execute(DIALOGUE, DIALOGUE.parent, tmp_path)

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors
    assert "epochs: 2" in stdout(tagged(nb, "setup"))
    assert "augmented" in stdout(tagged(nb, "trackers"))
    assert "RulePolicy (priority 4)" in stdout(tagged(nb, "policies"))
    summary = stdout(tagged(nb, "evaluate"))
    for text in ("CONVERSATION level", "In-data fraction", "story_report.json",
                 "failed_test_stories.yml"):
        assert text in summary, summary
    images = [d["image/png"] for d in rich_outputs(tagged(nb, "confusion-matrix"))
              if "image/png" in d]
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(PNG_MAGIC)
    talk = stdout(tagged(nb, "conversation"))
    # the rules greet and start the form; the form asks for size, topping and crust in turn
    assert "user: hello\n  bot: " in talk
    assert "size" in talk.lower() and "crust" in talk.lower()
    assert "'size': 'large'" in talk and "'crust': 'thin'" in talk
