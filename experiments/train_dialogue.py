"""Train the dialogue policies: ``python -m experiments.train experiment=ted_demo`` (task=dialogue).

Replays the stories into trackers, trains the rule and memoization policies (seconds), trains
TED with Lightning, then replays the test stories through the whole ensemble and writes the
story report (``rasa test core``'s shapes) into the run folder. The checkpoint carries the state
featurizer and the trained rule/memoization policies, so ``experiments.evaluate task=dialogue``
needs nothing else. ``init_from=PATH`` fine-tunes a trained TED on a grown domain
(:mod:`dialogue_models.ted.growth`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from dialogue_models.domain import domain_to_plain
from dialogue_models.evaluation import evaluate_stories, format_story_summary, read_action_map
from dialogue_models.evaluation.predict import ensemble_predictor, predict_stories
from dialogue_models.inference import DialoguePolicy
from dialogue_models.policies.ensemble import PolicyEnsemble
from dialogue_models.policies.rule_data import rule_trackers
from dialogue_models.ted.growth import grow_ted, load_trained
from dialogue_models.ted.lit_module import TEDLitModule
from experiments.common import log, peak_memory_mb
from experiments.tracking import log_reports
from nlu_models.diet.model import count_parameters


def train_dialogue(cfg: DictConfig) -> dict[str, Any]:
    from experiments.train import _finish_loggers, build_datamodule, fit, init_from

    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    source = init_from(cfg)
    old = load_trained(source) if source else None
    datamodule = build_datamodule(cfg.data).prepare(
        extend=old.featurizer if old is not None else None)
    bot, space = datamodule.bot, datamodule.space
    others = None  # the policies beside TED (none: TED alone, as in the TED paper's runs)
    if cfg.model.policies:
        others = PolicyEnsemble.from_config(OmegaConf.to_container(cfg.model.policies))
        others.train(datamodule.trackers + rule_trackers(bot.stories.rules, bot.domain),
                     bot.domain, space)
    prepare_seconds = time.perf_counter() - started

    labels = {"actions": list(space.actions), "max_history": cfg.model.max_history,
              "policies": others.to_dict() if others else None,
              "ted_priority": cfg.model.ted_priority, "domain": domain_to_plain(bot.domain)}
    module = TEDLitModule(config={**OmegaConf.to_container(cfg.model.config),
                                  **datamodule.model_config()},
                          labels=labels, featurizer=datamodule.featurizer.to_dict(),
                          **OmegaConf.to_container(cfg.model.training))
    if old is not None:
        log.info("fine-tuning from %s: %s", source,
                 grow_ted(old, module.model, datamodule.featurizer))
    log.info("TED with %s trainable parameters on %d examples", f"{count_parameters(module.model):,}",
             len(datamodule.examples))
    trainer, train_seconds, metrics = fit(cfg, module, datamodule,
                                          has_val=bool(datamodule.val_examples))
    summary: dict[str, Any] = {k.replace("/", "_"): v for k, v in metrics.items()
                               if k.startswith("val/")}
    if cfg.get("evaluate") and not trainer.fast_dev_run and trainer.is_global_zero:
        policy = DialoguePolicy.from_lit_module(module)
        summary = evaluate_dialogue(policy, bot.domain, bot.test_stories.stories, out_dir, {
            "dataset": datamodule.name, "seed": cfg.seed, "model": cfg.model.name,
            "mode": cfg.model.mode, "max_history": cfg.model.max_history,
            "epochs": trainer.current_epoch, "train_seconds": round(train_seconds, 2),
            "prepare_seconds": round(prepare_seconds, 2), "peak_memory_mb": peak_memory_mb(),
            "num_train_examples": len(datamodule.examples), **summary},
            action_map=datamodule.action_map)
        log_reports(trainer.loggers, summary, out_dir / "reports")
    _finish_loggers(trainer)
    return {**metrics, **summary}


def evaluate_dialogue(policy: DialoguePolicy, domain, stories, out_dir: Path,
                      facts: dict[str, Any], action_map: str | Path | None = None
                      ) -> dict[str, Any]:
    """Replay ``stories`` through the ensemble and write ``reports/``; prints Rasa's summary.

    With ``action_map`` (a JSON file ``{utterance: [act, ...]}``) the scores are on dialogue
    acts, not on the literal actions (:mod:`dialogue_models.evaluation.action_map`); its path
    goes into the summary."""
    facts = {**facts, **({"action_map": str(action_map)} if action_map else {})}
    if not stories:
        log.warning("no test stories: no story report")
        return facts
    labels = read_action_map(action_map) if action_map else None
    results = predict_stories(ensemble_predictor(policy.ensemble, domain), stories, domain)
    dataset, split = str(facts.pop("dataset", "")), str(facts.pop("split", "test"))
    summary = evaluate_stories(results, out_dir, dataset=dataset, split=split,
                               extra_summary=facts, action_map=labels)
    print(format_story_summary(summary))
    log.info("reports written to %s", out_dir / "reports")
    return summary
