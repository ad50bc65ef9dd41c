"""Train DIET: ``python -m experiments.train experiment=diet_snips [seed=1] [trainer=gpu] ...``
(and the dialogue policies with ``experiment=ted_demo``: see :mod:`experiments.train_dialogue`).

Seeds everything, loads the data and fits the featurizers, trains with Lightning, reloads the
best checkpoint (by ``val/score``; the last one without a validation split), then parses the
eval split and writes ``reports/`` (summary.json, Rasa-shaped reports, plots, report.md) into
the run folder. ``init_from=PATH`` fine-tunes a trained model (checkpoint or bundle) on data that
may add intents, entities, actions or words: see :mod:`nlu_models.diet.growth`.
Seed sweeps: ``-m seed=1,2,3``; search: ``-m hparams_search=optuna``.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import experiments  # noqa: F401  (registers the config resolvers)
import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from experiments.common import (
    instantiate_callbacks,
    instantiate_loggers,
    log,
    peak_memory_mb,
    print_summary,
    write_reports,
)
from experiments.tracking import log_reports
from nlu_models.diet.growth import grow_diet, load_trained
from nlu_models.diet.lit_module import DIETLitModule
from nlu_models.diet.model import count_parameters

# Lightning warnings that say nothing about a dialab run: small epochs (the demo bot has fewer
# batches than the logging interval), no validation split, and a deprecation inside Lightning.
for message in (".*smaller than the logging interval.*", ".*Total length of `list` across ranks.*",
                ".*isinstance\\(treespec, LeafSpec\\).*"):
    warnings.filterwarnings("ignore", message=message)


def train(cfg: DictConfig, **data_overrides: Any) -> dict[str, Any]:
    """One training run; ``data_overrides`` replace data-config arguments (e.g. the splits of a
    cross-validation fold as NLUData). ``task=dialogue`` trains the dialogue policies."""
    if cfg.get("task", "nlu") == "dialogue":
        from experiments.train_dialogue import train_dialogue

        return train_dialogue(cfg)
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    datamodule = build_datamodule(cfg.data, **data_overrides)
    source = init_from(cfg)
    old = load_trained(source) if source else None
    if old is not None:  # its featurizers and labels, extended by the new data's
        datamodule.prepare(old.pipeline, old.labels, extend=True)
    datamodule.prepare()
    featurize_seconds = time.perf_counter() - started

    selector = cfg.model.get("response_selector")
    module = DIETLitModule.for_data(
        datamodule, model=OmegaConf.to_container(cfg.model.config),
        response_selector=OmegaConf.to_container(selector) if selector else selector,
        **OmegaConf.to_container(cfg.model.training))
    if old is not None:
        grown = grow_diet(old, module.model, datamodule.pipeline, datamodule.labels,
                          selector=module.response_selector)
        log.info("fine-tuning from %s: %s", source, grown)
    log.info("DIET with %s trainable parameters", f"{count_parameters(module.model):,}")
    trainer, train_seconds, metrics = fit(cfg, module, datamodule,
                                          has_val="val" in datamodule.encoded)
    summary: dict[str, Any] = {k.replace("/", "_"): v for k, v in metrics.items()
                               if k.startswith("val/")}
    if cfg.get("evaluate") and not trainer.fast_dev_run and trainer.is_global_zero:
        summary = evaluate_split(cfg, datamodule, module, out_dir, {
            "epochs": trainer.current_epoch, "train_seconds": round(train_seconds, 2),
            "featurize_seconds": round(featurize_seconds, 2),
            "peak_memory_mb": peak_memory_mb(),
            "num_train_examples": len(datamodule.data["train"].examples), **summary})
        log_reports(trainer.loggers, summary, out_dir / "reports")
    _finish_loggers(trainer)
    return {**metrics, **summary}


def fit(cfg: DictConfig, module: L.LightningModule, datamodule: L.LightningDataModule,
        has_val: bool) -> tuple[L.Trainer, float, dict[str, float]]:
    """The trainer from the config groups, fitted; the best checkpoint (by the monitored
    validation metric, else the last) reloaded into ``module``. Returns the trainer, the
    training seconds and the final logged metrics."""
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=instantiate_callbacks(cfg.get("callbacks"), has_val,
                                                     cfg.trainer.get("max_epochs")),
        logger=instantiate_loggers(cfg.get("logger")) or False)
    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    train_seconds = time.perf_counter() - started
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    _reload_best(trainer, module)
    return trainer, train_seconds, metrics


def _finish_loggers(trainer: L.Trainer) -> None:
    """Close a wandb run, so the next run of a multirun (seeds, Optuna) gets its own."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "_experiment", None)
        if type(logger).__name__ == "WandbLogger" and experiment is not None:
            experiment.finish()


def init_from(cfg: DictConfig) -> str | None:
    """The model to fine-tune from (``init_from=``): new labels and vocabulary are appended to
    its own, training starts at epoch 0 with a fresh optimiser. ``ckpt_path=`` instead resumes
    an interrupted run exactly; the two do not mix."""
    path = cfg.get("init_from")
    if path and cfg.get("ckpt_path"):
        raise ValueError("init_from (fine-tune from a model) and ckpt_path (resume a run) "
                         "exclude each other: give one")
    return path


def build_datamodule(data_cfg: DictConfig, **overrides: Any):
    """The data config's ``_target_`` built from plain Python values (so NLUData objects can be
    passed as overrides without Hydra turning them into configs)."""
    kwargs = OmegaConf.to_container(data_cfg, resolve=True)
    target = hydra.utils.get_class(kwargs.pop("_target_"))
    return target(**{**kwargs, **overrides})


def evaluate_split(cfg: DictConfig, datamodule, module: DIETLitModule, out_dir: Path,
                   run_facts: dict[str, Any]) -> dict[str, Any]:
    split = cfg.get("eval_split", "test")
    if split not in datamodule.data:
        log.warning("no '%s' split: reports are written for the training data", split)
        split = "train"
    meta = {"task": "nlu", "dataset": datamodule.name, "split": split, "seed": cfg.seed,
            "model": cfg.model.name, **datamodule.metadata, **run_facts}
    summary = write_reports(module.interpreter(), datamodule.split_messages(split),
                            out_dir / "reports", meta, lenient=cfg.get("lenient_entities", False),
                            out_of_scope_intent=datamodule.out_of_scope_intent,
                            intent_split_symbol=datamodule.intent_split_symbol)
    print_summary(summary)
    return summary


def _reload_best(trainer: L.Trainer, module: DIETLitModule) -> None:
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_path", "") if callback is not None else ""
    if best and Path(best).is_file():
        state = torch.load(best, map_location=module.device, weights_only=False)["state_dict"]
        module.load_state_dict(state)
        log.info("reloaded the best checkpoint %s", best)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


if __name__ == "__main__":
    main()
