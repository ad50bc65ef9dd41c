"""Loopback HTTP measurements of a parse server (dialab's or ``rasa run --enable-api``), standard
library only so the load generator starts fast and stays small beside the server it measures.

- :func:`wait_first_parse`: seconds from a given start until ``POST /model/parse`` first answers
  200 (polled every 20 ms on fresh connections: the cold start).
- :func:`sequential_latency`: one keep-alive connection, ``n`` requests after a warm-up.
- :func:`batch_throughput`: utterances/s through ``POST /model/parse/batch`` on one connection.
- :func:`concurrent_load`: ``clients`` asyncio connections share ``requests`` POSTs; run it as
  a separate process with ``python -m experiments.bench.http_load load ...`` (prints JSON), so
  the client's own CPU time is not charged to the caller.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

__all__ = ["latency_summary", "wait_first_parse", "sequential_latency", "batch_throughput",
           "concurrent_load", "LOAD_CLIENT"]

LOAD_CLIENT = "experiments.bench.http_load: Python asyncio, raw HTTP/1.1 keep-alive, one process"
_JSON = {"Content-Type": "application/json"}


def latency_summary(samples_ms: Sequence[float]) -> dict[str, Any]:
    """Count, p50 / p95 / p99 (linear interpolation between the closest ranks, as numpy's
    default), mean and max of latencies in milliseconds."""
    if not samples_ms:
        raise ValueError("no latencies to summarise")
    ordered = sorted(samples_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 \
        else [ordered[0]] * 99
    return {"n": len(ordered), "p50_ms": round(cuts[49], 3), "p95_ms": round(cuts[94], 3),
            "p99_ms": round(cuts[98], 3), "mean_ms": round(statistics.fmean(ordered), 3),
            "max_ms": round(ordered[-1], 3)}


class Connection:
    """One keep-alive HTTP/1.1 connection to ``127.0.0.1:port``."""

    def __init__(self, port: int, timeout_s: float = 60.0) -> None:
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def post(self, path: str, body: Any) -> tuple[int, bytes]:
        self.http.request("POST", path, json.dumps(body), _JSON)
        response = self.http.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.http.close()


def wait_first_parse(port: int, started: float, timeout_s: float, alive=lambda: True,
                     text: str = "hello") -> float:
    """Seconds from ``started`` (a ``time.perf_counter()``) until ``POST /model/parse`` answers
    200; polls every 20 ms. Raises TimeoutError after ``timeout_s``, RuntimeError once
    ``alive()`` says the server process is gone."""
    while True:
        connection = Connection(port, timeout_s=max(timeout_s, 1.0))
        try:
            status, _ = connection.post("/model/parse", {"text": text})
            if status == 200:
                return time.perf_counter() - started
        except OSError:  # refused or reset: not listening yet
            pass
        finally:
            connection.close()
        if not alive():
            raise RuntimeError("the server exited before it answered /model/parse")
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"no 200 from /model/parse within {timeout_s:.0f} s")
        time.sleep(0.02)


def sequential_latency(port: int, texts: Sequence[str], n: int, warmup: int = 50
                       ) -> dict[str, Any]:
    """``warmup`` then ``n`` parses, one after the other on one connection, cycling ``texts``:
    the latency summary plus requests per second."""
    connection = Connection(port)
    try:
        for i in range(warmup):
            _expect_ok(connection.post("/model/parse", {"text": texts[i % len(texts)]}))
        samples, started = [], time.perf_counter()
        for i in range(n):
            sent = time.perf_counter()
            _expect_ok(connection.post("/model/parse", {"text": texts[i % len(texts)]}))
            samples.append((time.perf_counter() - sent) * 1000)
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    return {**latency_summary(samples), "warmup": warmup,
            "requests_per_s": round(n / elapsed, 1)}


def request_batches(texts: Sequence[str], batch_size: int, utterances: int) -> list[list[str]]:
    """``utterances`` texts (at least one request's worth), cycling ``texts``, in requests of
    ``batch_size``."""
    return [[texts[(start + i) % len(texts)] for i in range(batch_size)]
            for start in range(0, max(utterances, batch_size), batch_size)]


def batch_throughput(port: int, texts: Sequence[str], utterances: int, batch_size: int,
                     clients: int = 1) -> dict[str, Any]:
    """``POST /model/parse/batch`` with ``batch_size`` texts at a time until ``utterances``
    texts are parsed, from ``clients`` keep-alive connections at once (each its next batch as
    soon as its previous one is answered; after one warm-up batch each): utterances per
    second."""
    batches = request_batches(texts, batch_size, utterances)
    connections = [Connection(port) for _ in range(clients)]

    def send(connection: Connection, share: list[list[str]]) -> None:
        for batch in share:
            status, body = connection.post("/model/parse/batch", {"texts": batch})
            _expect_ok((status, body))
            if len(json.loads(body)) != len(batch):
                raise RuntimeError(f"the batch route answered {len(json.loads(body))} results "
                                   f"for {len(batch)} texts")

    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, connections, [[batches[0]]] * clients))  # warm-up
            started = time.perf_counter()
            list(pool.map(send, connections, [batches[i::clients] for i in range(clients)]))
            elapsed = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    total = sum(len(b) for b in batches)
    return {"utterances": total, "batch_size": batch_size, "clients": clients,
            "seconds": round(elapsed, 3), "utterances_per_s": round(total / elapsed, 1)}


def concurrent_load(port: int, texts: Sequence[str], requests: int, clients: int,
                    timeout_s: float = 60.0) -> dict[str, Any]:
    """``clients`` keep-alive connections send ``requests`` ``POST /model/parse`` in all, each
    its next request as soon as its previous one is answered. Errors: non-200 answers, broken
    connections and timeouts (the connection is opened anew after one)."""
    return asyncio.run(_load(port, texts, requests, clients, timeout_s))


async def _load(port: int, texts: Sequence[str], requests: int, clients: int,
                timeout_s: float) -> dict[str, Any]:
    bodies = [_request(port, "/model/parse", {"text": t}) for t in texts]
    queue = iter(range(requests))
    samples: list[float] = []
    errors: dict[str, int] = {}

    async def client() -> None:
        reader = writer = None
        for i in queue:  # one shared iterator: each index is taken by one client
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                sent = time.perf_counter()
                writer.write(bodies[i % len(bodies)])
                status = await asyncio.wait_for(_read_response(reader), timeout_s)
                if status == 200:
                    samples.append((time.perf_counter() - sent) * 1000)
                    continue
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as err:
                errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    summary = latency_summary(samples) if samples else {"n": 0}
    return {**summary, "requests": requests, "clients": clients,
            "errors": sum(errors.values()), "error_kinds": errors,
            "seconds": round(elapsed, 3), "requests_per_s": round(len(samples) / elapsed, 1),
            "client": LOAD_CLIENT}


def _request(port: int, path: str, body: Any) -> bytes:
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {len(data)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + data


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (status line, headers, a Content-Length body); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    length = {k.strip().lower(): v.strip() for k, v in headers.items()}.get("content-length")
    if length is None:
        raise ValueError("a response without Content-Length (chunked bodies are not read)")
    await reader.readexactly(int(length))
    return status


def _expect_ok(answer: tuple[int, bytes]) -> None:
    status, body = answer
    if status != 200:
        raise RuntimeError(f"the server answered {status}: {body[:300]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench.http_load",
                                     description="Concurrent POST /model/parse load on "
                                     "loopback; prints the result as JSON.")
    parser.add_argument("mode", choices=["load"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--texts", type=Path, required=True, help="a JSON list of texts")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args(argv)
    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    print(json.dumps(concurrent_load(args.port, texts, args.requests, args.clients)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
