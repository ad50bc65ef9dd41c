"""One call that scores a policy's action predictions on test stories, as ``rasa test core``.

:func:`evaluate_stories` writes into ``out_dir/reports/`` (ARCHITECTURE.md, "Run outputs")::

    summary.json                   meta + headline metrics, with and without action_listen
    story_report.json              Rasa's shape: sklearn report over actions + conversation_accuracy
    failed_test_stories.yml        stories with a wrong prediction, '# predicted: X' on its line
    successful_test_stories.yml    the stories that passed
    errors.json                    one entry per wrong prediction
    story_confusion_matrix.png     (with ``plots``)
    report.md                      the human summary

With an ``action_map`` (end-to-end stories whose bot actions are utterances) every score is
computed on dialogue-act labels instead of the literal actions; the literal accuracy is kept as
``utterance_action_accuracy`` (:mod:`dialogue_models.evaluation.action_map` defines the metric).

:func:`format_story_summary` prints the summary as ``rasa test core`` logs it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from dialogue_models.evaluation.action_map import map_results
from dialogue_models.evaluation.failed_stories import (NO_FAILURES, NO_SUCCESSES,
                                                       annotated_stories_yaml, check_predictions)
from dialogue_models.story_model import Story
from nlu_models.evaluation.intents import label_report
from nlu_models.evaluation.plots import plot_confusion_matrix

ACTION_LISTEN = "action_listen"
# predictions by these count as "seen in the training data" (Rasa's In-data fraction)
IN_DATA_POLICIES = ("RulePolicy", "MemoizationPolicy", "AugmentedMemoizationPolicy")
STORY_MATRIX = "story_confusion_matrix.png"
EXCLUDING_LISTEN = "_excluding_listen"


@dataclass
class ActionPrediction:
    """The policy ensemble's prediction at one bot turn of a test story."""

    gold: str  # the action the test story has at this point
    predicted: str  # what the policy ensemble predicted
    policy: str | None  # the winning policy ("RulePolicy", "TEDPolicy", ...); None if none
    confidence: float
    step_index: int | None  # index into story.steps of its ActionStep; None: implicit listen
    # scored on an action map: gold / predicted hold the act labels, these the literal actions
    gold_action: str | None = None
    predicted_action: str | None = None

    @property
    def correct(self) -> bool:
        return self.predicted == self.gold


@dataclass
class StoryResult:
    """A test story and the predictions made along it, in order (action_listen included)."""

    story: Story
    predictions: list[ActionPrediction]

    @property
    def correct(self) -> bool:
        """Rasa's conversation-level hit: every prediction in the story is right."""
        return all(p.correct for p in self.predictions)


