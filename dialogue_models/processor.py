"""The dialogue loop, without NLU model or HTTP: Rasa 3.x's ``MessageProcessor``.

:meth:`MessageProcessor.handle_message` takes a parsed user message (a ``UserUttered`` with its
intent and entities) and:

1. starts a session if the tracker has no applied events (new, or after a restart) or the last
   session expired (:meth:`~MessageProcessor.start_session_if_needed`: ``ActionExecuted
   (action_session_start)``, ``SessionStarted``, carried-over slots, ``action_listen``);
2. logs ``action_listen`` if the bot's latest action was something else, then the message;
3. runs ``action_extract_slots`` and applies its ``SlotSet`` events. As in Rasa 3's
   ``run_action_extract_slots`` no ``ActionExecuted(action_extract_slots)`` is logged: it would
   become the previous action of the next dialogue state, hide the user turn from the policies
   (:mod:`dialogue_models.states`) and stop the form from validating the answer;
4. loops: predict → run the action on the tracker → log ``ActionExecuted(name, policy,
   confidence)`` and the action's events. It stops after ``action_listen`` or
   ``action_restart``; after ``max_actions`` predictions it logs ``action_listen`` itself
   with policy ``processor_guard`` (Rasa's ``max_number_of_predictions`` circuit breaker;
   Rasa just stops).

An action that rejects to run (a form the message did not answer, a custom action raising
:class:`~dialogue_models.actions.ActionRejection`) adds ``ActionExecutionRejected`` and no
``ActionExecuted``; the next prediction gets the rejected action in ``excluded`` (if the
predictor returns it anyway, the processor listens). A
``FollowupAction(name)`` among an action's events makes ``name`` the next action, unpredicted
(policy ``followup_action``, confidence 1.0).

``predict_next`` is any :class:`NextActionPredictor`: a function of the tracker returning
``(action_name, confidence, policy_name)``, optionally taking ``excluded``.
"""
from __future__ import annotations

import inspect
import time
from typing import Any, Mapping, Protocol, Sequence

from dialogue_models.actions import ActionRunner
from dialogue_models.domain import Domain
from dialogue_models.events import (ACTION_EXTRACT_SLOTS, ACTION_LISTEN, ACTION_RESTART,
                                    ACTION_SESSION_START, ActionExecuted, ActionExecutionRejected,
                                    BotUttered, Event, FollowupAction, UserUttered)
from dialogue_models.tracker import Tracker

__all__ = ["MessageProcessor", "NextActionPredictor", "Prediction", "EXTERNAL_PREFIX",
           "GUARD_POLICY"]

Prediction = tuple[str, float, "str | None"]
EXTERNAL_PREFIX = "EXTERNAL: "  # Rasa's text for messages injected by trigger_intent
GUARD_POLICY = "processor_guard"  # the policy of an action_listen the processor forced


class NextActionPredictor(Protocol):
    """The next action for a tracker: ``(name, confidence, policy name or None)``.
    ``excluded`` holds actions that just rejected to run; a predictor may omit the argument."""

    def __call__(self, tracker: Tracker, *, excluded: frozenset[str] = frozenset()
                 ) -> Prediction: ...


