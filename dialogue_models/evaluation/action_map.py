"""Scoring end-to-end stories on dialogue acts, as the TED paper's MultiWOZ e2e runs did.

In end-to-end stories the bot actions are literal system utterances, and most test utterances
never occur in training, so literal-utterance accuracy says little. An *action map* (the TED
paper's ``action_map.json``: ``{utterance: [act, ...]}``, e.g. ``{"Where to?":
["request_taxi"]}``) gives each utterance its dialogue acts, and the story evaluation then scores
*act labels* instead of utterances.

The metric, exactly:

* an action's **act label** is the sorted set of its acts joined by ``+``
  (``["request_train", "inform_train"]`` → ``"inform_train+request_train"``); an action absent
  from the map (``action_listen``, named actions, unknown utterances) is its own label;
* gold and predicted actions are both replaced by their act labels, and every score of the
  story report (accuracy with and without ``action_listen``, weighted precision / F1, the
  per-label rows, the confusion matrix, conversation accuracy) is computed on those labels as
  on ordinary action names: a prediction is right when its act set *equals* the gold act set;
* the literal-utterance accuracy is kept beside it (``utterance_action_accuracy``).

Why an exact set match: a system turn that also asks something (``inform+request``) does not do
what a plain ``inform`` does, so partial overlap is not counted as right; act order within an
utterance carries no meaning, so sets are compared. One label per turn also keeps the report,
its weighted F1 and the confusion matrix in the same single-label shape as without a map.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from dialogue_models.domain import normalize_tabs
from dialogue_models.events import ACTION_LISTEN
from nlu_models.data.errors import DataError

if TYPE_CHECKING:
    from dialogue_models.evaluation.report import StoryResult

log = logging.getLogger(__name__)
ACT_SEPARATOR = "+"


def act_label(acts: Sequence[str]) -> str:
    """One label for an utterance's acts: the sorted distinct acts joined by ``+``."""
    return ACT_SEPARATOR.join(sorted(set(acts)))


def read_action_map(path: str | Path) -> dict[str, str]:
    """``action_map.json`` as ``{utterance: act label}``.

    TABs in the utterances become spaces, as the story and domain readers write them (the TED
    e2e files have 13 such utterances). Raises :class:`DataError` naming the file when it is not
    an object of non-empty act lists, or when two utterances that read the same get different
    acts.
    """
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read the action map: {err}", path) from err
    if not isinstance(raw, dict):
        raise DataError("an action map must be a JSON object {utterance: [act, ...]}", path)
    labels: dict[str, str] = {}
    for utterance, acts in raw.items():
        if (not isinstance(acts, list) or not acts
                or not all(isinstance(a, str) and a for a in acts)):
            raise DataError(f"utterance {utterance!r}: expected a non-empty list of act names, "
                            f"got {acts!r}", path)
        key, label = normalize_tabs(utterance), act_label(acts)
        if labels.setdefault(key, label) != label:
            raise DataError(f"utterance {key!r} is mapped twice, to '{labels[key]}' and "
                            f"'{label}'", path)
    return labels


def map_action(action: str, action_map: Mapping[str, str]) -> str:
    """The act label of ``action``; itself when the map does not know it."""
    return action_map.get(normalize_tabs(action), action)


def map_results(results: Sequence[StoryResult], action_map: Mapping[str, str]
                ) -> list[StoryResult]:
    """``results`` with every gold and predicted action replaced by its act label; the literal
    actions stay in ``gold_action`` / ``predicted_action``. Warns when gold bot actions (other
    than ``action_listen``) are missing from the map: they are scored as themselves."""
    mapped = [replace(r, predictions=[
        replace(p, gold=map_action(p.gold, action_map),
                predicted=map_action(p.predicted, action_map),
                gold_action=p.gold, predicted_action=p.predicted) for p in r.predictions])
        for r in results]
    bot = [p.gold for r in results for p in r.predictions if p.gold != ACTION_LISTEN]
    unknown = [a for a in bot if normalize_tabs(a) not in action_map]
    if unknown:
        log.warning("%d of %d gold bot actions are not in the action map and are scored as "
                    "themselves (first: %r)", len(unknown), len(bot), unknown[0])
    return mapped

