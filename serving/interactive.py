"""``dialab interactive``: talk to the bot and teach it (Rasa's ``rasa interactive``).

For each message the session shows the NLU parse (intent, its ranking, the entities written in
Rasa's inline markup) and asks whether it is right; if not, the user picks the intent from a
numbered list and re-annotates the message (``what's the weather in [Berlin](city)``). The
message is logged with the corrected parse, then, until the bot listens, the policy's top
actions are shown with their confidences and the user confirms the first or picks another; the
action runs (custom actions through the action server) and its messages and slot changes are
shown; slot values set by the message or an action can be corrected.

Commands, at any prompt: ``/save`` writes the session as new NLU examples and a story
(``<out>/interactive_<timestamp>/nlu.yml`` and ``stories.yml``, by default under the bot's
``data/`` folder; existing files are never touched, later saves rewrite the session's own
files), ``/undo`` takes back the last user message and the bot's actions after it,
``/retrain`` saves, retrains both models on the data folder and goes on with the new ones,
``/quit`` asks whether to save and ends. A command typed in the middle of a turn drops the
question it answered; the turn goes on (with a fresh prediction) after it.

:class:`InteractiveSession` asks and shows through an :class:`InteractiveIO` (``ask`` a line,
``show`` rich renderables), so it runs under tests with scripted answers; :class:`ConsoleIO`
is the terminal.
"""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from rich.columns import Columns
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dialogue_models.conversation_data import (conversation_examples, conversation_stories,
                                               entity_spans)
from dialogue_models.events import (ACTION_EXTRACT_SLOTS, ACTION_LISTEN, ACTION_SESSION_START,
                                    DEFAULT_ACTIONS, REQUESTED_SLOT,
                                    ActionExecuted, ActionExecutionRejected, BotUttered,
                                    SlotSet, UserUttered, UserUtteranceReverted)
from dialogue_models.processor import EXTERNAL_PREFIX
from dialogue_models.project import load_bot
from dialogue_models.stories import stories_to_yaml
from nlu_models.data.annotations import parse_annotated, write_annotated
from nlu_models.data.errors import DataError
from nlu_models.data.rasa_yaml import nlu_to_yaml
from serving.agent import Agent
from serving.intent_shortcut import parse_intent_shortcut

__all__ = ["InteractiveIO", "ConsoleIO", "InteractiveSession", "COMMANDS", "main"]

COMMANDS = ("/save", "/undo", "/retrain", "/quit")
CHANNEL = "interactive"
CORRECTED_POLICY = "interactive"  # the policy logged for an action the user chose
_NOT_CHOSEN = (ACTION_SESSION_START, ACTION_EXTRACT_SLOTS)  # the processor runs these itself


class InteractiveIO(Protocol):
    def show(self, *items: Any) -> None:
        """Print text (rich markup) or rich renderables."""

    def ask(self, prompt: str) -> str:
        """One line from the user (``prompt`` in rich markup); EOFError at end of input."""


