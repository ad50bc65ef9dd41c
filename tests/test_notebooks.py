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
    examples = load_bot(DEMO_BOT).nlu.examples  # faq/opening_hours is predicted as faq
    intents = {m.intent for m in examples} | {m.retrieval_intent for m in examples}
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


BENCHMARKS = REPO_ROOT / "notebooks" / "03_benchmarks.ipynb"
BENCH_SECTIONS = ("rasa-nlu", "rasa-core", "published", "int8", "serving")


def bench_env(monkeypatch, tmp_path: Path, results: Path) -> None:
    for name, value in {"DIALAB_BENCH_RESULTS": str(results), "MPLBACKEND": "Agg",
                        "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)


def images(cell: nbformat.NotebookNode) -> list[str]:
    return [d["image/png"] for d in rich_outputs(cell) if "image/png" in d]


def html(cell: nbformat.NotebookNode) -> str:
    return "".join(d["text/html"] for d in rich_outputs(cell) if "text/html" in d)


def no_errors(nb: nbformat.NotebookNode) -> None:
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors


def test_benchmarks_notebook_is_saved_without_outputs():
    nb = nbformat.read(BENCHMARKS, as_version=4)
    nbformat.validate(nb)
    assert all(not c.outputs and c.execution_count is None for c in nb.cells
               if c.cell_type == "code")
    assert all(len([c for c in nb.cells if tag in c.metadata.get("tags", [])]) == 1
               for tag in ("setup", *BENCH_SECTIONS))


@pytest.mark.timeout(300)
def test_benchmarks_notebook_skips_every_section_without_results(tmp_path, monkeypatch):
    bench_env(monkeypatch, tmp_path, tmp_path / "nothing_here")
    nb = execute(BENCHMARKS, BENCHMARKS.parent, tmp_path)
    no_errors(nb)
    assert f"results folder: {tmp_path / 'nothing_here'} (does not exist)" in \
        stdout(tagged(nb, "setup"))
    for section in BENCH_SECTIONS:
        cell = tagged(nb, section)
        assert "Section skipped: no " in stdout(cell) and not images(cell), section
    # the published numbers are shown all the same, with their sources
    assert "Joint BERT" in html(tagged(nb, "published"))
    assert "arXiv:2004.09936" in html(tagged(nb, "published"))


def write_bench_results(folder: Path) -> None:
    """One small file of each kind, shaped as the bench scripts write them, and a broken one."""
    from nlu_models.evaluation import aggregate_summaries

    folder.mkdir()
    machine = {"cpu": "test", "cores": 2}

    def write(name: str, content) -> None:
        (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))

    write("rasa_compare_snips_1ep.json", {
        "dataset": "snips", "epochs": 1, "machine": machine,
        "rasa": {"wall_seconds": 200.0, "peak_rss_mb": 6000.0, "diet_epoch_seconds": 160.0,
                 "intent_accuracy": 0.9, "entity_f1": 0.7},
        "dialab": {"wall_seconds": 50.0, "peak_rss_mb": 1200.0, "diet_epoch_seconds": 32.0,
                   "intent_accuracy": 0.85, "entity_f1": 0.65},
        "ratios": {"train_wall": 4.0, "epoch_time": 5.0, "peak_memory": 5.0}})
    write("rasa_core_compare_carbon_300ep.json", {
        "bot": "carbon", "epochs": 300, "machine": machine,
        "rasa": {"wall_seconds": 190.0, "peak_rss_mb": 1200.0, "ted_epoch_seconds": 0.5,
                 "conversation_accuracy": 1.0, "action_accuracy": 1.0},
        "dialab": {"wall_seconds": 50.0, "peak_rss_mb": 700.0, "ted_epoch_seconds": 0.125,
                   "conversation_accuracy": 1.0, "action_accuracy": 0.99}})
    snips = [{"dataset": "snips", "intent_accuracy": a, "entity_f1": f}
             for a, f in ((0.97, 0.78), (0.968, 0.79), (0.972, 0.785))]
    write("accuracy_diet_snips.json", {"epochs": 8, "runs": snips,
                                       "aggregate": aggregate_summaries(snips)})
    multiwoz = [{"dataset": "multiwoz_modular-status", "max_history": 2,
                 "action_accuracy_excluding_listen": a, "action_weighted_f1_excluding_listen": f}
                for a, f in ((0.68, 0.67), (0.69, 0.68))]
    write("accuracy_ted_multiwoz_modular_status_mh2.json", {
        "epochs": 100, "runs": multiwoz, "aggregate": aggregate_summaries(multiwoz)})
    write("accuracy_broken.json", "{not json")
    write("linear_baseline_diet_snips.json", {"experiment": "diet_snips", "dataset": "snips",
                                              "intent_accuracy": 0.9657})
    change = {"mean": -0.0005, "sd": 0.0008, "n": 3}
    write("int8_snips.json", {"runs": [{"dataset": "snips"}] * 3, "aggregate": {
        "onnx.intent_accuracy_change": {"mean": 0.0, "sd": 0.0, "n": 3},
        "onnx.entity_f1_change": {"mean": 0.0, "sd": 0.0, "n": 3},
        "onnx-int8.intent_accuracy_change": change, "onnx-int8.entity_f1_change": change,
        "onnx-int8.intent_agreement_with_torch": {"mean": 0.9995, "sd": 0.0008, "n": 3},
        "onnx-int8.utterances_per_second": {"mean": 300.0, "sd": 40.0, "n": 3}}})
    write("serving_onnx.json", {"date": "2026-11-24", "machine": machine, "comparison": {
        "cold_start_s": {"label": "cold start (s)", "dialab": 0.6, "rasa": 43.7,
                         "ratio_rasa_over_dialab": 72.8, "target": "< 1", "met": True},
        "rss_mb": {"label": "resident memory (MB)", "dialab": 150.0, "rasa": 1555.0,
                   "ratio_rasa_over_dialab": 10.4, "target": "<= 250", "met": True}}})


@pytest.mark.timeout(300)
def test_benchmarks_notebook_plots_every_kind_of_result(tmp_path, monkeypatch):
    results = tmp_path / "bench"
    write_bench_results(results)
    bench_env(monkeypatch, tmp_path, results)
    # run from the repository root this time
    nb = execute(BENCHMARKS, REPO_ROOT, tmp_path)
    no_errors(nb)
    for section in BENCH_SECTIONS:
        cell = tagged(nb, section)
        assert "Section skipped" not in stdout(cell), section
        (image,) = images(cell)
        assert base64.b64decode(image).startswith(PNG_MAGIC), section

    assert "snips, 1 epoch(s): dialab 5.0x faster per epoch, 5.0x less peak memory" in \
        stdout(tagged(nb, "rasa-nlu"))
    assert "carbon, 300 ep" in html(tagged(nb, "rasa-core"))
    published = tagged(nb, "published")
    assert "skipped accuracy_broken.json: not readable JSON" in stdout(published)
    comparison = html(published)
    for text in ("dialab (8 ep, 3 runs)", "dialab (100 ep, 2 runs)", "linear baseline (1 run)",
                 "96.57",
                 "MultiWOZ 2.1, modular + status, mh 2", "SNIPS", "Joint BERT + CRF"):
        assert text in comparison, text
    assert "onnx-int8" in html(tagged(nb, "int8"))
    assert "cold start (s)" in html(tagged(nb, "serving"))
