"""``python -m serving --workers N``: N uvicorn worker processes on one listening socket. Each
loads the bundles itself and answers on a core of its own; conversations are shared through the
tracker store, as between servers started one by one against one SQL/Redis store."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
import time

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from serving.settings import LOG_FORMAT, ServerSettings
from serving.tracker_store import is_process_local

__all__ = ["TCPConfig", "app_from_environment", "serve_workers"]

SETTINGS_VARIABLE = "DIALAB_SERVER_SETTINGS"  # how the parent hands the settings to each worker


def serve_workers(args: argparse.Namespace, settings: ServerSettings) -> int:
    """``args.workers`` worker processes on one socket until interrupted. The bundles are
    checked here (manifest, sha256) so that a broken one is one clear error, not workers
    failing in a loop; each worker then loads them itself (:func:`app_from_environment`)."""
    from nlu_models.export import BundleError, open_bundle

    if settings.policy and is_process_local(settings.tracker_store):
        print("error: --workers with --policy needs a tracker store that the workers share "
              "(sqlite:///file.db, postgresql://..., redis://...), not memory://: each worker "
              "would keep its own conversations", file=sys.stderr)
        return 1
    try:
        open_bundle(settings.nlu, "nlu")
        if settings.policy:
            open_bundle(settings.policy, "policy")
    except (OSError, BundleError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    os.environ[SETTINGS_VARIABLE] = json.dumps(
        {"settings": dataclasses.asdict(settings), "log_level": args.log_level}, default=str)
    config = TCPConfig(f"{__name__}:app_from_environment", factory=True, workers=args.workers,
                       host=args.host, port=args.port, log_level=args.log_level)
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0


class TCPConfig(uvicorn.Config):
    """uvicorn's config, whose pre-bound listening socket says it is TCP. uvicorn binds it with
    ``proto`` 0; accepted connections inherit that, and asyncio then leaves Nagle's algorithm on
    (it sets TCP_NODELAY only for ``IPPROTO_TCP``), so each keep-alive answer after the first
    waited ~40 ms for the client's delayed ACK (uvicorn issue #3149; 44 ms p50 here)."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            sock.set_inheritable(True)
        return sock


def app_from_environment() -> FastAPI:
    """The app of one worker, from the settings its parent put in ``$DIALAB_SERVER_SETTINGS``."""
    from serving.app import create_app

    started = time.perf_counter()
    given = json.loads(os.environ[SETTINGS_VARIABLE])
    logging.basicConfig(level=given["log_level"].upper(), format=LOG_FORMAT)
    app = create_app(ServerSettings(**given["settings"]))
    logging.getLogger("serving").info("worker %d loaded in %.2f s", os.getpid(),
                                      time.perf_counter() - started)
    return app
