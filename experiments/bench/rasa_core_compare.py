"""dialab's policies beside Rasa 3.6's on the same bot, stories and epochs, in one run:
``rasa train core`` + ``rasa test core`` against ``experiments.train experiment=ted_<bot>``.
Reports conversation accuracy, action accuracy / weighted F1 (Rasa's own story_report.json for
Rasa, ours for dialab), training wall time and TED's time per epoch (ratios), and peak memory.

    python -m experiments.bench.rasa_core_compare --bot carbon --epochs 40
    python -m experiments.bench.rasa_core_compare --bot financial --epochs 40 --bf16

Rasa uses the bot's own config.yml policies with TED's epochs set to ``--epochs``; dialab's
experiment config mirrors the same policies. Needs the anchor (``../shared/tools/rasa_anchor/
install.sh``; venv at $RASA_VENV). The trainings run one after the other, never at once.
``--bf16`` adds a dialab run with ``trainer=cpu_bf16`` (bfloat16 autocast) and its ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from experiments import REPO_ROOT
from experiments.bench.common import (machine_info, rasa_env, rasa_executable, ratios,
                                      timed_command, train_dialab)
from experiments.bench.rasa_compare import _rasa_epoch_seconds

BOTS = {"carbon": ("rasa_bots/carbon-bot", "test_stories"),
        "financial": ("rasa_bots/financial-demo", "tests")}


def data_dir() -> Path:
    return Path(os.environ.get("DIALAB_DATA", REPO_ROOT.parent / "shared" / "data"))


def rasa_config(bot: Path, epochs: int, out: Path) -> Path:
    """The bot's config.yml with TED's epochs set, and no NLU pipeline (core only)."""
    config = yaml.safe_load((bot / "config.yml").read_text())
    for policy in config.get("policies") or []:
        if policy.get("name") == "TEDPolicy":
            policy["epochs"] = epochs
    config.pop("pipeline", None)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def domain_for_rasa(bot: Path, work: Path) -> Path:
    """Rasa 3.6 refuses 2.x domains (``rasa data migrate`` first): a 2.x domain is written back
    migrated by our reader, and both systems train on that same file."""
    from dialogue_models.domain import domain_to_yaml, read_domain

    domain = read_domain(bot / "domain.yml")
    if (domain.version or "2").split(".")[0] == "3":
        return bot / "domain.yml"
    migrated = work / "domain_migrated.yml"
    migrated.write_text(domain_to_yaml(domain))
    return migrated


def run_rasa(bot: Path, domain: Path, tests: str, epochs: int, work: Path) -> dict[str, Any]:
    rasa, env = rasa_executable(), rasa_env()
    config = rasa_config(bot, epochs, work / "config.yml")
    train = timed_command([str(rasa), "train", "core", "-c", str(config), "-d",
                           str(domain), "-s", str(bot / "data"), "--out",
                           str(work / "models"), "--fixed-model-name", "core"],
                          work / "rasa_train.log", cwd=work, env=env)
    results = work / "rasa_results"
    timed_command([str(rasa), "test", "core", "-s", str(bot / tests), "-m",
                   str(work / "models" / "core.tar.gz"), "--out", str(results), "--no-plot"],
                  work / "rasa_test.log", cwd=work, env=env)
    report = json.loads((results / "story_report.json").read_text())
    conversation = report.get("conversation_accuracy", {})
    return {**train, "ted_epoch_seconds": _rasa_epoch_seconds(work / "rasa_train.log"),
            "conversation_accuracy": conversation.get("accuracy"),
            "correct_stories": conversation.get("correct"), "stories": conversation.get("total"),
            "action_accuracy": report.get("accuracy"),
            "action_weighted_f1": report.get("weighted avg", {}).get("f1-score"),
            "in_data_fraction": _in_data_fraction(work / "rasa_test.log")}


def _in_data_fraction(log: Path) -> float | None:
    match = re.search(r"In-data fraction: ([0-9.]+)", log.read_text(errors="replace"))
    return float(match.group(1)) if match else None


def run_dialab(bot_key: str, domain: Path, epochs: int, seed: int, work: Path,
               name: str = "dialab", overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    run_dir = work / name
    result = train_dialab(f"ted_{bot_key}", epochs, seed, run_dir, work / f"{name}_train.log",
                          (f"data.domain={domain}", *overrides))
    summary = json.loads((run_dir / "reports" / "summary.json").read_text())
    return {**result, "train_seconds": summary["train_seconds"],
            "ted_epoch_seconds": round(summary["train_seconds"] / epochs, 3),
            "conversation_accuracy": summary["conversation_accuracy"],
            "stories": summary["num_stories"], "action_accuracy": summary["action_accuracy"],
            "action_weighted_f1": summary["action_weighted_f1"],
            "in_data_fraction": summary["in_data_fraction"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bot", choices=sorted(BOTS), default="carbon")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench")
    parser.add_argument("--skip-rasa", action="store_true", help="dialab only (no anchor)")
    parser.add_argument("--bf16", action="store_true",
                        help="also train dialab with trainer=cpu_bf16 (bfloat16 autocast) and "
                             "report its ratios beside the default's")
    args = parser.parse_args(argv)

    folder, tests = BOTS[args.bot]
    bot = data_dir() / folder
    work = args.out / f"rasa_core_compare_{args.bot}_{args.epochs}ep"
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    domain = domain_for_rasa(bot, work)
    rasa = None
    if not args.skip_rasa:
        print(f"[{started}] Rasa 3.6 core, TED {args.epochs} epochs on {args.bot} ...", flush=True)
        rasa = run_rasa(bot, domain, tests, args.epochs, work)
        print(f"  done: {rasa}", flush=True)
    print(f"dialab policies, TED {args.epochs} epochs ...", flush=True)
    dialab = run_dialab(args.bot, domain, args.epochs, args.seed, work)
    print(f"  done: {dialab}", flush=True)
    variants: dict[str, Any] = {}
    if args.bf16:
        print(f"dialab policies with trainer=cpu_bf16, TED {args.epochs} epochs ...", flush=True)
        bf16 = run_dialab(args.bot, domain, args.epochs, args.seed, work, "dialab_bf16",
                          ("trainer=cpu_bf16",))
        print(f"  done: {bf16}", flush=True)
        variants["dialab_bf16"] = bf16
        if rasa:
            variants["ratios_bf16"] = ratios(rasa, bf16, "ted_epoch_seconds")
    result = {"bot": args.bot, "epochs": args.epochs, "seed": args.seed, "date": started,
              "machine": machine_info(),
              "command": " ".join(["python -m experiments.bench.rasa_core_compare",
                                   *(argv if argv is not None else sys.argv[1:])]),
              "rasa": rasa, "dialab": dialab, **variants}
    if rasa:
        result["ratios"] = ratios(rasa, dialab, "ted_epoch_seconds")
    out_file = args.out / f"rasa_core_compare_{args.bot}_{args.epochs}ep.json"
    out_file.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