def evaluate_stories(results: Sequence[StoryResult], out_dir: str | Path | None, *,
                     dataset: str = "", split: str = "test",
                     extra_summary: Mapping[str, Any] | None = None,
                     plots: bool = True,
                     action_map: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Score ``results`` and, unless ``out_dir`` is None, write the reports to ``out_dir/reports``.

    Returns the summary: ``task``/``dataset``/``split``, then ``extra_summary`` (seed, epochs,
    ...), then the metrics, which win over an ``extra_summary`` key of the same name. With
    ``action_map`` (``{action: act label}``, as ``read_action_map`` returns it) everything is
    scored on act labels, plus ``utterance_action_accuracy`` (with and without action_listen)
    on the literal actions. Raises ValueError, before writing anything, when a ``step_index``
    is not an action step.
    """
    for result in results:
        check_predictions(result.story, result.predictions)
    if action_map is not None:
        results = map_results(results, action_map)
    report = story_report(results)
    summary = story_summary(results, report, dataset, split, extra_summary)
    if out_dir is None:
        return summary
    out = Path(out_dir) / "reports"
    out.mkdir(parents=True, exist_ok=True)
    failed = [r for r in results if not r.correct]
    passed = [r for r in results if r.correct]
    errors = story_errors(results)
    images = []
    if plots:
        predictions = [p for r in results for p in r.predictions]
        plot_confusion_matrix([p.gold for p in predictions], [p.predicted for p in predictions],
                              out / STORY_MATRIX, title="Action confusion matrix")
        images.append(("Action confusion matrix", STORY_MATRIX))
    for name, content in (("summary.json", summary), ("story_report.json", report),
                          ("errors.json", errors)):
        (out / name).write_text(json.dumps(content, indent=2, ensure_ascii=False, default=str)
                                + "\n", encoding="utf-8")
    (out / "failed_test_stories.yml").write_text(annotated_stories_yaml(failed, NO_FAILURES),
                                                  encoding="utf-8")
    (out / "successful_test_stories.yml").write_text(
        annotated_stories_yaml(passed, NO_SUCCESSES), encoding="utf-8")
    (out / "report.md").write_text(_markdown(summary, report, errors, failed, images),
                                   encoding="utf-8")
    return summary


def story_report(results: Sequence[StoryResult]) -> dict[str, Any]:
    """Rasa's ``story_report.json``: the report over all actions (action_listen included) and
    ``conversation_accuracy`` ``{accuracy, correct, with_warnings, total}``."""
    predictions = [p for r in results for p in r.predictions]
    report = label_report([p.gold for p in predictions], [p.predicted for p in predictions])
    correct = sum(r.correct for r in results)
    report["conversation_accuracy"] = {
        "accuracy": correct / len(results) if results else 0.0, "correct": correct,
        "with_warnings": 0, "total": len(results)}
    return report


def story_summary(results: Sequence[StoryResult], report: Mapping[str, Any], dataset: str,
                  split: str, extra_summary: Mapping[str, Any] | None = None
                  ) -> dict[str, Any]:
    """The ``summary.json`` of :func:`evaluate_stories` (``report`` is :func:`story_report`'s)."""
    predictions = [p for r in results for p in r.predictions]
    without_listen = [p for p in predictions if p.gold != ACTION_LISTEN]
    conversation = report["conversation_accuracy"]
    metrics: dict[str, Any] = {
        **_action_metrics(report),
        **{key + EXCLUDING_LISTEN: value for key, value in _action_metrics(label_report(
            [p.gold for p in without_listen], [p.predicted for p in without_listen])).items()},
        **utterance_metrics(predictions),
        "conversation_accuracy": conversation["accuracy"],
        "in_data_fraction": in_data_fraction(predictions),
        "num_actions": len(predictions),
        "num_actions" + EXCLUDING_LISTEN: len(without_listen),
        "num_stories": conversation["total"],
        "num_correct_stories": conversation["correct"],
        "policy_counts": policy_counts(predictions),
    }
    return {"task": "dialogue", "dataset": dataset, "split": split, **(extra_summary or {}),
            **metrics}


def utterance_metrics(predictions: Sequence[ActionPrediction]) -> dict[str, float]:
    """Scored on an action map: the accuracy on the literal actions, ``utterance_action_accuracy``
    (all predictions) and ``utterance_action_accuracy_excluding_listen``; ``{}`` otherwise."""
    if not predictions or predictions[0].gold_action is None:
        return {}
    without_listen = [p for p in predictions if p.gold_action != ACTION_LISTEN]
    return {"utterance_action_accuracy" + suffix:
            sum(p.predicted_action == p.gold_action for p in items) / len(items) if items else 0.0
            for suffix, items in (("", predictions), (EXCLUDING_LISTEN, without_listen))}


def story_errors(results: Sequence[StoryResult]) -> list[dict[str, Any]]:
    """``errors.json``: each wrong prediction, in story order (``step`` None: implicit listen);
    scored on an action map, ``gold``/``predicted`` are act labels and ``gold_action`` /
    ``predicted_action`` the literal actions."""
    return [{"story": r.story.name, "step": p.step_index, "gold": p.gold,
             "predicted": p.predicted, **_literal_actions(p), "policy": p.policy,
             "confidence": p.confidence}
            for r in results for p in r.predictions if not p.correct]


def _literal_actions(prediction: ActionPrediction) -> dict[str, str]:
    if prediction.gold_action is None:
        return {}
    return {"gold_action": prediction.gold_action,
            "predicted_action": str(prediction.predicted_action)}


def is_in_training_data(policy: str | None) -> bool:
    """Whether a prediction by ``policy`` counts as memorised (Rule / Memoization policies).

    Rasa 2.x names policies ``policy_2_MemoizationPolicy``; the suffix decides.
    """
    return policy is not None and any(policy == name or policy.endswith("_" + name)
                                      for name in IN_DATA_POLICIES)


def in_data_fraction(predictions: Sequence[ActionPrediction]) -> float:
    """Rasa's "In-data fraction": the share of predictions made by a memorising policy."""
    if not predictions:
        return 0.0
    return sum(is_in_training_data(p.policy) for p in predictions) / len(predictions)


def policy_counts(predictions: Sequence[ActionPrediction]) -> dict[str, int]:
    """How many predictions each policy won (``"none"`` where no policy predicted)."""
    counts: dict[str, int] = {}
    for p in predictions:
        counts[p.policy or "none"] = counts.get(p.policy or "none", 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def format_story_summary(summary: Mapping[str, Any]) -> str:
    """The summary as ``rasa test core`` logs it: CONVERSATION level, then ACTION level (plus
    the same without action_listen, which Rasa does not print)."""
    stories, correct = summary["num_stories"], summary["num_correct_stories"]
    lines = ["Evaluation Results on CONVERSATION level:",
             f"\tCorrect:          {correct} / {stories}",
             f"\tAccuracy:         {summary['conversation_accuracy']:.3f}"]
    for title, suffix in (("ACTION level", ""),
                          ("ACTION level (excluding action_listen)", EXCLUDING_LISTEN)):
        n, accuracy = summary["num_actions" + suffix], summary["action_accuracy" + suffix]
        lines += [f"Evaluation Results on {title}:",
                  f"\tCorrect:          {round(n * accuracy)} / {n}",
                  f"\tF1-Score:         {summary['action_weighted_f1' + suffix]:.3f}",
                  f"\tPrecision:        {summary['action_weighted_precision' + suffix]:.3f}",
                  f"\tAccuracy:         {accuracy:.3f}"]
        if "utterance_action_accuracy" + suffix in summary:  # scored on dialogue acts
            utterances = summary["utterance_action_accuracy" + suffix]
            lines.append(f"\tUtterance accuracy: {utterances:.3f}")
        if not suffix:
            lines.append(f"\tIn-data fraction: {summary['in_data_fraction']:.3g}")
    return "\n".join(lines)


# ---- pieces ------------------------------------------------------------------------------------
def _action_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    weighted = report["weighted avg"]
    return {"action_accuracy": report["accuracy"], "action_weighted_f1": weighted["f1-score"],
            "action_weighted_precision": weighted["precision"],
            "action_macro_f1": report["macro avg"]["f1-score"]}


def _markdown(summary: Mapping[str, Any], report: Mapping[str, Any],
              errors: Sequence[Mapping[str, Any]], failed: Sequence[StoryResult],
              images: Sequence[tuple[str, str]], n_failed: int = 10) -> str:
    title = " / ".join(str(summary[k]) for k in ("task", "dataset", "split") if summary.get(k))
    conversation = report["conversation_accuracy"]
    lines = [f"# Story evaluation{': ' + title if title else ''}", "",
             f"{conversation['correct']} of {conversation['total']} test stories fully correct; "
             f"{summary['num_actions']} action predictions "
             f"({summary['num_actions' + EXCLUDING_LISTEN]} without action_listen), "
             f"{len(errors)} wrong.", "",
             "| metric | all actions (Rasa) | excluding action_listen |", "| --- | --- | --- |"]
    keys = ["action_accuracy", "action_weighted_f1", "action_weighted_precision",
            "action_macro_f1", "utterance_action_accuracy"]  # the last: with an action map
    for key in (k for k in keys if k in summary):
        lines.append(f"| {key} | {_pct(summary[key])} | {_pct(summary[key + EXCLUDING_LISTEN])} |")
    lines += [f"| conversation_accuracy | {_pct(summary['conversation_accuracy'])} | |",
              f"| in_data_fraction | {_pct(summary['in_data_fraction'])} | |", "",
              "Policies: " + (", ".join(f"{k} {v}" for k, v in summary["policy_counts"].items())
                              or "none")]
    rows = sorted(((k, v) for k, v in report.items() if isinstance(v, Mapping)
                   and "support" in v and not k.endswith(" avg")),
                  key=lambda kv: (kv[1]["f1-score"], -kv[1]["support"], kv[0]))[:10]
    if rows:
        lines += ["", "## Worst actions (by F1)", "",
                  "| action | precision | recall | F1 | support | confused with |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, row in rows:
            confused = ", ".join(f"{k} ({v})" for k, v in row.get("confused_with", {}).items())
            lines.append(f"| {name} | {_pct(row['precision'])} | {_pct(row['recall'])} | "
                         f"{_pct(row['f1-score'])} | {row['support']} | {confused or '-'} |")
    if failed:
        lines += ["", f"## Failed stories (first {min(n_failed, len(failed))} of {len(failed)}; "
                  "all in failed_test_stories.yml)", ""]
        for result in failed[:n_failed]:
            first = next(p for p in result.predictions if not p.correct)
            lines.append(f"- {result.story.name}: {first.gold} → {first.predicted} "
                         f"({first.policy or 'no policy'}, {first.confidence:.2f})")
    if images:
        lines += ["", "## Plots", ""] + [f"![{alt}]({file})" for alt, file in images]
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}"