class MessageProcessor:
    """One assistant's dialogue loop over :class:`Tracker` objects (see the module docstring)."""

    def __init__(self, domain: Domain, predict_next: NextActionPredictor, runner: ActionRunner,
                 max_actions: int = 10) -> None:
        if max_actions < 1:
            raise ValueError(f"max_actions must be >= 1, not {max_actions}")
        self.domain, self.predict_next, self.runner = domain, predict_next, runner
        self.max_actions = max_actions
        self._takes_excluded = _accepts(predict_next, "excluded")

    def handle_message(self, tracker: Tracker, message: UserUttered) -> list[BotUttered]:
        """Log ``message``, run the bot's actions until it listens; the bot's messages."""
        start = len(tracker.events)
        self.log_message(tracker, message)
        self.predict_and_run(tracker)
        return [e for e in tracker.events[start:] if isinstance(e, BotUttered)]

    def log_message(self, tracker: Tracker, message: UserUttered) -> None:
        """Append ``message`` without predicting (Rasa's ``log_message``): session start if
        due, ``action_listen`` if the bot was not listening, the message, extracted slots."""
        self.start_session_if_needed(tracker)
        if tracker.latest_action_name != ACTION_LISTEN:
            tracker.update(ActionExecuted(ACTION_LISTEN))
        tracker.update(message)
        for event in self.runner.run(ACTION_EXTRACT_SLOTS, tracker):
            tracker.update(event)

    def trigger_intent(self, tracker: Tracker, intent: str,
                       entities: Sequence[Mapping[str, Any]] | Mapping[str, Any] = (),
                       input_channel: str | None = None,
                       parse_data: Mapping[str, Any] | None = None) -> list[BotUttered]:
        """Inject ``intent`` as if the user said it (Rasa's external events): ``entities`` is a
        list of entity dicts or ``{entity: value}``; ``parse_data`` adds keys to the message's
        parse data."""
        if isinstance(entities, Mapping):
            entities = [{"entity": k, "value": v} for k, v in entities.items()]
        message = UserUttered(f"{EXTERNAL_PREFIX}{intent}", intent, [dict(e) for e in entities],
                              1.0, parse_data=dict(parse_data) if parse_data else None,
                              input_channel=input_channel)
        return self.handle_message(tracker, message)

    def start_session_if_needed(self, tracker: Tracker, now: float | None = None) -> bool:
        """Run ``action_session_start`` when the tracker has no applied events or its session
        expired (no user message for ``session_expiration_time`` minutes; 0 = never)."""
        if tracker.applied_events() and not self._session_expired(tracker, now):
            return False
        self._log(tracker, ACTION_SESSION_START, 1.0, None,
                  self.runner.run(ACTION_SESSION_START, tracker))
        return True

    def predict_and_run(self, tracker: Tracker) -> None:
        """Predict and run actions until the bot listens (or ``max_actions`` is reached)."""
        excluded: set[str] = set()
        followup: str | None = None
        for _ in range(self.max_actions):
            if followup:
                name, confidence, policy = followup, 1.0, "followup_action"
            else:
                name, confidence, policy = self._predict(tracker, frozenset(excluded))
            if name in excluded:  # the predictor ignored the exclusion: wait for the user
                tracker.update(ActionExecuted(ACTION_LISTEN, policy=GUARD_POLICY, confidence=1.0))
                return
            events = self.runner.run(name, tracker)
            if any(isinstance(e, ActionExecutionRejected) for e in events):
                for event in events:
                    tracker.update(event)
                excluded.add(name)
                followup = None
                continue
            self._log(tracker, name, confidence, policy, events)
            excluded.clear()
            followup = next((e.name for e in reversed(events) if isinstance(e, FollowupAction)),
                            None)
            if name in (ACTION_LISTEN, ACTION_RESTART):
                return
        tracker.update(ActionExecuted(ACTION_LISTEN, policy=GUARD_POLICY, confidence=1.0))

    # ---- helpers -------------------------------------------------------------------------------
    def _predict(self, tracker: Tracker, excluded: frozenset[str]) -> Prediction:
        if self._takes_excluded:
            prediction = self.predict_next(tracker, excluded=excluded)
        else:
            prediction = self.predict_next(tracker)  # type: ignore[call-arg]
        name, confidence, policy = prediction
        return str(name), float(confidence), policy

    @staticmethod
    def _log(tracker: Tracker, name: str, confidence: float, policy: str | None,
             events: list[Event]) -> None:
        tracker.update(ActionExecuted(name, policy=policy, confidence=confidence))
        for event in events:
            tracker.update(event)

    def _session_expired(self, tracker: Tracker, now: float | None) -> bool:
        minutes = self.domain.session_config.session_expiration_time
        last = next((e for e in reversed(tracker.applied_events())
                     if isinstance(e, UserUttered)), None)
        if not minutes or last is None:
            return False
        return ((time.time() if now is None else now) - last.timestamp) / 60 > minutes


def _accepts(function: Any, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
