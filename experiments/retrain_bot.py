"""Retrain a bot's DIET and dialogue policies on its data folder and export both bundles (what
``dialab interactive``'s ``/retrain`` runs; Hydra stays here, at the edge).

:func:`retrain_bundles` composes ``configs/train.yaml`` with an NLU and a policy experiment (the
demo bot's by default), points their data at the bot folder, trains on all of it (no
``max_examples`` cap, no validation hold-out, no test reports) and exports ``nlu`` and
``policy`` bundles under ``out``::

    out/nlu_run/ out/policy_run/    the two training runs (checkpoints, logs)
    out/nlu/ out/policy/            the bundles
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from experiments import experiment_config

__all__ = ["retrain_bundles", "retrain_config"]

# what every retraining run sets: all of the bot's data, no reports, a quiet trainer
_COMMON = ["data.val_fraction=0.0", "evaluate=false",
           "trainer.enable_progress_bar=false", "++callbacks.model_summary=null"]


def retrain_config(experiment: str, data_dir: Path, out: Path, epochs: int | None = None,
                   overrides: Sequence[str] = ()) -> DictConfig:
    """``configs/train.yaml`` with ``experiment=...``, its data read from ``data_dir``."""
    data = str(Path(data_dir).resolve())
    GlobalHydra.instance().clear()  # the repository's configs, whatever composed before
    dialogue = experiment_config(experiment).get("task", "nlu") == "dialogue"
    where = ([f"data.train={data}", "data.test=null"] if dialogue
             else [f"data.train.path={data}", "data.test=null", "data.max_examples=null"])
    epochs_override = [f"trainer.max_epochs={epochs}"] if epochs else []
    cfg = experiment_config(experiment, [*where, *_COMMON, *epochs_override, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
    return cfg


def retrain_bundles(data_dir: str | Path, out: str | Path, nlu_experiment: str = "diet_demo",
                    policy_experiment: str = "ted_demo", epochs: int | None = None,
                    overrides: Sequence[str] = ()) -> tuple[Path, Path]:
    """Train both models on ``data_dir`` and export them; the ``(nlu, policy)`` bundle folders.
    ``epochs`` replaces the experiments' ``trainer.max_epochs``."""
    from dialogue_models.export import export_bundle
    from experiments.train import train

    out = Path(out)
    bundles = []
    for kind, experiment in (("nlu", nlu_experiment), ("policy", policy_experiment)):
        run = out / f"{kind}_run"
        train(retrain_config(experiment, Path(data_dir), run, epochs, overrides))
        bundles.append(export_bundle(run / "checkpoints" / "last.ckpt", out / kind))
    return bundles[0], bundles[1]
