"""Training options beyond the defaults, through the real configs: every logger of
``logger=many`` writes its files offline, ``trainer=ddp`` trains on two CPU processes, and
``hparams_search=optuna`` runs a small sweep. DDP and the sweep run as subprocesses, as from the
command line: Lightning's DDP launcher re-runs the script, and ``-m`` needs Hydra's own main.
Those two take 10-25 s each on two CPU cores."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from experiments import CONFIG_DIR
from experiments.train import train
from tests.conftest import REPO_ROOT
from tests.entry_points.conftest import compose_config

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true"}
OPTUNA = yaml.safe_load((CONFIG_DIR / "hparams_search" / "optuna.yaml").read_text())


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """wandb offline, its settings and caches in ``tmp_path``; the run is closed afterwards so
    it does not leak into later tests (WandbLogger reuses an open run)."""
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    import wandb

    yield wandb
    wandb.finish()


def records(run_dir: Path, names: list[bytes], timeout: float = 20.0) -> bytes:
    """The offline run's records once they hold all ``names``: wandb's core process may still be
    writing the final summary when ``finish()`` returns."""
    deadline = time.monotonic() + timeout
    while True:
        content = next(run_dir.glob("run-*.wandb")).read_bytes()
        if all(name in content for name in names) or time.monotonic() > deadline:
            return content
        time.sleep(0.2)


def test_logger_many_writes_csv_tensorboard_and_an_offline_wandb_run(tmp_path, offline_wandb):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    cfg = compose_config("train", ["experiment=diet_tiny", "logger=many", "trainer.max_epochs=1",
                                   "evaluate=false"], out)
    train(cfg)
    offline_wandb.finish()  # flushes the run

    assert list((out / "csv").rglob("metrics.csv"))
    (events,) = (out / "tensorboard").rglob("events.out.tfevents.*")
    scalars = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert {"train/loss", "val/intent_acc", "val/score"} <= set(scalars), scalars

    # the offline run (what `wandb sync` uploads): its records hold the logged metric names and
    # the hyper-parameters
    (run_dir,) = (out / "wandb").glob("offline-run-*")
    names = [b"train/loss", b"val/score", b"learning_rate"]
    content = records(run_dir, names)
    for name in names:
        assert name in content, name


def test_wandb_run_gets_the_summary_the_report_figures_and_the_errors_tables(tmp_path,
                                                                          offline_wandb):
    out = tmp_path / "run"
    cfg = compose_config("train", ["experiment=diet_tiny", "logger=wandb",
                                   "trainer.max_epochs=1"], out)
    train(cfg)  # closes the run
    reports = out / "reports"
    summary = json.loads((reports / "summary.json").read_text())
    errors = json.loads((reports / "errors.json").read_text())
    assert errors["intent_errors"], "a 1-epoch tiny DIET should get some intents wrong"
    (run_dir,) = (out / "wandb").glob("offline-run-*")

    # the run summary (in the offline records, what `wandb sync` uploads): summary.json's
    # scores under test/..., each followed by its value
    names = (("intent_accuracy", b"test/intent_accuracy"), ("entity_f1", b"test/entity_f1"),
             ("num_train_examples", b"num_train_examples"))
    content = records(run_dir, [name for _, name in names])
    for key, name in names:
        at = content.find(name)
        assert at >= 0, name
        assert json.dumps(summary[key]).encode() in content[at:at + len(name) + 40], name

    # the figures as images, the errors as tables with one row per error
    media = run_dir / "files" / "media"
    (matrix,) = (media / "images" / "test").glob("intent_confusion_matrix_*.png")
    assert matrix.read_bytes().startswith(b"\x89PNG")
    (table,) = (media / "table" / "test").glob("intent_errors_*.table.json")
    table = json.loads(table.read_text())
    assert table["columns"] == ["text", "intent", "predicted_intent", "confidence"]
    assert table["data"] == [[e["text"], e["intent"], e["intent_prediction"]["name"],
                              e["intent_prediction"]["confidence"]]
                             for e in errors["intent_errors"]]
    if errors["entity_errors"]:
        assert list((media / "table" / "test").glob("entity_errors_*.table.json"))


def test_dialogue_errors_become_an_action_errors_table():
    from experiments.tracking import error_rows, summary_metrics

    errors = [{"story": "s1", "step": 3, "gold": "utter_greet", "predicted": "utter_goodbye",
               "policy": "TEDPolicy", "confidence": 0.6}]
    columns, rows = error_rows(errors)["action_errors"]
    assert columns[:3] == ["story", "step", "gold"] and rows == [list(errors[0].values())]
    assert error_rows([]) == {} and error_rows({"intent_errors": [], "entity_errors": []}) == {}
    assert summary_metrics({"split": "val", "seed": 1, "action_accuracy": 0.5, "model": "ted",
                            "policy_counts": {"RulePolicy": 2}, "ok": True}) == \
        {"seed": 1, "val/action_accuracy": 0.5}


def run_entry_point(args: list[str], tmp_path: Path, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
           "DIALAB_OUTPUTS": str(tmp_path / "outputs"), "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.mark.timeout(600)
def test_ddp_trains_on_two_cpu_processes_and_rank_zero_writes_the_reports(tmp_path):
    run_dir = tmp_path / "ddp"
    run_entry_point(["experiment=diet_tiny", "trainer=ddp", "trainer.accelerator=cpu",
                     "trainer.devices=2", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"],
                    tmp_path, timeout=500)
    # Lightning re-ran the script for rank 1 (Hydra names its log after the job)
    assert (run_dir / "train_ddp_process_1.log").is_file()
    summary = json.loads((run_dir / "reports" / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["dataset"] == "demo_bot"
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.timeout(600)
def test_optuna_sweep_runs_its_trials_and_writes_the_best_parameters(tmp_path):
    sweep_dir = tmp_path / "sweep"
    run_entry_point(["-m", "hparams_search=optuna", "experiment=diet_tiny",
                     "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.n_startup_trials=1",
                     "trainer.max_epochs=1", f"hydra.sweep.dir={sweep_dir}"],
                    tmp_path, timeout=500)
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(results["best_params"]) == set(OPTUNA["hydra"]["sweeper"]["params"])
    assert 0.0 <= results["best_value"] <= 1.0
    # each trial returned its optimised metric (val/score) to the sweeper: the best is theirs
    scores = [json.loads((sweep_dir / trial / "reports" / "summary.json").read_text())["val_score"]
              for trial in ("0", "1")]
    assert results["best_value"] == pytest.approx(max(scores))


def test_optuna_search_tunes_on_held_out_training_data_when_there_is_no_val_split(tmp_path):
    """The objective is ``val/score``: without a val split every trial would return None and the
    sweep would stop with optuna's "No trials are completed yet". Data sets with a val split
    keep it (``val_fraction`` only applies without one)."""
    cfg = compose_config("train", ["hparams_search=optuna", "data=demo_bot"], tmp_path)
    assert cfg.data.val is None and cfg.data.val_fraction > 0
    assert cfg.optimized_metric == "val/score"


@pytest.mark.timeout(600)
def test_seed_sweep_multirun_gives_one_run_per_seed(tmp_path):
    sweep_dir = tmp_path / "seeds"
    run_entry_point(["-m", "experiment=diet_tiny", "seed=1,2", "trainer.max_epochs=1",
                     f"hydra.sweep.dir={sweep_dir}"], tmp_path, timeout=500)
    seeds = [json.loads((sweep_dir / job / "reports" / "summary.json").read_text())["seed"]
             for job in ("0", "1")]
    assert seeds == [1, 2]


def test_checkpoints_without_validation_are_written_periodically_and_at_the_end():
    from experiments.common import save_every

    assert [save_every(n) for n in (None, 1, 3, 30, 37, 40, 100, 300)] == \
        [1, 1, 3, 15, 1, 20, 20, 20]
    for epochs in range(1, 120):
        period = save_every(epochs)
        assert epochs % period == 0 and period <= 20
