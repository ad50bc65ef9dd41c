"""Learning curves: ``python -m experiments.compare experiment=diet_demo [compare.runs=3]
[compare.percentages=[100,75,50,25]] [compare.configs=[diet_demo,diet_demo_pretrained]]``

Rasa's ``rasa test nlu --percentages``: every config is trained on each percentage of its
training split (``data.train_fraction``: seeded, stratified by intent), ``compare.runs`` times
with seeds ``seed``, ``seed + 1``, ..., and tested on the whole test split. Each run writes its
reports into ``<config>/<pct>pct_run<k>/`` of the run folder; then ``results.json`` (every run's
summary, and mean ± sd per config × percentage), ``results.md`` and ``learning_curve.png``
(intent accuracy and entity F1 against the number of training examples, one line per config,
sd bars) are written beside them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import hydra
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import DictConfig, open_dict

from experiments import compose_config
from experiments.common import log
from experiments.train import train
from nlu_models.evaluation import aggregate_summaries, format_mean_sd

CURVES = (("intent_accuracy", "intent accuracy (%)"), ("entity_f1", "entity F1, exact span (%)"))
EXPERIMENT_OVERRIDE = re.compile(r"^[+~]*experiment(=|$)")


def compare(cfg: DictConfig, overrides: Sequence[str] = (), label: str | None = None
            ) -> dict[str, Any]:
    """Train every config × percentage × run; ``overrides`` (the command line's) are applied to
    each config named in ``compare.configs``; without names, ``cfg`` itself is the one config,
    called ``label`` (default: its model's name)."""
    percentages = [float(p) for p in cfg.compare.percentages]
    if not percentages or not all(0 < p <= 100 for p in percentages):
        raise ValueError(f"compare.percentages must lie in (0, 100], not {percentages}")
    if cfg.compare.runs < 1:
        raise ValueError(f"compare.runs must be at least 1, not {cfg.compare.runs}")
    configs = experiment_configs(cfg, overrides, label)
    dialogue = [name for name, config in configs.items() if config.get("task", "nlu") != "nlu"]
    if dialogue:
        raise ValueError(f"experiments.compare draws NLU learning curves; {dialogue} train "
                         "dialogue policies (task=dialogue)")
    out_dir = Path(cfg.paths.output_dir)
    runs: list[dict[str, Any]] = []
    curves: dict[str, dict[str, Any]] = {}
    for name, config in configs.items():
        for pct in percentages:
            point = [_run(config, name, pct, k, out_dir) for k in range(cfg.compare.runs)]
            curves.setdefault(name, {})[f"{pct:g}"] = aggregate_summaries(point)
            runs += point
    result = {"percentages": percentages, "runs_per_point": cfg.compare.runs, "seed": cfg.seed,
              "curves": curves, "runs": runs}
    (out_dir / "results.json").write_text(json.dumps(result, indent=2, default=str))
    table = markdown(result)
    (out_dir / "results.md").write_text(table)
    plot_learning_curves(curves, out_dir / "learning_curve.png")
    print(table)
    return result


def experiment_configs(cfg: DictConfig, overrides: Sequence[str], label: str | None
                       ) -> dict[str, DictConfig]:
    names = list(cfg.compare.configs or [])
    if not names:
        return {label or cfg.model.name: cfg}
    kept = [o for o in overrides if not EXPERIMENT_OVERRIDE.match(o)]
    return {name: compose_experiment([*kept, f"experiment={name}"]) for name in names}


def compose_experiment(overrides: list[str]) -> DictConfig:
    """The ``compare`` config with ``overrides``, inside a running Hydra app or outside one."""
    return compose_config("compare", overrides)


def _run(config: DictConfig, name: str, pct: float, k: int, out_dir: Path) -> dict[str, Any]:
    run_cfg = config.copy()
    with open_dict(run_cfg):
        run_cfg.seed = config.seed + k
        run_cfg.data.train_fraction = pct / 100
        run_cfg.paths.output_dir = str(out_dir / name / f"{pct:g}pct_run{k + 1}")
    log.info("%s: %g %% of the training data, run %d (seed %d)", name, pct, k + 1, run_cfg.seed)
    return {"config": name, "percentage": pct, "run": k + 1, **train(run_cfg)}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Learning curves: {result['runs_per_point']} run(s) per point, mean ± sd", "",
             "| config | % of train | train examples | intent accuracy | entity F1 |",
             "| --- | --- | --- | --- | --- |"]
    for name, points in result["curves"].items():
        for pct, agg in points.items():
            cells = [format_mean_sd(agg, key) if isinstance(agg.get(key), dict) else "–"
                     for key, _ in CURVES]
            examples = agg["num_train_examples"]["mean"]
            lines.append(f"| {name} | {pct} | {examples:.0f} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def plot_learning_curves(curves: dict[str, dict[str, Any]], path: Path) -> Path:
    """One panel per metric of :data:`CURVES` that some config has: mean (%) against the mean
    number of training examples, sd error bars, one line per config."""
    metrics = [(key, title) for key, title in CURVES
               if any(isinstance(agg.get(key), dict) for points in curves.values()
                      for agg in points.values())]
    fig = Figure(figsize=(5.5 * max(len(metrics), 1), 4.2))
    FigureCanvasAgg(fig)
    for i, (key, title) in enumerate(metrics, 1):
        ax = fig.add_subplot(1, len(metrics), i)
        for name, points in curves.items():
            xs, ys, sds = [], [], []
            for agg in sorted(points.values(), key=lambda a: a["num_train_examples"]["mean"]):
                if isinstance(agg.get(key), dict):
                    xs.append(agg["num_train_examples"]["mean"])
                    ys.append(agg[key]["mean"] * 100)
                    sds.append(agg[key]["sd"] * 100)
            ax.errorbar(xs, ys, yerr=sds, marker="o", capsize=3, label=name)
        ax.set_xlabel("training examples")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Learning curves (mean ± sd over runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


@hydra.main(version_base="1.3", config_path="../configs", config_name="compare")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    compare(cfg, list(hydra_cfg.overrides.task), hydra_cfg.runtime.choices.get("experiment"))


if __name__ == "__main__":
    main()
