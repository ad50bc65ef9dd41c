"""Serving benchmark: dialab's server beside ``rasa run --enable-api`` (Rasa 3.6.21) on models
trained on the same data (the demo bot's NLU, the same DIET epochs), in one run.

    python -m experiments.bench.serving [--requests 10000] [--clients 32] [--sequential 1000]
        [--skip-rasa] [--store-url URL] [--out DIR] [--nlu-backend auto] [--workers 1]

1. Models, one training at a time, kept in ``<out>/serving_work_<epochs>ep/`` and reused by the
   next run: dialab's ``experiment=diet_demo`` and ``ted_demo`` (``--nlu-run`` /
   ``--policy-run`` name existing runs or bundles instead), exported with their ONNX graphs;
   Rasa's NLU from ``data/demo_bot/data/nlu.yml`` with the anchor's default pipeline
   (``../shared/tools/rasa_anchor/config_diet.yml``) at the same epochs.
2. Each system's NLU-only server in turn (never both at once), parse texts from
   ``data/demo_bot/tests/test_nlu.yml``: cold start (process spawned → first ``/model/parse``
   answered), sequential latency on one keep-alive connection, batch throughput (dialab:
   ``/model/parse/batch``; Rasa has no batch route: its best of sequential and concurrent
   ``/model/parse``), the load (``--clients`` connections, ``--requests`` requests, from a
   separate process), and the resident memory of the server's process tree after the load.
3. Faults, dialab only, with the demo bot's policy and action server: SIGKILL mid-conversation
   and restart on a SQLite file store, two server processes on one store
   (:mod:`experiments.bench.serving_faults`); both also on ``--store-url`` when given
   (``postgresql://...``, ``redis://...``).

Prints a table (dialab, Rasa, Rasa/dialab, target, met) and writes ``serving_<backend>.json``
in ``--out`` with the machine, the commands and every number.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from experiments import REPO_ROOT
from experiments.bench.common import (anchor_config, machine_info, rasa_env, rasa_executable,
                                      timed_command, train_dialab)
from experiments.bench.http_load import (LOAD_CLIENT, batch_throughput, sequential_latency,
                                         wait_first_parse)
from experiments.bench.serving_faults import kill_and_restart, two_servers
from experiments.demo_conversation import ACTIONS_SCRIPT, Service, free_port, resolve_bundle

DEMO_BOT = REPO_ROOT / "data" / "demo_bot"
PARSE_TEXTS = DEMO_BOT / "tests" / "test_nlu.yml"
# (key, label, target as (operator, value) or None); lower is better unless the operator is >=
METRICS = (("cold_start_s", "cold start: spawn -> first parse (s)", ("<", 1.0)),
           ("sequential.p50_ms", "sequential /model/parse p50 (ms)", ("<=", 3.0)),
           ("sequential.p95_ms", "sequential /model/parse p95 (ms)", ("<=", 5.0)),
           ("sequential.p99_ms", "sequential /model/parse p99 (ms)", None),
           ("throughput.utterances_per_s", "batch throughput (utterances/s)", (">=", 5000.0)),
           ("rss_mb", "resident memory after the load (MB)", ("<=", 250.0)),
           ("load.p50_ms", "load /model/parse p50 (ms)", None),
           ("load.p99_ms", "load /model/parse p99 (ms)", None),
           ("load.requests_per_s", "load throughput (requests/s)", None),
           ("load.errors", "load errors", ("==", 0)))


# ---- models --------------------------------------------------------------------------------------
def dialab_bundles(args: argparse.Namespace, work: Path) -> tuple[dict[str, Path], dict]:
    """The NLU and policy bundles (trained and exported here unless cached or given), and how
    each was made."""
    bundles, made = {}, {}
    for kind, experiment, given in (("nlu", "diet_demo", args.nlu_run),
                                    ("policy", "ted_demo", args.policy_run)):
        source = Path(given) if given else work / f"dialab_{experiment}"
        if given:
            made[kind] = {"source": str(source)}
        elif (source / "checkpoints" / "last.ckpt").is_file():
            made[kind] = {"source": str(source), "reused": True}
        else:
            print(f"training dialab {experiment}, {args.epochs} epochs ...", flush=True)
            made[kind] = {"source": str(source), **train_dialab(
                experiment, args.epochs, args.seed, source, work / f"train_{experiment}.log")}
        cached = work / "bundles" / f"{kind}_{source.name}"
        bundles[kind] = resolve_bundle(cached if (cached / "manifest.json").is_file()
                                       else source, cached, onnx=True)
        made[kind].update(bundle=str(bundles[kind]), epochs=_bundle_epochs(bundles[kind]))
    made["nlu"]["onnx_in_bundle"] = (bundles["nlu"] / "model.onnx").is_file()
    return bundles, made


def _bundle_epochs(bundle: Path) -> int | None:
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    return (manifest.get("metrics") or {}).get("epochs")


def rasa_model(args: argparse.Namespace, work: Path) -> tuple[Path, dict]:
    """Rasa's NLU model of the demo bot at ``args.epochs`` (trained unless cached)."""
    folder = work / "rasa"
    model = folder / "models" / "nlu.tar.gz"
    if model.is_file():
        return model, {"model": str(model), "reused": True, "epochs": args.epochs}
    folder.mkdir(parents=True, exist_ok=True)
    print(f"training Rasa 3.6 NLU, {args.epochs} epochs ...", flush=True)
    config = anchor_config(args.epochs, folder / "config.yml")
    train = timed_command([str(rasa_executable()), "train", "nlu", "-c", str(config), "-u",
                           str(DEMO_BOT / "data" / "nlu.yml"), "--out", str(model.parent),
                           "--fixed-model-name", "nlu"], folder / "train.log", cwd=folder,
                          env=rasa_env())
    return model, {"model": str(model), "epochs": args.epochs, **train}


