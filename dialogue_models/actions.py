"""Running actions: responses, Rasa's default actions, forms, and custom actions by callback.

:class:`ActionRunner` maps an action name to the events it produces, the way Rasa 3.x's
``action_for_name_or_text`` picks an action class. It never changes the tracker it is given: the
caller (:class:`~dialogue_models.processor.MessageProcessor`) logs ``ActionExecuted`` and applies
the events.

- ``utter_*`` responses: a variation chosen with a seeded RNG among those whose ``condition``
  holds (conditional variations that match win over plain ones; variations with a ``channel``
  are skipped, there is no output channel here), ``{slot}`` placeholders filled from the tracker
  (in the text and in buttons, image, custom, attachment, quick_replies), as
  ``BotUttered(text, data={other response keys})``. Unlike Rasa, a list slot reads ``a, b``
  (Rasa prints the Python list) and a placeholder naming no slot stays as written (Rasa then
  leaves the whole text unformatted). ``BotUttered.metadata`` names the response
  (``{"utter_action": "utter_greet"}``), as Rasa's ActionBotResponse does.
- retrieval actions (Rasa's ActionRetrieveResponse): ``utter_faq``, where the domain has
  responses ``utter_faq/<key>`` and no plain ``utter_faq``, utters the response that the NLU's
  response selector chose for the latest user message: ``parse_data["response_selector"]``, the
  ``faq`` entry or else ``default``, whose ``response.utter_action`` (``utter_faq/opening_hours``)
  names a domain response; when the domain lacks it, the ``response.responses`` the selector
  carried are used. No selection, or one for another retrieval intent, utters nothing (a
  warning is logged).
- default actions: ``action_listen``/``action_unlikely_intent`` (nothing),
  ``action_restart`` (``utter_restart`` if defined, ``Restarted``), ``action_session_start``
  (``SessionStarted``, the carried-over ``SlotSet`` events if the session config says so,
  ``ActionExecuted(action_listen)``), ``action_default_fallback`` (``utter_default`` if defined,
  ``UserUtteranceReverted``), ``action_deactivate_loop`` (``ActiveLoop(None)``,
  ``SlotSet(requested_slot, None)``), ``action_extract_slots``
  (:func:`~dialogue_models.slot_extraction.extract_slots`), ``action_back`` (``utter_back`` if
  defined, two ``UserUtteranceReverted``), ``action_default_ask_affirmation``,
  ``action_default_ask_rephrase``. A domain action of the same name overrides a default.
- forms: :func:`~dialogue_models.forms.run_form`, validated by ``validate`` or, when the domain
  declares ``validate_<form>``, by calling ``custom_action("validate_<form>", ...)``.
- any other domain action: ``custom_action(name, tracker, domain) -> list[Event]`` (the action
  server client plugs in here). It may raise :class:`ActionRejection` (Rasa's
  ``ActionExecutionRejection``, an action server's HTTP 400): the result is then
  ``[ActionExecutionRejected(name)]``.

Not supported: ``action_two_stage_fallback`` and the revert logic of
``action_revert_fallback_events`` (it returns no events, as Rasa does when the user neither
rephrased nor affirmed).
"""
from __future__ import annotations

import logging
import random
import re
from typing import Any, Callable

from dialogue_models.domain import Domain
from dialogue_models.events import (ACTION_DEACTIVATE_LOOP, ACTION_DEFAULT_FALLBACK,
                                    ACTION_EXTRACT_SLOTS, ACTION_LISTEN, ACTION_RESTART,
                                    ACTION_SESSION_START, DEFAULT_ACTIONS, REQUESTED_SLOT,
                                    ActionExecuted, ActionExecutionRejected, ActiveLoop,
                                    BotUttered, Event, Restarted, SessionStarted, SlotSet,
                                    UserUtteranceReverted)
from dialogue_models.forms import Validator, run_form
from dialogue_models.slot_extraction import extract_slots
from dialogue_models.tracker import Tracker
from nlu_models.data.schema import DEFAULT_SELECTOR, RESPONSE_SELECTOR

__all__ = ["ActionRunner", "CustomAction", "ActionRejection", "ActionNotFoundError",
           "render_response", "render_variations", "selected_response", "fill_slots"]

log = logging.getLogger(__name__)

CustomAction = Callable[[str, Tracker, Domain], list[Event]]
_PLACEHOLDER = re.compile(r"\{([^\n{}]+?)\}")
_INTERPOLATED_KEYS = ("buttons", "image", "custom", "attachment", "quick_replies")
UTTER_PREFIX = "utter_"


