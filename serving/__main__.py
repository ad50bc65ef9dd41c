"""``python -m serving --nlu BUNDLE [--policy BUNDLE] [--port 5005] [--workers N] ...``: run the
server with uvicorn: one process, or ``--workers`` processes on one port (each loads the bundles
and answers requests on a core of its own; conversations are shared through the tracker store,
as for servers started one by one against one SQL/Redis store)."""
from __future__ import annotations

import argparse
import logging
import sys
import time

from serving.settings import LOG_FORMAT, ServerSettings, default_tracker_store_url

__all__ = ["build_parser", "settings_from_args", "main", "serve"]


DESCRIPTION = ("Serve dialab export bundles over Rasa's HTTP API (/model/parse, "
               "/webhooks/rest/webhook, /conversations/..., /status, /health) and a web chat "
               "page at /chat.")


def build_parser(prog: str = "python -m serving", add_help: bool = True
                 ) -> argparse.ArgumentParser:
    """The server's flags (``dialab serve`` reuses them as a parent parser)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, add_help=add_help)
    parser.add_argument("--nlu", required=True, help="an nlu export bundle folder")
    parser.add_argument("--policy", help="a policy export bundle folder (needed for "
                        "conversations: the webhook and /conversations routes)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=5005, help="default 5005, as Rasa")
    parser.add_argument("--auth-token", help="require ?token=... or 'Authorization: Bearer "
                        "...' on every route but /health and /chat (open /chat?token=...)")
    parser.add_argument("--tracker-store", default=None,
                        help="sqlite:///file.db (default: dialab_trackers.db in the working "
                        "directory), postgresql://..., redis://host:6379/0 or memory://")
    parser.add_argument("--action-endpoint", help="the action server's webhook URL, e.g. "
                        "http://localhost:5055/webhook")
    parser.add_argument("--action-timeout", type=float, default=10.0,
                        help="seconds to wait for the action server (default 10)")
    parser.add_argument("--fallback-threshold", type=float, default=None,
                        help="apply Rasa's FallbackClassifier with this threshold (default: "
                        "the NLU bundle's own, if its training pipeline listed one)")
    parser.add_argument("--ambiguity-threshold", type=float, default=None,
                        help="the FallbackClassifier's ambiguity_threshold (default 0.1)")
    parser.add_argument("--no-fallback", action="store_true",
                        help="apply no FallbackClassifier, not even the bundle's")
    parser.add_argument("--callback-url", help="POST the messages of fired reminders here "
                        "(Rasa's callback channel format); else they are only stored")
    parser.add_argument("--cors", nargs="*", default=[], metavar="ORIGIN",
                        help="allow these origins ('*' for any); no CORS by default")
    parser.add_argument("--max-request-bytes", type=int, default=1_000_000)
    parser.add_argument("--max-text-chars", type=int, default=2_000)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (default 1: fastest per request for "
                        "small models; 0 leaves torch's default)")
    parser.add_argument("--nlu-backend", default="auto",
                        choices=["auto", "torch", "onnx", "onnx-int8"],
                        help="auto (default): the NLU bundle's ONNX graph on onnxruntime when "
                        "it has one, else torch")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes on the port (default 1); e.g. one per core for "
                        "batch throughput. With --policy they need a shared tracker store "
                        "(SQLite file, SQL or Redis; not memory://)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    return parser


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    return ServerSettings(nlu=args.nlu, policy=args.policy, auth_token=args.auth_token,
                          tracker_store=args.tracker_store or default_tracker_store_url(),
                          action_endpoint=args.action_endpoint,
                          action_timeout_s=args.action_timeout,
                          max_request_bytes=args.max_request_bytes,
                          max_text_chars=args.max_text_chars, cors_origins=list(args.cors),
                          torch_threads=args.torch_threads or None,
                          nlu_backend=args.nlu_backend, callback_url=args.callback_url,
                          fallback=_fallback(args))


def _fallback(args: argparse.Namespace) -> dict[str, float] | bool | None:
    if args.no_fallback:
        return False
    given = {"threshold": args.fallback_threshold,
             "ambiguity_threshold": args.ambiguity_threshold}
    return {key: value for key, value in given.items() if value is not None} or None


def main(argv: list[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Load the bundles and run uvicorn until interrupted."""
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    workers = args.workers
    if workers < 1:
        print(f"error: --workers must be at least 1, not {workers}", file=sys.stderr)
        return 1
    if workers > 1:
        from serving.workers import serve_workers

        return serve_workers(args, settings_from_args(args))
    started = time.perf_counter()
    try:
        import uvicorn

        from serving.app import create_app

        app = create_app(settings_from_args(args))
    except (OSError, ValueError, RuntimeError) as err:  # missing or broken bundle, bad URL
        print(f"error: {err}", file=sys.stderr)
        return 1
    logging.getLogger("serving").info("loaded in %.2f s; listening on http://%s:%d",
                                      time.perf_counter() - started, args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