def parse_texts() -> list[str]:
    from nlu_models.data.rasa_yaml import read_nlu_yaml

    return [m.text for m in read_nlu_yaml(PARSE_TEXTS).examples]


# ---- one server's parse measurements -------------------------------------------------------------
def measure_parse_server(start: Callable[[int], Service], texts: list[str],
                         args: argparse.Namespace, texts_file: Path, batch: bool
                         ) -> dict[str, Any]:
    """Cold start, sequential latency, batch throughput (``batch``), load and memory of the
    server ``start(port)`` spawns; it is stopped afterwards."""
    port = free_port()
    started = time.perf_counter()
    service = start(port)
    try:
        try:
            cold = wait_first_parse(port, started, args.startup_timeout,
                                    alive=lambda: service.process.poll() is None)
        except (RuntimeError, TimeoutError) as err:
            raise SystemExit(f"the {service.name} did not answer: {err}; its log "
                             f"({service.log}):\n{service.log_tail()}") from None
        result: dict[str, Any] = {"cold_start_s": round(cold, 3),
                                  "rss_ready_mb": process_tree_rss_mb(service.process.pid)}
        result["sequential"] = sequential_latency(port, texts, args.sequential, args.warmup)
        if batch:
            result["batch"] = batch_throughput(port, texts, args.batch_utterances,
                                               args.batch_size, args.batch_clients)
        result["load"] = run_load(port, texts_file, args.requests, args.clients)
        result["rss_mb"] = process_tree_rss_mb(service.process.pid)
        result["command"] = " ".join(service.command)
    finally:
        service.stop()
    result["throughput"] = _throughput(result)
    return result