class ActionRejection(Exception):
    """Raised by a custom action that refuses to run; other policies then pick an action."""

    def __init__(self, action_name: str, message: str | None = None) -> None:
        self.action_name = action_name
        super().__init__(message or f"action '{action_name}' rejected to run")


class ActionNotFoundError(LookupError):
    """An action the domain does not know, or a custom action with no action server."""


class ActionRunner:
    """Runs one action by name on a tracker and returns its events (see the module docstring)."""

    def __init__(self, domain: Domain, custom_action: CustomAction | None = None,
                 validate: Validator | None = None, seed: int | None = 0) -> None:
        self.domain = domain
        self.custom_action = custom_action
        self.validate = validate
        self.rng = random.Random(seed)

    def run(self, action_name: str, tracker: Tracker) -> list[Event]:
        try:
            return self._run(action_name, tracker)
        except ActionRejection:
            return [ActionExecutionRejected(action_name)]

    def _run(self, name: str, tracker: Tracker) -> list[Event]:
        user_defined = name in self.domain.actions
        if name in DEFAULT_ACTIONS and not user_defined:
            return self._default(name, tracker)
        if name in self.domain.retrieval_actions:
            return self.retrieve(name, tracker)
        if name.startswith(UTTER_PREFIX) and (name in self.domain.responses or user_defined):
            return self.utter(name, tracker)
        if name in self.domain.forms and not user_defined:
            return run_form(name, tracker, self.domain, self._validator(name), ask=self.run)
        if not user_defined:
            raise ActionNotFoundError(
                f"action '{name}' is not in the domain (not a response, action, form or default "
                "action); declare it under 'actions:' or 'responses:'")
        return self.run_custom(name, tracker)

    def run_custom(self, name: str, tracker: Tracker) -> list[Event]:
        """Call ``custom_action`` (the action server) for ``name``."""
        if self.custom_action is None:
            raise ActionNotFoundError(
                f"custom action '{name}' needs an action server, but no custom_action callback "
                "was given to ActionRunner")
        events = list(self.custom_action(name, tracker, self.domain) or [])
        for event in events:
            if not isinstance(event, Event):
                raise TypeError(f"custom action '{name}' returned {type(event).__name__}, "
                                "not an Event")
        return events

    def utter(self, name: str, tracker: Tracker) -> list[Event]:
        """The response ``name`` as one ``BotUttered`` (none if it is not defined)."""
        message = render_response(name, tracker, self.domain, self.rng)
        if message is None:
            return []
        message.metadata["utter_action"] = name
        return [message]

    def retrieve(self, name: str, tracker: Tracker) -> list[Event]:
        """The retrieval action ``name`` (``utter_faq``): the response the response selector
        chose for the latest user message, as one ``BotUttered`` (none without a selection)."""
        intent = name[len(UTTER_PREFIX):]
        message = tracker.latest_message
        selected = selected_response(message.parse_data if message else None, intent) or {}
        utter_action = selected.get("utter_action")
        if not utter_action:
            log.warning("retrieval action '%s': the latest user message has no response "
                        "selection for '%s' (no parse_data['response_selector'] entry '%s' or "
                        "'%s'); nothing is uttered", name, intent, intent, DEFAULT_SELECTOR)
            return []
        key = selected.get("intent_response_key") or utter_action[len(UTTER_PREFIX):]
        if key.split("/", 1)[0] != intent or not utter_action.startswith(name + "/"):
            log.warning("retrieval action '%s': the response selector chose '%s', a response "
                        "of another retrieval intent; nothing is uttered", name, key)
            return []
        variations = self.domain.responses.get(utter_action) or selected.get("responses") or []
        message = render_variations(variations, tracker, self.rng)
        if message is None:
            log.warning("retrieval action '%s': the response '%s' is neither in the domain nor "
                        "in the selector's output; nothing is uttered", name, utter_action)
            return []
        message.metadata["utter_action"] = utter_action
        return [message]

    def _validator(self, form_name: str) -> Validator | None:
        if self.validate is not None:
            return self.validate
        action = f"validate_{form_name}"
        if action not in self.domain.actions:
            return None
        return lambda _form, tracker, _domain, _candidates: self.run_custom(action, tracker)

    # ---- default actions -----------------------------------------------------------------------
    def _default(self, name: str, tracker: Tracker) -> list[Event]:
        if name in (ACTION_LISTEN, "action_unlikely_intent", "action_revert_fallback_events"):
            return []
        if name == ACTION_RESTART:
            return self.utter("utter_restart", tracker) + [Restarted()]
        if name == ACTION_SESSION_START:
            return self._session_start(tracker)
        if name == ACTION_DEFAULT_FALLBACK:
            return self.utter("utter_default", tracker) + [UserUtteranceReverted()]
        if name == ACTION_DEACTIVATE_LOOP:
            return [ActiveLoop(None), SlotSet(REQUESTED_SLOT, None)]
        if name == ACTION_EXTRACT_SLOTS:
            return list(extract_slots(tracker, self.domain))
        if name == "action_back":
            return self.utter("utter_back", tracker) + [UserUtteranceReverted(),
                                                        UserUtteranceReverted()]
        if name == "action_default_ask_rephrase":
            return self.utter("utter_ask_rephrase", tracker)
        if name == "action_default_ask_affirmation":
            intent = tracker.latest_message.intent if tracker.latest_message else None
            return [BotUttered(f"Did you mean '{intent}'?", {"buttons": [
                {"title": "Yes", "payload": f"/{intent}"},
                {"title": "No", "payload": "/out_of_scope"}]})]
        raise ActionNotFoundError(f"default action '{name}' is not supported by dialab")

    def _session_start(self, tracker: Tracker) -> list[Event]:
        events: list[Event] = [SessionStarted()]
        if self.domain.session_config.carry_over_slots_to_new_session:
            events += [SlotSet(e.name, e.value) for e in tracker.applied_events()
                       if isinstance(e, SlotSet)]
        if self.domain.session_config.greeting:  # said by action_session_start, as a custom
            events += self.utter(self.domain.session_config.greeting, tracker)  # one would
        return events + [ActionExecuted(ACTION_LISTEN)]


