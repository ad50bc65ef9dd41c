"""``failed_test_stories.yml`` / ``successful_test_stories.yml``: test stories with Rasa's marks.

Each story is written as :func:`dialogue_models.stories.stories_to_yaml` writes it, and every
wrongly predicted action line gets Rasa's inline comment::

    - action: utter_greet  # predicted: utter_goodbye

A wrong prediction of an implicit ``action_listen`` (a prediction with ``step_index`` None) is
written as an extra ``- action: action_listen  # predicted: X`` line where the listen happened:
after the preceding predicted action step and the slot / loop events that follow it, before the
next user turn. Scored on an action map (:mod:`dialogue_models.evaluation.action_map`), a line
is wrong when the act labels differ, and the comment reads ``# predicted: <acts> (<utterance>)``.
The files read back with :func:`dialogue_models.stories.read_stories` (YAML comments are
ignored), the extra lines as explicit ``action_listen`` steps.
"""
from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any, Sequence

from dialogue_models.stories import step_to_plain
from dialogue_models.story_model import ActionStep, ActiveLoop, SlotWasSet, Step, Story
from nlu_models.data.rasa_yaml import WRITE_VERSION, dump_yaml

if TYPE_CHECKING:
    from dialogue_models.evaluation.report import ActionPrediction, StoryResult

NO_FAILURES = "None of the test stories failed - all good!"  # Rasa's wording
NO_SUCCESSES = "None of the test stories succeeded :("
_INDENT = "  "  # the steps of a story sit under '  steps:'


def annotated_stories_yaml(results: Sequence[StoryResult], if_empty: str) -> str:
    """Rasa YAML (``version: "3.1"``, ``stories:``) of ``results``' stories, wrong steps marked.

    Without stories it is ``# <if_empty>`` above an empty ``stories: []`` list, which still
    reads as a (empty) story file.
    """
    head = f'version: "{WRITE_VERSION}"\n'
    if not results:
        return f"# {if_empty}\n{head}stories: []\n"
    body = [line for result in results for line in story_lines(result.story, result.predictions)]
    return head + "stories:\n" + "\n".join(body) + "\n"


def story_lines(story: Story, predictions: Sequence[ActionPrediction]) -> list[str]:
    """The YAML lines of one ``- story:`` entry, with ``# predicted:`` on each wrong action."""
    header: dict[str, Any] = {"story": story.name}
    if story.metadata:
        header["metadata"] = story.metadata
    lines = dump_yaml([header]).splitlines() + [f"{_INDENT}steps:"]
    for plain, comment in annotated_steps(story, predictions):
        step = dump_yaml([plain]).splitlines()
        if comment is not None:  # on the last line: a quoted scalar may span several lines
            step[-1] += f"  # {comment}"
        lines += [_INDENT + line if line else line for line in step]
    return lines


def annotated_steps(story: Story, predictions: Sequence[ActionPrediction]
                    ) -> list[tuple[dict[str, Any], str | None]]:
    """``(plain step, comment or None)`` in story order, wrong implicit listens inserted."""
    check_predictions(story, predictions)
    comments: dict[int, str] = {}
    inserted: dict[int, list[tuple[dict[str, Any], str]]] = defaultdict(list)
    last_action = -1
    for prediction in predictions:
        wrong = prediction.predicted != prediction.gold
        if prediction.step_index is not None:
            last_action = prediction.step_index
            if wrong:
                comments[prediction.step_index] = _comment(prediction)
        elif wrong:
            position = listen_position(story.steps, last_action)
            gold = prediction.gold_action or prediction.gold  # the literal action, mapped or not
            inserted[position].append(({"action": gold}, _comment(prediction)))
    out: list[tuple[dict[str, Any], str | None]] = []
    for index, step in enumerate(story.steps):
        out += inserted.get(index, [])
        out.append((step_to_plain(step), comments.get(index)))
    return out + inserted.get(len(story.steps), [])


def listen_position(steps: Sequence[Step], last_action: int) -> int:
    """Index of the step before which a listen after ``steps[last_action]`` happened.

    That is past the action and the slot / loop events it caused, so the written line does not
    take them over from it; ``last_action`` -1 means before any predicted action.
    """
    position = last_action + 1
    while position < len(steps) and isinstance(steps[position], (SlotWasSet, ActiveLoop)):
        position += 1
    return position


def _comment(prediction: ActionPrediction) -> str:
    """``predicted: X``; scored on an action map, ``predicted: <acts> (<literal action>)``."""
    text = str(prediction.predicted)
    if prediction.predicted_action not in (None, prediction.predicted):
        text += f" ({prediction.predicted_action})"
    return "predicted: " + " ".join(text.split())  # one line, always


def check_predictions(story: Story, predictions: Sequence[ActionPrediction]) -> None:
    """Raise unless each ``step_index`` of ``predictions`` is an action step of ``story``."""
    for prediction in predictions:
        index = prediction.step_index
        if index is None or (0 <= index < len(story.steps)
                             and isinstance(story.steps[index], ActionStep)):
            continue
        raise ValueError(f"story '{story.name}': a prediction for step {index} (gold "
                         f"'{prediction.gold}'), which is not an action step of the story "
                         f"({len(story.steps)} steps)")
