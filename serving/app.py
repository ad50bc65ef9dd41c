"""The HTTP API: Rasa's server routes over one :class:`~serving.agent.Agent`.

======================================  =========================================================
``POST /model/parse``                   ``{"text", "message_id"?}`` → Rasa's parse result
``POST /model/parse/batch``             ``{"texts": [...]}`` → a list of parse results
``POST /webhooks/rest/webhook``         ``{"sender", "message", "metadata"?}`` → bot messages
``GET  /conversations/{id}/tracker``    tracker JSON (``?include_events=AFTER_RESTART|ALL|...``)
``POST /conversations/{id}/messages``   ``{"text", "sender": "user", "parse_data"?}`` → tracker
``POST /conversations/{id}/predict``    ``{"scores", "policy", "confidence", "tracker"}``
``POST /conversations/{id}/execute``    ``{"name", "policy"?, "confidence"?}`` → tracker, messages
``POST /conversations/{id}/tracker/events``  an event or a list of events (Rasa's JSON) → tracker
``POST /conversations/{id}/trigger_intent``  ``{"name", "entities"?}`` → tracker, messages
``GET  /status`` ``/version`` ``/health``  bundles and fingerprints; versions; liveness (open)
``GET  /chat``                          a web chat page over the REST webhook (open, see
                                        :func:`_add_chat_page`)
======================================  =========================================================

Errors are JSON (:func:`serving.middleware.error_response`): 401 without the token, 404 for an
unknown intent/action, 409 for conversation routes without a policy bundle, 413 for big bodies
or texts, 422 for bad JSON or missing fields, 500 when a custom action fails (or anything else
breaks: the message, never a stack trace), 503 when the tracker store is unreachable.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from dialogue_models.actions import ActionNotFoundError
from dialogue_models.events import event_from_dict
from serving.action_client import ActionServerError
from serving.agent import (EVENT_VERBOSITY, Agent, NoPolicyError, UnknownNameError,
                           channel_messages, tracker_json)
from serving.middleware import (BodyLimitMiddleware, FastJSONResponse, TokenAuthMiddleware,
                                error_response)
from serving.reminders import ReminderScheduler
from serving.settings import ServerSettings
from serving.tracker_store import TrackerStoreError

__all__ = ["create_app", "dialab_version", "MINIMUM_COMPATIBLE_VERSION"]

logger = logging.getLogger(__name__)
MINIMUM_COMPATIBLE_VERSION = "0.1.0"  # the oldest dialab whose bundles this server reads
OPEN_PATHS = ("/health", "/chat")  # served without the token (see _add_chat_page for /chat)
CHAT_PAGE = Path(__file__).parent / "static" / "chat.html"
# the page's own inline script and style, fetch() to this origin, images from anywhere
CHAT_PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "connect-src 'self'; img-src http: https: data:; base-uri 'none'; "
                    "form-action 'none'; frame-ancestors 'none'")


# ---- request bodies ------------------------------------------------------------------------------
class ParseRequest(BaseModel):
    text: str
    message_id: str | None = None


class BatchParseRequest(BaseModel):
    texts: list[str]


class WebhookRequest(BaseModel):
    sender: str | int = "default"
    message: str
    metadata: dict[str, Any] | None = None


class MessageRequest(BaseModel):
    text: str
    sender: str = "user"
    parse_data: dict[str, Any] | None = None


class ExecuteRequest(BaseModel):
    name: str
    policy: str | None = None
    confidence: float | None = None


class TriggerIntentRequest(BaseModel):
    name: str
    entities: dict[str, Any] | list[dict[str, Any]] | None = Field(default=None)


class ApiError(Exception):
    """An error a route answers with ``status`` and a message."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