class ConsoleIO:
    """The terminal, through rich."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)

    def show(self, *items: Any) -> None:
        self.console.print(*items)

    def ask(self, prompt: str) -> str:
        return self.console.input(prompt)


class _Command(Exception):
    """A command typed at a prompt: it ends what that prompt was asking."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class InteractiveSession:
    """One interactive-learning conversation with ``agent`` (see the module docstring).

    ``data_dir`` is the bot folder (its examples are not written again); the session's files go
    to ``out_dir`` (default ``data_dir/data``, or ``data_dir`` without one). ``retrain`` returns
    an agent over models retrained on ``data_dir`` (None: ``/retrain`` is off);
    ``retrain_on_save`` runs it after every ``/save``."""

    def __init__(self, agent: Agent, io: InteractiveIO, data_dir: str | Path,
                 out_dir: str | Path | None = None, sender_id: str = "interactive",
                 retrain: Callable[[], Agent] | None = None, retrain_on_save: bool = False,
                 top_n: int = 5) -> None:
        if agent.domain is None:
            raise ValueError("interactive learning needs a policy bundle (with its domain)")
        self.agent, self.io, self.sender = agent, io, sender_id
        self.data_dir = Path(data_dir)
        default_out = self.data_dir / "data" if (self.data_dir / "data").is_dir() \
            else self.data_dir
        self.out_dir = Path(out_dir) if out_dir is not None else default_out
        self.retrainer, self.retrain_on_save, self.top_n = retrain, retrain_on_save, top_n
        self.known_examples = {(m.text.strip(), m.intent)
                               for m in load_bot(self.data_dir, collect_errors=True).nlu.examples}
        self.started = datetime.now()
        self.saved_to: Path | None = None

    # ---- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Talk until ``/quit`` or the end of input; 0."""
        self.io.show(f"Interactive learning with the bot; your data: {escape(str(self.data_dir))}."
                     f" Commands: {', '.join(COMMANDS)}.")
        try:
            while self._turn():
                pass
        except EOFError:
            self.io.show("End of input: the session ends"
                         + ("." if self.saved_to else " unsaved (use /save)."))
        return 0

    def _turn(self) -> bool:
        """Read and log a message if the bot listens, run its actions; False to end."""
        try:
            if self.bot_listening():
                self.handle_message(self._read_message())
            self.act()
            return True
        except _Command as command:
            return self.command(command.name)
        except KeyboardInterrupt:
            self.io.show("")
            return self.command("/quit")

    def command(self, name: str) -> bool:
        """Run ``/save``, ``/undo``, ``/retrain`` or ``/quit``; False to end the session."""
        if name == "/save":
            if self.save() is not None and self.retrain_on_save:
                self.retrain(save=False)
        elif name == "/undo":
            self.undo()
        elif name == "/retrain":
            self.retrain()
        elif name == "/quit":
            if self._has_user_messages() and self._confirm("Save this session before quitting?",
                                                           commands=False):
                self.save()
            self.io.show("Bye.")
            return False
        return True

    def bot_listening(self) -> bool:
        """Whether the bot waits for a message: no user message yet, or ``action_listen``
        after the latest one."""
        listened = True
        for event in self.agent.tracker(self.sender).applied_events():
            if isinstance(event, UserUttered):
                listened = False
            elif isinstance(event, ActionExecuted) and event.name == ACTION_LISTEN:
                listened = True
        return listened

    def _read_message(self) -> str:
        while True:
            text = self._ask("[bold]Your input ->[/bold] ").strip()
            if text:
                return text

    # ---- the user's message --------------------------------------------------------------------
    def handle_message(self, text: str) -> None:
        """Parse ``text``, let the user correct the parse, log it, let them correct its slots."""
        parse = self.review_parse(text, self.agent.parse(text))
        before = dict(self.agent.tracker(self.sender).slots)
        tracker = self.agent.log_message(self.sender, text, parse, input_channel=CHANNEL)
        self.review_slots(before, tracker.slots)

    def review_parse(self, text: str, parse: Mapping[str, Any]) -> dict[str, Any]:
        """The parse as shown, or with the intent and entities the user gives instead."""
        intent = (parse.get("intent") or {}).get("name")
        self.io.show(self._parse_view(text, parse))
        if intent and self._confirm("Is the intent and are the entities right?"):
            return dict(parse)
        ranked = [r["name"] for r in parse.get("intent_ranking") or []]
        intent = self._choose("Intent", _ranked(ranked, self.intents()), intent)
        entities = self._ask_entities(text, list(parse.get("entities") or []))
        return {**parse, "intent": {"name": intent, "confidence": 1.0}, "entities": entities}

    def _ask_entities(self, text: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        known = set(self.agent.domain.entity_names)
        self.io.show(escape('Entities: type the message with Rasa annotations, e.g. '
                            '[Berlin](city) or [ham]{"entity": "topping", "role": "add"}; the '
                            'plain message for none, enter to keep'))
        while True:
            answer = self._ask(f"  [dim]{escape(_annotated(text, entities))}[/dim]\n  -> ").strip()
            if not answer:
                return entities
            try:
                plain, spans = parse_annotated(answer)
            except DataError as err:
                self.io.show(f"[red]{escape(err.reason)}[/red]")
                continue
            unknown = sorted({s.entity for s in spans} - known)
            if plain != text:
                self.io.show(f"[red]the text must stay {escape(repr(text))}, not "
                             f"{escape(repr(plain))}[/red]")
            elif unknown:
                self.io.show(f"[red]not entities of the domain: {escape(', '.join(unknown))}"
                             "[/red]")
            else:
                return [s.as_dict() for s in spans]

    # ---- the bot's actions ---------------------------------------------------------------------
    def act(self) -> None:
        """Predict, confirm or correct, run, until the bot listens."""
        while not self.bot_listening():
            ranking, tracker = self.agent.predict(self.sender)
            ranked = _ranked([a for a, _ in ranking.ranking], self.actions())
            self.io.show(self._ranking_view(ranking.ranking, ranking.policy))
            action, policy, confidence = ranking.action, ranking.policy, ranking.confidence
            if not self._confirm(f"Run [bold]{escape(action)}[/bold] next?"):
                action = self._choose("Action", ranked, None)
                policy, confidence = CORRECTED_POLICY, 1.0
            before, start = dict(tracker.slots), len(tracker.events)
            try:
                tracker, messages = self.agent.execute(self.sender, action, policy, confidence)
            except Exception as err:  # an action server that fails must not end the session
                self.io.show(f"[red]{escape(action)} failed: {escape(str(err))}[/red]")
                continue
            if any(isinstance(e, ActionExecutionRejected) for e in tracker.events[start:]):
                self.io.show(f"[yellow]{escape(action)} rejected to run: choose another "
                             "action[/yellow]")
            for message in messages:
                self.io.show(_message_view(message))
            self.review_slots(before, tracker.slots)

    def review_slots(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """Show the slots that changed; unless only ``requested_slot`` did, let the user set
        other values (``name=value``, JSON values)."""
        changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
        if not changed:
            return
        self.io.show("slots: " + ", ".join(f"{escape(k)} = {escape(json.dumps(v, default=str))}"
                                           for k, v in changed.items()))
        if set(changed) == {REQUESTED_SLOT} or self._confirm("Are these slot values right?"):
            return
        slots = self.agent.domain.slots
        while True:
            answer = self._ask('  slot to set, as name=value (e.g. city=Paris, topping=["ham"],'
                               " size=null); enter when done -> ").strip()
            if not answer:
                return
            name, sep, raw = (part.strip() for part in answer.partition("="))
            if not sep or name not in slots:
                self.io.show(f"[red]write name=value with a slot of the domain "
                             f"({escape(', '.join(slots))})[/red]")
                continue
            self.agent.append_events(self.sender, [SlotSet(name, _slot_value(raw))])

    # ---- commands ------------------------------------------------------------------------------
    def undo(self) -> None:
        if not self._has_user_messages():
            self.io.show("Nothing to undo.")
            return
        # the rewind drops the listen before the message too: listen again, for the next one
        self.agent.append_events(self.sender, [UserUtteranceReverted(),
                                               ActionExecuted(ACTION_LISTEN)])
        self.io.show("Undone: your last message and the bot's actions after it.")

    def save(self) -> Path | None:
        """Write the session's stories and new examples; the folder, or None if nothing to
        write. The first save makes a new folder; later ones rewrite its files."""
        events = self.agent.tracker(self.sender).events
        stories = conversation_stories(
            events, f"interactive story {self.started:%Y-%m-%d %H:%M:%S}")
        nlu = conversation_examples(events, skip_text=_not_an_example)
        nlu = nlu.with_examples([m for m in nlu.examples
                                 if (m.text.strip(), m.intent) not in self.known_examples])
        if stories.is_empty() and not nlu.examples:
            self.io.show("Nothing to save yet.")
            return None
        folder = self.saved_to or self._new_folder()
        for name, text in (("nlu.yml", nlu_to_yaml(nlu) if nlu.examples else None),
                           ("stories.yml", stories_to_yaml(stories) if stories.stories
                            else None)):
            if text is not None:
                (folder / name).write_text(text, encoding="utf-8")
            else:
                (folder / name).unlink(missing_ok=True)  # only ever a file of this session
        self.saved_to = folder
        self.io.show(f"Saved {len(nlu.examples)} new NLU examples and {len(stories.stories)} "
                     f"stories to {escape(str(folder))}")
        return folder

    def _new_folder(self) -> Path:
        base = self.out_dir / f"interactive_{self.started:%Y%m%d-%H%M%S}"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            folder = base if n == 1 else base.with_name(f"{base.name}_{n}")
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
        raise FileExistsError(f"no free interactive_* folder name under {self.out_dir}")

    def retrain(self, save: bool = True) -> None:
        """Save, retrain on the data folder and go on with the new models (same conversation)."""
        if self.retrainer is None:
            self.io.show("Retraining is off in this session.")
            return
        if save:
            self.save()
        self.io.show("Retraining on " + escape(str(self.data_dir)) + " ...")
        try:
            agent = self.retrainer()
        except Exception as err:  # a failed training run keeps the session on the old models
            self.io.show(f"[red]retraining failed ({type(err).__name__}: {escape(str(err))}); "
                         "going on with the old models[/red]")
            return
        agent.append_events(self.sender, self.agent.tracker(self.sender).events)
        self.agent = agent
        self.io.show("Retrained: going on with the new models.")

    # ---- choices -------------------------------------------------------------------------------
    def intents(self) -> list[str]:
        nlu_intents = getattr(getattr(self.agent.nlu, "labels", None), "intents", None) or []
        return list(dict.fromkeys([*self.agent.domain.intent_names, *nlu_intents]))

    def actions(self) -> list[str]:
        domain = self.agent.domain
        # a retrieval action (utter_faq) stands for its responses (utter_faq/opening_hours, ...)
        retrieval = tuple(f"{a}/" for a in domain.retrieval_actions)
        responses = [r for r in domain.responses if not r.startswith(retrieval)]
        return list(dict.fromkeys([*domain.actions, *responses, *domain.retrieval_actions,
                                   *domain.forms,
                                   *(a for a in DEFAULT_ACTIONS if a not in _NOT_CHOSEN)]))

    def _ask(self, prompt: str, commands: bool = True) -> str:
        answer = self.io.ask(prompt)
        if commands and answer.strip() in COMMANDS:
            raise _Command(answer.strip())
        return answer

    def _confirm(self, question: str, commands: bool = True) -> bool:
        while True:
            answer = self._ask(f"{question} [Y/n] ", commands).strip().lower()
            if answer in ("", "y", "yes"):
                return True
            if answer in ("n", "no"):
                return False
            self.io.show("Answer y or n.")

    def _choose(self, what: str, options: Sequence[str], current: str | None) -> str:
        self.io.show(Columns([f"{i:>2} {escape(o)}" for i, o in enumerate(options, 1)],
                             padding=(0, 3)))
        keep = f", enter keeps {escape(current)}" if current else ""
        while True:
            answer = self._ask(f"{what} (number or name{keep}) -> ").strip()
            if not answer and current:
                return current
            if answer.isdigit() and 1 <= int(answer) <= len(options):
                return options[int(answer) - 1]
            if answer in options:
                return answer
            self.io.show(f"[red]not one of the {len(options)} choices: {escape(answer)}[/red]")

    def _has_user_messages(self) -> bool:
        return any(isinstance(e, UserUttered)
                   for e in self.agent.tracker(self.sender).applied_events())

    # ---- views ---------------------------------------------------------------------------------
    def _parse_view(self, text: str, parse: Mapping[str, Any]) -> Table:
        intent = parse.get("intent") or {}
        table = Table.grid(padding=(0, 2))
        table.add_row("[bold]intent[/bold]", f"{escape(str(intent.get('name')))} "
                      f"({float(intent.get('confidence') or 0):.2f})")
        others = [r for r in parse.get("intent_ranking") or []
                  if r.get("name") != intent.get("name")][:self.top_n - 1]
        if others:
            table.add_row("  then", ", ".join(f"{escape(r['name'])} {r['confidence']:.2f}"
                                              for r in others))
        entities = list(parse.get("entities") or [])
        table.add_row("[bold]entities[/bold]", escape(_annotated(text, entities))
                      if entities else "none")
        return table

    def _ranking_view(self, ranking: Sequence[tuple[str, float]], policy: str | None) -> Table:
        table = Table("#", f"next action ({escape(str(policy))})", "confidence", box=None)
        for i, (action, score) in enumerate(ranking[:self.top_n], 1):
            table.add_row(str(i), escape(action), f"{score:.2f}")
        return table


def _ranked(first: Sequence[str], everything: Sequence[str]) -> list[str]:
    """``first`` (those in ``everything``), then the rest of ``everything`` in its order."""
    known = set(everything)
    return list(dict.fromkeys([*(f for f in first if f in known), *everything]))


def _annotated(text: str, entities: Sequence[Mapping[str, Any]]) -> str:
    """``text`` with Rasa's inline annotations; a shortcut's or overlapping entities listed."""
    listed = text + "  " + ", ".join(f"{e['entity']}={json.dumps(e.get('value'))}"
                                     for e in entities)
    if _not_an_example(text):
        return listed if entities else text
    try:
        return write_annotated(text, entity_spans(entities))
    except ValueError:  # overlapping spans
        return listed


def _message_view(message: BotUttered) -> str:
    data = message.data or {}
    lines = [f"[cyan]bot:[/cyan] {escape(message.text)}"] if message.text else []
    lines += [f"  {i}: {escape(str(b.get('title')))} ({escape(str(b.get('payload')))})"
              for i, b in enumerate(data.get("buttons") or data.get("quick_replies") or [], 1)]
    lines += [f"[cyan]bot ({key}):[/cyan] {escape(str(data[key]))}"
              for key in ("image", "custom", "attachment") if data.get(key)]
    return "\n".join(lines)


def _slot_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _not_an_example(text: str) -> bool:
    """Button payloads and injected intents are no NLU examples."""
    return parse_intent_shortcut(text) is not None or text.startswith(EXTERNAL_PREFIX)


def main(args: Any, io: InteractiveIO | None = None) -> int:
    """``dialab interactive`` (arguments parsed in :mod:`dialogue_models.cli`)."""
    import sys

    if not Path(args.data).is_dir():
        print(f"error: --data {args.data} is not a folder (the bot folder: domain.yml, data/)",
              file=sys.stderr)
        return 2
    retrain = _retrainer(args)
    if args.retrain and retrain is None:
        print("error: --retrain needs the dialab source checkout (experiments/ and configs/ "
              "beside the packages)", file=sys.stderr)
        return 2
    agent = Agent.load(args.nlu, args.policy, "memory://", args.action_endpoint)
    session = InteractiveSession(agent, io or ConsoleIO(), args.data, args.out, args.sender,
                                 retrain, args.retrain)
    return session.run()


def _retrainer(args: Any) -> Callable[[], Agent] | None:
    """Retraining through ``experiments.retrain_bot`` (the source checkout's experiments)."""
    import os
    import sys

    root = Path(__file__).resolve().parents[1]
    if not (root / "experiments" / "retrain_bot.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    outputs = Path(os.environ.get("DIALAB_OUTPUTS") or root / "outputs")
    models_out = Path(args.models_out) if args.models_out else \
        outputs / "interactive" / datetime.now().strftime("%Y%m%d-%H%M%S")
    runs = iter(range(1, 10_000))

    def retrain() -> Agent:
        from experiments.retrain_bot import retrain_bundles

        nlu, policy = retrain_bundles(args.data, models_out / f"retrain_{next(runs)}",
                                      args.nlu_experiment, args.policy_experiment,
                                      args.retrain_epochs)
        return Agent.load(nlu, policy, "memory://", args.action_endpoint)

    return retrain
