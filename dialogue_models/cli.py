"""The ``dialab`` command line: ``dialab data validate|stats|convert``, the experiment
hand-offs ``dialab train|evaluate|cross-validate|export [hydra overrides ...]``, and the serving
hand-offs ``dialab serve ...`` (``python -m serving``), ``dialab shell`` and
``dialab interactive``."""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from nlu_models.data.errors import DataError
from nlu_models.data.loading import FORMATS


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialab", description="dialab: DIET/TED toolkit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="inspect, validate and convert training data")
    data_commands = data.add_subparsers(dest="data_command", required=True)

    validate = data_commands.add_parser("validate", help="check data for errors and "
                                        "inconsistencies (like `rasa data validate`)")
    validate.add_argument("paths", nargs="+", type=Path, help="bot folders or data files")
    validate.add_argument("--format", choices=FORMATS, default="auto")
    validate.add_argument("--fail-on-warnings", action="store_true",
                          help="exit non-zero on warnings too")
    validate.set_defaults(run=_validate)

    stats = data_commands.add_parser("stats", help="count examples, intents, stories, ...")
    stats.add_argument("paths", nargs="+", type=Path)
    stats.add_argument("--format", choices=FORMATS, default="auto")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(run=_stats)

    convert = data_commands.add_parser("convert", help="convert data to Rasa YAML 3.1")
    convert.add_argument("path", type=Path)
    convert.add_argument("out", type=Path, help="a .yml file (all sections in one file) or a "
                         "folder (domain.yml, data/nlu.yml, data/stories.yml, data/rules.yml, "
                         "tests/...)")
    convert.add_argument("--format", choices=FORMATS, default="auto")
    convert.add_argument("--to", choices=["rasa-yaml"], default="rasa-yaml")
    convert.set_defaults(run=_convert)

    shell = commands.add_parser("shell", help="chat with a bot (nlu + policy bundles) in the "
                                "terminal, like `rasa shell`")
    shell.add_argument("--nlu", required=True, help="an nlu export bundle folder")
    shell.add_argument("--policy", required=True, help="a policy export bundle folder")
    shell.add_argument("--action-endpoint", help="the action server's webhook URL")
    shell.add_argument("--tracker-store", default="memory://",
                       help="where the conversation is kept (default memory://)")
    shell.add_argument("--sender", default="shell", help="the conversation id")
    shell.set_defaults(run=_shell)

    interactive = commands.add_parser(
        "interactive", help="talk to the bot and correct it; the session is saved as new NLU "
        "examples and a story beside the training data (like `rasa interactive`)")
    interactive.add_argument("--data", required=True, type=Path,
                             help="the bot folder (domain.yml, data/...)")
    interactive.add_argument("--nlu", required=True, help="an nlu export bundle folder")
    interactive.add_argument("--policy", required=True, help="a policy export bundle folder")
    interactive.add_argument("--action-endpoint", help="the action server's webhook URL")
    interactive.add_argument("--out", type=Path, help="where the session's folder goes "
                             "(default: DATA/data, or DATA without a data/ folder)")
    interactive.add_argument("--sender", default="interactive", help="the conversation id")
    interactive.add_argument("--retrain", action="store_true",
                             help="retrain after every /save (/retrain always works)")
    interactive.add_argument("--retrain-epochs", type=int, help="epochs of each retraining "
                             "(default: the experiments' own)")
    interactive.add_argument("--nlu-experiment", default="diet_demo",
                             help="the Hydra experiment that retrains DIET (default diet_demo)")
    interactive.add_argument("--policy-experiment", default="ted_demo",
                             help="the Hydra experiment that retrains the policies (default "
                             "ted_demo)")
    interactive.add_argument("--models-out", type=Path, help="where retrained runs and bundles "
                             "go (default outputs/interactive/<timestamp>)")
    interactive.set_defaults(run=_interactive)
    from serving.__main__ import DESCRIPTION, build_parser as serving_parser  # argparse only

    serve = commands.add_parser("serve", help="run the HTTP server (python -m serving)",
                                description=DESCRIPTION,
                                parents=[serving_parser(add_help=False)])
    serve.set_defaults(run=_serve)

    for name, module, what in EXPERIMENTS:
        command = commands.add_parser(name, help=f"{what} (Hydra overrides, e.g. "
                                      "experiment=diet_snips seed=1)", add_help=False)
        command.add_argument("overrides", nargs=argparse.REMAINDER)
        command.set_defaults(run=_experiment, module=module)
    return parser


EXPERIMENTS = (("train", "experiments.train", "train DIET"),
               ("evaluate", "experiments.evaluate", "evaluate a checkpoint and write reports"),
               ("cross-validate", "experiments.cross_validate", "train and test on every fold"),
               ("compare", "experiments.compare", "learning curves: train configs on parts of "
                "the training data and plot accuracy against data size"),
               ("export", "experiments.export", "export a checkpoint to a bundle (JSON + "
                "safetensors)"))


def _experiment(args) -> int:
    """Run ``python -m experiments.<entry> overrides...`` from the source checkout: the
    experiments and configs live beside the packages, not inside them."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / "experiments" / "train.py").is_file():
        print("error: `dialab train` needs the dialab source checkout (experiments/ and "
              "configs/ beside the packages); install it with `pip install -e .`",
              file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return subprocess.call([sys.executable, "-m", args.module, *args.overrides], env=env)


def _shell(args) -> int:
    from serving.shell import main as shell  # serving sits above dialogue_models: import late

    return shell(args)


def _interactive(args) -> int:
    from serving.interactive import main as interactive

    return interactive(args)


def _serve(args) -> int:
    from serving.__main__ import serve

    return serve(args)


def _validate(args) -> int:
    from dialogue_models.project import load_bot
    from dialogue_models.validation import validate_bot

    bot = load_bot(args.paths, args.format, collect_errors=True)
    issues = validate_bot(bot)
    errors = [i for i in issues if i.level == "error"]
    warnings = [i for i in issues if i.level == "warning"]
    for issue in errors + warnings:
        print(issue, file=sys.stderr if issue.level == "error" else sys.stdout)
    verdict = "failed" if errors or (warnings and args.fail_on_warnings) else "passed"
    print(f"validation {verdict}: {len(bot.files)} files, {len(errors)} errors, "
          f"{len(warnings)} warnings")
    return 1 if verdict == "failed" else 0


def _stats(args) -> int:
    from dialogue_models.project import bot_stats, load_bot

    stats = bot_stats(load_bot(args.paths, args.format))
    if args.json:
        print(json.dumps(stats, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=", ".join(map(str, args.paths)), show_header=False)
    for key, value in stats.items():
        if key != "examples_per_intent":
            table.add_row(key.replace("_", " "), str(value))
    console = Console()
    console.print(table)
    per_intent = Table("intent", "examples", title="examples per intent")
    for intent, count in sorted(stats["examples_per_intent"].items(), key=lambda kv: -kv[1]):
        per_intent.add_row(intent, str(count))
    console.print(per_intent)
    return 0


def _convert(args) -> int:
    from dialogue_models.convert import write_rasa_yaml
    from dialogue_models.project import load_bot

    written = write_rasa_yaml(load_bot(args.path, args.format), args.out)
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return args.run(args)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the CLI never ends in a bare traceback
        if args.debug:
            traceback.print_exc()
        print(f"internal error: {type(err).__name__}: {err} (run `dialab --debug ...` for the "
              "traceback and report it)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
