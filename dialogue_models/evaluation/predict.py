"""Replaying test stories through the policies, as ``rasa test core`` does.

Each test story becomes a tracker (its first ``or`` branch); at every action after the opening
``action_listen`` the policies predict from the events so far, the prediction is recorded, and
the story's own action is applied (so one mistake does not derail the rest of the story). The
implicit ``action_listen`` after each bot turn and at the story's end is predicted too, as Rasa
counts it. Where a story leaves an active form (the policies still predict the form), the
loop is marked as rejected and the policies are asked again, as Rasa's test does.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

from tqdm.auto import tqdm

from dialogue_models.domain import Domain
from dialogue_models.evaluation.report import ActionPrediction, StoryResult
from dialogue_models.events import ACTION_LISTEN, ActionExecuted, Event
from dialogue_models.generation import step_events
from dialogue_models.policies.rule_data import emulate_loop_rejection
from dialogue_models.story_model import ActionStep, Checkpoint, OrStep, Story
from dialogue_models.tracker import Tracker

# tracker → (action, confidence, policy name)
Predictor = Callable[[Tracker], tuple[str, float, "str | None"]]


def story_events(story: Story, domain: Domain) -> list[tuple[Event, int | None]]:
    """The story's events, each with the index of the step that wrote it (None: implicit)."""
    events: list[tuple[Event, int | None]] = []
    for index, step in enumerate(story.steps):
        if isinstance(step, Checkpoint):
            continue
        if isinstance(step, OrStep):
            step = step.alternatives[0]
        for event in step_events(step, domain, [e for e, _ in events]):
            implicit = (isinstance(event, ActionExecuted) and event.name == ACTION_LISTEN
                        and not isinstance(step, ActionStep))
            events.append((event, None if implicit else index))
    last = events[-1][0] if events else None
    if isinstance(last, ActionExecuted) and last.name != ACTION_LISTEN:
        events.append((ActionExecuted(ACTION_LISTEN), None))
    return events


def predict_story(predict: Predictor, story: Story, domain: Domain) -> StoryResult:
    events = story_events(story, domain)
    tracker = Tracker(story.name, domain.slots, name=story.name)
    predictions: list[ActionPrediction] = []
    for position, (event, step_index) in enumerate(events):
        if isinstance(event, ActionExecuted) and position > 0:
            action, confidence, policy = predict(tracker)
            if action != event.label and action == tracker.active_loop:
                # the story leaves the form here: Rasa lets the loop reject, then asks again
                emulate_loop_rejection(tracker)
                action, confidence, policy = predict(tracker)
            predictions.append(ActionPrediction(event.label, action, policy, float(confidence),
                                                step_index))
        tracker.update(event)
    return StoryResult(story, predictions)


def predict_stories(predict: Predictor, stories: Sequence[Story], domain: Domain,
                    progress: bool = True) -> list[StoryResult]:
    items: Iterable[Story] = tqdm(stories, desc="test stories", unit="story",
                                  disable=not progress or len(stories) < 20)
    return [predict_story(predict, story, domain) for story in items]


def ensemble_predictor(ensemble, domain: Domain) -> Predictor:
    """A :class:`~dialogue_models.policies.ensemble.PolicyEnsemble` as a :data:`Predictor`."""
    def predict(tracker: Tracker) -> tuple[str, float, str | None]:
        prediction, action = ensemble.predict(tracker, domain)
        return action, prediction.max_confidence, prediction.policy
    return predict