def run_load(port: int, texts_file: Path, requests: int, clients: int) -> dict[str, Any]:
    """:func:`experiments.bench.http_load.concurrent_load` in a process of its own."""
    completed = subprocess.run([sys.executable, "-m", "experiments.bench.http_load", "load",
                                "--port", str(port), "--texts", str(texts_file),
                                "--requests", str(requests), "--clients", str(clients)],
                               cwd=REPO_ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"the load client failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout)


def _throughput(result: dict[str, Any]) -> dict[str, Any]:
    if "batch" in result:
        return {"utterances_per_s": result["batch"]["utterances_per_s"],
                "how": f"POST /model/parse/batch, {result['batch']['batch_size']} texts a "
                       f"request, {result['batch']['clients']} client(s)"}
    sequential = result["sequential"]["requests_per_s"]
    load = result["load"]["requests_per_s"]
    how = ("sequential POST /model/parse, one client" if sequential >= load else
           f"concurrent POST /model/parse, {result['load']['clients']} clients")
    return {"utterances_per_s": max(sequential, load), "how": f"{how} (no batch route)"}


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of process ``pid`` and all its descendants, in MB."""
    import psutil

    root = psutil.Process(pid)
    total = 0
    for process in (root, *root.children(recursive=True)):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return round(total / 2 ** 20, 1)


# ---- the servers ---------------------------------------------------------------------------------
def dialab_server(nlu: Path, log_dir: Path, backend: str, policy: Path | None = None,
                  store: str = "memory://", actions_url: str | None = None, workers: int = 1
                  ) -> Callable[[int, str], Service]:
    """``start(port, label)`` → a dialab server process (log in ``log_dir/<label>.log``) with
    ``workers`` worker processes (``--workers``)."""
    def start(port: int, label: str) -> Service:
        command = [sys.executable, "-m", "serving", "--nlu", str(nlu), "--port", str(port),
                   "--tracker-store", store, "--nlu-backend", backend, "--log-level", "warning",
                   "--workers", str(workers)]
        if policy is not None:
            command += ["--policy", str(policy)]
        if actions_url:
            command += ["--action-endpoint", actions_url]
        return Service("dialab server", command, port, log_dir / f"{label}.log")
    return start


def rasa_server(model: Path, folder: Path) -> Callable[[int], Service]:
    def start(port: int) -> Service:
        return Service("Rasa server", [str(rasa_executable()), "run", "--enable-api", "-m",
                                       str(model), "--port", str(port)],
                       port, folder / "rasa_server.log", env=rasa_env(), cwd=folder)
    return start


def run_faults(bundles: dict[str, Path], args: argparse.Namespace, work: Path
               ) -> dict[str, Any]:
    """Both fault checks on a fresh SQLite file store, then on ``--store-url`` if given."""
    database = work / "faults_trackers.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    stores = [f"sqlite:///{database}"] + ([args.store_url] if args.store_url else [])
    port = free_port()
    actions = Service("action server", [sys.executable, str(ACTIONS_SCRIPT), "--port",
                                        str(port)], port, work / "logs" / "action_server.log")

    def start(label: str, store: str) -> Service:
        return dialab_server(bundles["nlu"], work / "logs", args.nlu_backend, bundles["policy"],
                             store, f"{actions.url}/webhook")(free_port(),
                                                              f"{_scheme(store)}_{label}")
    results: dict[str, Any] = {}
    try:
        actions.wait_healthy(args.startup_timeout)
        for url in stores:
            print(f"faults on the {_scheme(url)} store ...", flush=True)
            results[_scheme(url)] = {
                "store": _safe_url(url),
                "kill9": kill_and_restart(start, url, args.startup_timeout),
                "two_servers": two_servers(start, url, timeout_s=args.startup_timeout)}
    finally:
        actions.stop()
    return results


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0]


def _safe_url(url: str) -> str:
    """The URL without a password (``user:secret@`` → ``user:***@``)."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return scheme + sep + credentials + at + host


# ---- the report ----------------------------------------------------------------------------------
def metric(result: dict[str, Any] | None, key: str) -> float | None:
    """``result["a"]["b"]`` for key ``"a.b"``; None when any part is missing."""
    value: Any = result
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def target_met(value: float | None, target: tuple[str, float] | None) -> bool | None:
    if value is None or target is None:
        return None
    op, bound = target
    return {"<": value < bound, "<=": value <= bound, ">=": value >= bound,
            "==": value == bound}[op]


def comparison(dialab: dict[str, Any], rasa: dict[str, Any] | None) -> dict[str, Any]:
    """Per metric: both values, Rasa/dialab (where both were measured), target, met."""
    rows = {}
    for key, label, target in METRICS:
        ours, theirs = metric(dialab, key), metric(rasa, key)
        ratio = round(theirs / ours, 2) if ours and theirs is not None else None
        rows[key] = {"label": label, "dialab": ours, "rasa": theirs,
                     "ratio_rasa_over_dialab": ratio,
                     "target": f"{target[0]} {target[1]:g}" if target else None,
                     "met": target_met(ours, target)}
    return rows


def print_table(rows: dict[str, Any], faults: dict[str, Any]) -> None:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, bool):
            return "yes" if value else "NO"
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return f"{value:,}"

    lines = [("", "dialab", "Rasa 3.6", "Rasa/dialab", "target", "met")]
    lines += [(r["label"], cell(r["dialab"]), cell(r["rasa"]), cell(r["ratio_rasa_over_dialab"]),
               r["target"] or "-", cell(r["met"])) for r in rows.values()]
    for store, result in faults.items():
        kill, pair = result["kill9"], result["two_servers"]
        lines.append((f"kill -9 + restart: tracker intact ({store})",
                      cell(kill.get("tracker_intact")), "-", "-", "yes", cell(kill["ok"])))
        lines.append((f"two servers: lost events ({store})", cell(pair["lost_events"]), "-",
                      "-", "== 0", cell(pair["ok"])))
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    for i, line in enumerate(lines):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(line, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    work = args.out / f"serving_work_{args.epochs}ep"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    bundles, dialab_made = dialab_bundles(args, work)
    rasa_made = None
    if not args.skip_rasa:
        model, rasa_made = rasa_model(args, work)
    texts = parse_texts()
    texts_file = work / "parse_texts.json"
    texts_file.write_text(json.dumps(texts))

    print(f"[{started}] dialab server ({args.nlu_backend}) ...", flush=True)
    start = dialab_server(bundles["nlu"], work / "logs", args.nlu_backend,
                          workers=args.workers)
    dialab = measure_parse_server(lambda port: start(port, "parse"), texts, args, texts_file,
                                  batch=True)
    rasa = None
    if not args.skip_rasa:
        print("Rasa 3.6 server ...", flush=True)
        rasa = measure_parse_server(rasa_server(model, work / "rasa"), texts, args,
                                    texts_file, batch=False)
    faults = {} if args.skip_faults else run_faults(bundles, args, work)

    rows = comparison(dialab, rasa)
    command = " ".join(["python -m experiments.bench.serving",
                        *(argv if argv is not None else sys.argv[1:])])
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.store_url:  # no password in the results
        settings["store_url"] = _safe_url(args.store_url)
        command = command.replace(args.store_url, settings["store_url"])
    result = {"date": started, "machine": machine_info(), "command": command,
              "settings": settings,
              "parse_texts": {"file": str(PARSE_TEXTS.relative_to(REPO_ROOT)),
                              "count": len(texts)},
              "load_client": LOAD_CLIENT,
              "models": {"dialab": dialab_made, "rasa": rasa_made},
              "dialab": dialab, "rasa": rasa, "comparison": rows, "faults": faults}
    workers = f"_{args.workers}workers" if args.workers > 1 else ""
    out_file = args.out / f"serving_{args.nlu_backend}{workers}.json"
    out_file.write_text(json.dumps(result, indent=2))
    print()
    print_table(rows, faults)
    print(f"\nwritten: {out_file}")
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench.serving",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="load: requests in all")
    parser.add_argument("--clients", type=int, default=32, help="load: concurrent clients")
    parser.add_argument("--sequential", type=int, default=1_000,
                        help="sequential requests measured (after --warmup)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-utterances", type=int, default=10_000)
    parser.add_argument("--batch-clients", type=int, default=2,
                        help="concurrent batch clients (default 2: one per core)")
    parser.add_argument("--epochs", type=int, default=100, help="DIET and TED epochs, both "
                        "systems (default 100, Rasa's)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--nlu-run", type=Path, help="a diet_demo run folder, checkpoint or "
                        "bundle to serve instead of training one")
    parser.add_argument("--policy-run", type=Path, help="likewise a ted_demo one (faults)")
    parser.add_argument("--nlu-backend", default="auto",
                        choices=["auto", "torch", "onnx", "onnx-int8"])
    parser.add_argument("--store-url", help="also run the faults on this tracker store "
                        "(postgresql://..., redis://...)")
    parser.add_argument("--workers", type=int, default=1,
                        help="dialab server processes on the port (serving --workers); the "
                             "resident memory is that of all of them")
    parser.add_argument("--skip-rasa", action="store_true", help="dialab only (no anchor)")
    parser.add_argument("--skip-faults", action="store_true")
    parser.add_argument("--startup-timeout", type=float, default=300.0,
                        help="seconds a server may take to answer (default 300)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench")
    return parser


if __name__ == "__main__":
    main()