# ---- the app -------------------------------------------------------------------------------------
def create_app(settings: ServerSettings, agent: Agent | None = None) -> FastAPI:
    """The FastAPI app for ``settings``; ``agent`` (else loaded from the settings' bundles and
    tracker store) lets tests and embedders share loaded models."""
    if agent is None:
        agent = Agent.load(settings.nlu, settings.policy, settings.tracker_store,
                           settings.action_endpoint, settings.action_timeout_s,
                           settings.max_actions, settings.torch_threads,
                           settings.nlu_backend, settings.fallback)
    if agent.processor is not None and agent.reminders is None:
        agent.reminders = ReminderScheduler(agent, callback_url=settings.callback_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        """The reminder scheduler runs while the server does."""
        if agent.reminders is not None:
            agent.reminders.start()
        try:
            yield
        finally:
            if agent.reminders is not None:
                agent.reminders.stop()

    app = FastAPI(title="dialab server", version=dialab_version(), lifespan=lifespan,
                  description="Rasa-compatible HTTP API over dialab export bundles",
                  default_response_class=FastJSONResponse)
    app.state.agent, app.state.settings = agent, settings
    app.state.bundles = {"nlu": _bundle_info(settings.nlu)}
    if settings.policy:
        app.state.bundles["policy"] = _bundle_info(settings.policy)
    _add_routes(app, agent, settings)
    _add_chat_page(app)
    _add_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    if settings.auth_token:
        app.add_middleware(TokenAuthMiddleware, token=settings.auth_token,
                           open_paths=OPEN_PATHS)
    if settings.cors_origins:  # outermost: preflights and 401s get CORS headers too
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["*"], allow_headers=["*"])
    return app


def _add_routes(app: FastAPI, agent: Agent, settings: ServerSettings) -> None:
    def check_text(text: str) -> None:
        if len(text) > settings.max_text_chars:
            raise ApiError(413, f"the text has {len(text)} characters; the limit is "
                           f"{settings.max_text_chars} (max_text_chars)", "TextTooLong")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/version")
    def version_info() -> dict[str, str]:
        return {"version": dialab_version(),
                "minimum_compatible_version": MINIMUM_COMPATIBLE_VERSION}

    @app.get("/status")
    def status() -> dict[str, Any]:
        bundles = app.state.bundles
        digest = hashlib.sha256(json.dumps({k: b["fingerprint"] for k, b in bundles.items()},
                                           sort_keys=True).encode()).hexdigest()
        return {"model_id": digest[:16], "model_file": str(settings.nlu),
                "model_files": {k: b["path"] for k, b in bundles.items()},
                "fingerprint": {k: b["fingerprint"] for k, b in bundles.items()},
                "bundles": bundles, "num_active_training_jobs": 0}

    # the parse routes answer plain dicts rendered by orjson: no response-model validation or
    # jsonable_encoder pass, which cost more than the model on a batch (and json.dumps ~13 %)
    @app.post("/model/parse")
    def parse(body: ParseRequest) -> JSONResponse:
        check_text(body.text)
        return FastJSONResponse(agent.parse(body.text, body.message_id))

    @app.post("/model/parse/batch")
    def parse_batch(body: BatchParseRequest) -> JSONResponse:
        for text in body.texts:
            check_text(text)
        return FastJSONResponse(agent.parse_many(body.texts))

    @app.post("/webhooks/rest/webhook")
    def rest_webhook(body: WebhookRequest) -> list[dict[str, Any]]:
        check_text(body.message)
        sender = str(body.sender)
        return channel_messages(sender, agent.handle_text(sender, body.message,
                                                          input_channel="rest"))

    @app.get("/conversations/{conversation_id}/tracker")
    def get_tracker(conversation_id: str, include_events: str = Query("AFTER_RESTART")
                    ) -> dict[str, Any]:
        verbosity = include_events.upper()
        if verbosity not in EVENT_VERBOSITY:
            raise ApiError(422, f"include_events must be one of {', '.join(EVENT_VERBOSITY)}",
                           "BadRequest")
        return tracker_json(agent.tracker(conversation_id), verbosity)

    @app.post("/conversations/{conversation_id}/tracker/events")
    async def append_events(conversation_id: str, request: Request) -> dict[str, Any]:
        """Append one event or a list of them (Rasa's JSON), as Rasa's route does: nothing
        is predicted or run."""
        try:
            body = await request.json()
            events = [event_from_dict(e) for e in (body if isinstance(body, list) else [body])]
        except ValueError as err:  # not JSON, or not an event
            raise ApiError(422, f"the body must be an event or a list of events: {err}",
                           "BadRequest") from None
        return tracker_json(await run_in_threadpool(agent.append_events, conversation_id,
                                                    events))

    @app.post("/conversations/{conversation_id}/messages")
    def add_message(conversation_id: str, body: MessageRequest) -> dict[str, Any]:
        if body.sender != "user":
            raise ApiError(400, "only user messages can be added to a conversation, not "
                           f"messages of sender '{body.sender}'", "BadRequest")
        check_text(body.text)
        return tracker_json(agent.log_message(conversation_id, body.text, body.parse_data))

    @app.post("/conversations/{conversation_id}/predict")
    def predict(conversation_id: str) -> dict[str, Any]:
        ranking, tracker = agent.predict(conversation_id)
        return {"scores": [{"action": a, "score": s} for a, s in ranking.ranking],
                "policy": ranking.policy, "confidence": ranking.confidence,
                "tracker": tracker_json(tracker)}

    @app.post("/conversations/{conversation_id}/execute")
    def execute(conversation_id: str, body: ExecuteRequest) -> dict[str, Any]:
        tracker, messages = agent.execute(conversation_id, body.name, body.policy,
                                          body.confidence)
        return {"tracker": tracker_json(tracker),
                "messages": channel_messages(conversation_id, messages)}

    @app.post("/conversations/{conversation_id}/trigger_intent")
    def trigger_intent(conversation_id: str, body: TriggerIntentRequest) -> dict[str, Any]:
        tracker, messages = agent.trigger_intent(conversation_id, body.name,
                                                 body.entities or ())
        return {"tracker": tracker_json(tracker),
                "messages": channel_messages(conversation_id, messages)}


