"""What one server process is configured with: :class:`ServerSettings` (a plain dataclass, filled
by ``python -m serving`` from its flags, or built in Python and passed to
:func:`serving.app.create_app`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LOG_FORMAT", "ServerSettings", "default_tracker_store_url"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # the server's log lines


def default_tracker_store_url() -> str:
    """``sqlite:///<cwd>/dialab_trackers.db``: embedded, nothing to set up."""
    return f"sqlite:///{Path.cwd() / 'dialab_trackers.db'}"


@dataclass
class ServerSettings:
    """Settings of one server process.

    - ``nlu``: an ``nlu`` export bundle folder (``dialab export``); ``policy``: an optional
      ``policy`` bundle (without one only ``/model/parse`` and ``/status`` make sense: the
      conversation routes answer 409).
    - ``auth_token``: when set, every route but ``/health`` and ``/chat`` (a static page whose
      webhook calls carry its own ``?token=``) needs ``?token=`` or
      ``Authorization: Bearer <token>``.
    - ``tracker_store``: ``sqlite:///file.db`` (default: ``dialab_trackers.db`` in the working
      directory), any SQLAlchemy URL (``postgresql://...``), ``redis://host:port/db`` or
      ``memory://`` (lost on restart).
    - ``action_endpoint``: the action server's webhook URL (rasa-sdk:
      ``http://localhost:5055/webhook``); without one, custom actions fail with a clear error.
    - ``max_request_bytes`` / ``max_text_chars``: larger bodies and longer texts get 413.
    - ``cors_origins``: origins allowed by CORS (``["*"]`` for any); none by default, and then no
      CORS middleware is installed.
    - ``max_actions``: the prediction loop's circuit breaker (Rasa's
      ``max_number_of_predictions``).
    - ``fallback``: Rasa's FallbackClassifier on every parse (:mod:`nlu_models.fallback`): None
      applies the NLU bundle's own (if its training pipeline listed one), False none, a dict
      ``{"threshold": t, "ambiguity_threshold": a}`` those values.
    - ``callback_url``: where the bot's messages that no request waits for (those of fired
      reminders, :mod:`serving.reminders`) are POSTed, one JSON message each (Rasa's callback
      channel); without one they are only stored in the tracker.
    - ``torch_threads``: torch's intra-op threads for the process (default 1: small models
      answer fastest on one thread per request; ``--workers`` runs more processes to use more
      cores).
    """

    nlu: str | Path
    policy: str | Path | None = None
    auth_token: str | None = None
    tracker_store: str = field(default_factory=default_tracker_store_url)
    action_endpoint: str | None = None
    action_timeout_s: float = 10.0
    max_request_bytes: int = 1_000_000
    max_text_chars: int = 2_000
    cors_origins: list[str] = field(default_factory=list)
    max_actions: int = 10
    torch_threads: int | None = 1
    nlu_backend: str = "auto"  # auto (ONNX when the bundle has it) | torch | onnx | onnx-int8
    callback_url: str | None = None
    fallback: dict[str, float] | bool | None = None  # None: the NLU bundle's own; False: off

    def __post_init__(self) -> None:
        if self.max_request_bytes < 1 or self.max_text_chars < 1:
            raise ValueError("max_request_bytes and max_text_chars must be positive")
        if self.auth_token == "":
            self.auth_token = None
