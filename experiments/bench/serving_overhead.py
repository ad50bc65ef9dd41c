"""Where a served batch's time goes: the same ``/model/parse/batch`` requests parsed in-process
(one thread, then ``--threads``) and over HTTP from ``--clients`` keep-alive connections, with
the server's CPU per request (a ``/health`` request; a parse request, one at a time) beside
the in-process CPU of the same parse: their difference is what the HTTP layer (uvicorn,
FastAPI, JSON) adds; ``--threads`` threads against one show how much of a parse runs outside
the GIL, and the HTTP throughput against the threads' what serving keeps of it.

    python -m experiments.bench.serving_overhead --nlu-run bundles/nlu [--nlu-backend onnx-int8]

Writes ``serving_overhead.json`` under ``--out`` and prints it.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from experiments import REPO_ROOT
from experiments.bench.common import machine_info
from experiments.bench.http_load import (Connection, batch_throughput, request_batches,
                                         wait_first_parse)
from experiments.bench.serving import dialab_server, parse_texts
from experiments.demo_conversation import free_port, resolve_bundle


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_process(parse: Callable[[list[str]], Any], batches: list[list[str]], threads: int
               ) -> dict[str, Any]:
    """``batches`` parsed from ``threads`` threads at once (each its share): utterances per
    second and the process's CPU seconds per request."""
    for batch in batches[:3]:  # warm-up
        parse(batch)
    shares = [batches[i::threads] for i in range(threads)]
    workers = [threading.Thread(target=lambda share=share: [parse(b) for b in share])
               for share in shares]
    cpu, started = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    total = sum(map(len, batches))
    return {"threads": threads, "utterances_per_s": round(total / elapsed, 1),
            "cpu_ms_per_request": round(cpu / len(batches) * 1000, 3)}


def server_cpu_per_request(pid: int, send: Callable[[], Any], requests: int) -> float:
    """Milliseconds of the server's CPU per request, ``requests`` sent one after the other."""
    for _ in range(min(20, requests)):
        send()
    before = process_cpu_seconds(pid)
    for _ in range(requests):
        send()
    return round((process_cpu_seconds(pid) - before) / requests * 1000, 3)


def measure(bundle: Path, backend: str, batch_size: int, utterances: int, threads: int,
            clients: int, work: Path) -> dict[str, Any]:
    from nlu_models.onnx_runtime import load_interpreter

    texts = parse_texts()
    batches = request_batches(texts, batch_size, utterances)  # as batch_throughput sends them
    if backend == "torch":  # one intra-op thread, as the server sets it
        import torch

        torch.set_num_threads(1)
    options = {} if backend == "torch" else {"num_threads": 1}
    parse = load_interpreter(bundle, backend, **options).parse
    result: dict[str, Any] = {"in_process": [in_process(parse, batches, 1),
                                             in_process(parse, batches, threads)]}
    port = free_port()
    service = dialab_server(bundle, work, backend)(port, "serving_overhead")
    try:
        wait_first_parse(port, time.perf_counter(), 60,
                         alive=lambda: service.process.poll() is None)
        pid = service.process.pid
        cpu_before = process_cpu_seconds(pid)
        http = batch_throughput(port, texts, utterances, batch_size, clients)
        cpu = process_cpu_seconds(pid) - cpu_before
        # batch_throughput's CPU includes one warm-up request per client, its seconds do not
        http["server_cpu_ms_per_request"] = round(cpu / (len(batches) + clients) * 1000, 3)
        http["server_cores_busy"] = round(cpu * len(batches) / (len(batches) + clients)
                                          / http["seconds"], 2)
        result["http"] = http
        connection = Connection(port)
        try:
            def health() -> None:
                connection.http.request("GET", "/health")
                connection.http.getresponse().read()
            result["server_cpu_ms"] = {
                "health": server_cpu_per_request(pid, health, 1000),
                "parse_batch": server_cpu_per_request(
                    pid, lambda: connection.post("/model/parse/batch", {"texts": batches[0]}),
                    100)}
        finally:
            connection.close()
    finally:
        service.stop()
    # one request at a time: what HTTP adds to a parse's CPU; at once: what serving keeps of the
    # in-process throughput with as many threads as clients
    one, many = result["in_process"]
    result["http_overhead_cpu_ms_per_request"] = round(
        result["server_cpu_ms"]["parse_batch"] - one["cpu_ms_per_request"], 3)
    result["http_share_of_in_process_throughput"] = round(
        result["http"]["utterances_per_s"] / many["utterances_per_s"], 3)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nlu-run", type=Path, required=True,
                        help="an NLU bundle (or a folder with one, as bench.serving writes)")
    parser.add_argument("--nlu-backend", default="onnx-int8",
                        choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--utterances", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = resolve_bundle(args.nlu_run, args.out / "serving_overhead_bundle", onnx=True)
    result = {"bundle": str(bundle), "backend": args.nlu_backend,
              "batch_size": args.batch_size, "utterances": args.utterances,
              "machine": machine_info(), "date": time.strftime("%Y-%m-%d"),
              **measure(bundle, args.nlu_backend, args.batch_size, args.utterances,
                        args.threads, args.clients, args.out)}
    text = json.dumps(result, indent=2)
    (args.out / "serving_overhead.json").write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
