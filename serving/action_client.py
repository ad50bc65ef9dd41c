"""Custom actions on an action server, over HTTP in the rasa-sdk webhook format.

:class:`ActionServerClient` is a :data:`~dialogue_models.actions.CustomAction`: give it to
:class:`~dialogue_models.actions.ActionRunner` and every custom action (and ``validate_<form>``)
becomes one ``POST`` to the action server::

    {"next_action": "action_place_order", "sender_id": "alice",
     "tracker": {...Rasa tracker JSON...}, "domain": {...domain as plain data...},
     "version": "3.6.0"}

The answer ``{"events": [...], "responses": [...]}`` becomes events as Rasa's ``RemoteAction``
makes them: first a ``BotUttered`` per response (a ``response`` name is rendered through the
domain like ``dispatcher.utter_message(response=...)``, with the other keys of the message as
extra template values; a text, buttons, image, custom, ... are sent as given), then the events.

Errors: HTTP 400 is the action *rejecting* to run (rasa-sdk's ``ActionExecutionRejection``) and
raises :class:`~dialogue_models.actions.ActionRejection`; an unreachable server, a timeout,
another 4xx/5xx or an unreadable answer raise :class:`ActionServerError` naming the action, the
URL and the cause.
"""
from __future__ import annotations

import random
from typing import Any

import httpx

from dialogue_models.actions import ActionRejection, render_response
from dialogue_models.domain import Domain, domain_to_plain
from dialogue_models.events import BotUttered, Event, event_from_dict
from dialogue_models.tracker import Tracker

__all__ = ["ActionServerClient", "ActionServerError", "RASA_VERSION", "bot_uttered"]

# the Rasa version an action server is told it talks to (rasa-sdk checks it is a 3.x)
RASA_VERSION = "3.6.0"
_MESSAGE_KEYS = ("buttons", "image", "custom", "attachment", "elements", "quick_replies")


class ActionServerError(RuntimeError):
    """A custom action could not run on the action server (not a rejection)."""

    def __init__(self, action_name: str, message: str) -> None:
        self.action_name = action_name
        super().__init__(f"custom action '{action_name}' failed: {message}")


class ActionServerClient:
    """Calls ``url`` (e.g. ``http://localhost:5055/webhook``) for each custom action."""

    def __init__(self, url: str, timeout_s: float = 10.0, seed: int | None = None,
                 client: httpx.Client | None = None) -> None:
        self.url = url
        self.client = client or httpx.Client(timeout=timeout_s)
        self.rng = random.Random(seed)
        self._domain_cache: tuple[int, dict[str, Any]] | None = None

    def __call__(self, name: str, tracker: Tracker, domain: Domain) -> list[Event]:
        body = {"next_action": name, "sender_id": tracker.sender_id,
                "tracker": tracker.to_dict(), "domain": self._plain(domain),
                "version": RASA_VERSION}
        answer = self._post(name, body)
        responses = answer.get("responses") or []
        events_json = answer.get("events") or []
        if not isinstance(responses, list) or not isinstance(events_json, list):
            raise ActionServerError(name, f"the action server at {self.url} answered "
                                    "'responses' or 'events' that are not lists")
        events: list[Event] = []
        for response in responses:
            message = bot_uttered(response, tracker, domain, self.rng)
            if message is not None:
                events.append(message)
        for data in events_json:
            try:
                events.append(event_from_dict(data))
            except (ValueError, TypeError) as err:
                raise ActionServerError(name, f"the action server returned a bad event: {err}")
        return events

    def close(self) -> None:
        self.client.close()

    # ---- helpers -------------------------------------------------------------------------------
    def _post(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise ActionServerError(name, f"the action server at {self.url} did not answer in "
                                    "time") from None
        except httpx.HTTPError as err:
            raise ActionServerError(name, f"could not connect to the action server at "
                                    f"{self.url} ({type(err).__name__}: {err}); is it "
                                    "running?") from None
        if response.status_code == 400:  # rasa-sdk: ActionExecutionRejection
            detail = _json_or_none(response) or {}
            raise ActionRejection(name, detail.get("error") if isinstance(detail, dict)
                                  else None)
        if response.status_code == 404:
            raise ActionServerError(name, f"the action server at {self.url} does not know it "
                                    f"(404: {response.text[:200]})")
        if response.status_code >= 300:
            raise ActionServerError(name, f"the action server at {self.url} answered "
                                    f"{response.status_code}: {response.text[:200]}")
        answer = _json_or_none(response)
        if not isinstance(answer, dict):
            raise ActionServerError(name, f"the action server at {self.url} answered no JSON "
                                    "object")
        return answer

    def _plain(self, domain: Domain) -> dict[str, Any]:
        if self._domain_cache is None or self._domain_cache[0] != id(domain):
            self._domain_cache = (id(domain), domain_to_plain(domain))
        return self._domain_cache[1]


def bot_uttered(response: dict[str, Any], tracker: Tracker, domain: Domain,
                rng: random.Random | None = None) -> BotUttered | None:
    """One message of an action server's ``responses`` as a ``BotUttered`` (Rasa's
    ``RemoteAction._utter_responses``); None when it names a response the domain lacks."""
    response = dict(response)
    name = response.pop("response", None) or response.pop("template", None)
    text, data = None, {}
    if name:
        filled = tracker.copy()
        filled.slots.update({k: v for k, v in response.items() if k not in _MESSAGE_KEYS
                             and k != "text" and v is not None})
        rendered = render_response(name, filled, domain, rng)
        if rendered is None:
            return None
        text, data = rendered.text, dict(rendered.data)
    buttons = response.pop("buttons", None) or []
    if buttons:
        data["buttons"] = list(data.get("buttons") or []) + list(buttons)
    if response.get("text"):
        text = response["text"]
    for key in _MESSAGE_KEYS:
        if key != "buttons" and response.get(key):
            data[key] = response[key]
    if response.get("json_message"):
        data["custom"] = response["json_message"]
    return BotUttered(text, data)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