def _add_chat_page(app: FastAPI) -> None:
    @app.get("/chat", include_in_schema=False)
    def chat_page() -> FileResponse:
        """The web chat (``serving/static/chat.html``): plain HTML/JS that posts to the REST
        webhook and shows text, images and buttons.

        Auth: the page is served without the token, since it is static and holds no secrets;
        every webhook call it makes carries the ``?token=`` of the page's own URL, so with
        ``--auth-token`` open ``/chat?token=<token>`` (without it the chat shows the 401)."""
        return FileResponse(CHAT_PAGE, media_type="text/html",
                            headers={"Content-Security-Policy": CHAT_PAGE_POLICY,
                                     "Referrer-Policy": "no-referrer"})


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError):
        return error_response(err.status, err.message, err.reason)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request: Request, err: RequestValidationError):
        return error_response(422, _validation_message(err), "InvalidRequest")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, err: HTTPException):
        return error_response(err.status_code, str(err.detail), "HTTPError")

    @app.exception_handler(NoPolicyError)
    async def no_policy(_request: Request, err: NoPolicyError):
        return error_response(409, str(err), "NoPolicy")

    @app.exception_handler(UnknownNameError)
    async def unknown_name(_request: Request, err: UnknownNameError):
        return error_response(404, str(err.args[0]), "NotFound")

    @app.exception_handler(ActionServerError)
    async def action_server(_request: Request, err: ActionServerError):
        logger.error("%s", err)
        return error_response(500, f"{err} (the conversation was not changed)",
                              "ActionServerError")

    @app.exception_handler(ActionNotFoundError)
    async def action_not_found(_request: Request, err: ActionNotFoundError):
        return error_response(500, str(err.args[0]), "ActionNotFound")

    @app.exception_handler(TrackerStoreError)
    async def store_down(_request: Request, err: TrackerStoreError):
        logger.error("%s", err)
        return error_response(503, str(err), "TrackerStoreError")

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, err: Exception):
        logger.exception("unexpected error")  # the stack trace goes to the log, not the client
        return error_response(500, f"internal error: {type(err).__name__}: {err}",
                              "InternalError")


def _validation_message(err: RequestValidationError) -> str:
    problems = []
    for error in err.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        if error.get("type") == "json_invalid":
            problems.append(f"the body is not valid JSON "
                            f"({error.get('ctx', {}).get('error', 'parse error')})")
        elif error.get("type") == "missing":
            problems.append(f"'{where}' is missing" if where else "the body is missing")
        else:
            problems.append(f"'{where}': {error.get('msg')}" if where else str(error.get("msg")))
    return "invalid request: " + "; ".join(problems)


def _bundle_info(path: str | Path) -> dict[str, Any]:
    """Path, kind, class, versions and per-file sha256 of a bundle (a checkpoint file: its own
    sha256)."""
    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        return {"path": str(path), "fingerprint": {path.name: digest}}
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    return {"path": str(path), "kind": manifest.get("kind"),
            "model_class": manifest.get("model_class"), "created": manifest.get("created"),
            "dialab_version": manifest.get("dialab_version"),
            "fingerprint": {f["name"]: f["sha256"] for f in manifest.get("files", [])}}


def dialab_version() -> str:
    try:
        return version("dialab")
    except PackageNotFoundError:
        return "dev"