# ---- responses -----------------------------------------------------------------------------------
def render_response(name: str, tracker: Tracker, domain: Domain,
                    rng: random.Random | None = None) -> BotUttered | None:
    """One variation of response ``name`` with its ``{slot}`` placeholders filled."""
    return render_variations(domain.responses.get(name, []), tracker, rng)


def render_variations(variations: list[dict[str, Any]], tracker: Tracker,
                      rng: random.Random | None = None) -> BotUttered | None:
    """One of a response's ``variations`` (see the module docstring), slots filled; None when
    none applies."""
    variations = _candidate_variations(variations, tracker.slots)
    if not variations:
        return None
    chosen = (rng or random.Random(0)).choice(variations)
    data = {k: fill_slots(v, tracker.slots) if k in _INTERPOLATED_KEYS else v
            for k, v in chosen.items() if k not in ("text", "condition", "channel")}
    text = chosen.get("text")
    return BotUttered(fill_slots(text, tracker.slots) if isinstance(text, str) else None, data)


def selected_response(parse_data: dict[str, Any] | None,
                      retrieval_intent: str) -> dict[str, Any] | None:
    """The ``response`` the response selector chose for a user message: from the
    ``retrieval_intent`` entry of ``parse_data["response_selector"]``, else from ``default``,
    with ``intent_response_key`` and ``utter_action`` filled from each other when one is
    missing; None when there is no such entry."""
    selector = (parse_data or {}).get(RESPONSE_SELECTOR) or {}
    entry = selector.get(retrieval_intent) or selector.get(DEFAULT_SELECTOR)
    response = entry.get("response") if isinstance(entry, dict) else None
    if not isinstance(response, dict):
        return None
    response = dict(response)
    key, action = response.get("intent_response_key"), response.get("utter_action")
    if key and not action:
        response["utter_action"] = UTTER_PREFIX + key
    elif action and not key and action.startswith(UTTER_PREFIX):
        response["intent_response_key"] = action[len(UTTER_PREFIX):]
    return response


def fill_slots(value: Any, slots: dict[str, Any]) -> Any:
    """``{slot}`` placeholders replaced by slot values, in strings, lists and dicts. A
    placeholder that names no slot is left as it is; a list value reads ``a, b``."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: _slot_text(slots[m.group(1)]) if m.group(1) in slots
                                else m.group(0), value)
    if isinstance(value, list):
        return [fill_slots(v, slots) for v in value]
    if isinstance(value, dict):
        return {k: fill_slots(v, slots) for k, v in value.items()}
    return value


def _slot_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _candidate_variations(variations: list[dict[str, Any]],
                          slots: dict[str, Any]) -> list[dict[str, Any]]:
    plain = [v for v in variations if not v.get("channel")]
    conditional = [v for v in plain if v.get("condition") and all(
        slots.get(c.get("name")) == c.get("value") for c in v["condition"])]
    return conditional or [v for v in plain if not v.get("condition")]
