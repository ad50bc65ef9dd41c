"""Evaluate a trained DIET checkpoint on a split of any data config:
``python -m experiments.evaluate ckpt_path=outputs/.../checkpoints/last.ckpt data=snips``
or trained dialogue policies on a bot's test stories:
``python -m experiments.evaluate task=dialogue ckpt_path=... data=demo_bot_stories``

Writes the same ``reports/`` as training does (summary.json, intent_report.json,
entity_report.json, errors.json, PNGs, report.md) into the run folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import experiments  # noqa: F401  (registers the config resolvers)
import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.common import print_summary, write_reports
from nlu_models.diet.datamodule import as_data
from nlu_models.inference import NLUInterpreter


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    if cfg.get("task", "nlu") == "dialogue":
        return evaluate_dialogue_checkpoint(cfg)
    split = cfg.eval_split
    source = cfg.data.get(split)
    if source is None:
        raise ValueError(f"data config '{cfg.data.name}' has no '{split}' split; "
                         "choose eval_split=train|val|test")
    interpreter = NLUInterpreter.load(cfg.ckpt_path)
    data = as_data(OmegaConf.to_container(source, resolve=True))
    meta = {"task": "nlu", "dataset": cfg.data.name, "split": split, "seed": cfg.seed,
            "checkpoint": str(cfg.ckpt_path)}
    summary = write_reports(interpreter, data.examples, Path(cfg.paths.output_dir) / "reports",
                            meta, lenient=cfg.lenient_entities,
                            out_of_scope_intent=cfg.data.get("out_of_scope_intent"),
                            intent_split_symbol=cfg.data.get("intent_split_symbol"))
    print_summary(summary)
    return summary


def evaluate_dialogue_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """``task=dialogue data=<stories config>``: the checkpoint's policies on the test stories."""
    from dialogue_models.inference import DialoguePolicy
    from experiments.train import build_datamodule
    from experiments.train_dialogue import evaluate_dialogue

    policy = DialoguePolicy.load(cfg.ckpt_path)
    datamodule = build_datamodule(cfg.data)
    bot = datamodule.load_bot()  # the domain and test stories; nothing is replayed or encoded
    stories = bot.test_stories.stories if cfg.eval_split == "test" else bot.stories.stories
    return evaluate_dialogue(policy, bot.domain, stories, Path(cfg.paths.output_dir), {
        "dataset": datamodule.name, "split": cfg.eval_split, "seed": cfg.seed,
        "checkpoint": str(cfg.ckpt_path)}, action_map=datamodule.action_map)


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
