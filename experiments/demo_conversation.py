"""The end of ``make demo``: export the demo bot, serve it, hold a scripted conversation, print it.

``python -m experiments.demo_conversation [--nlu-run DIR] [--policy-run DIR] [--out DIR]``

1. Finds the latest ``diet_demo`` and ``ted_demo`` runs (``outputs/<task>/runs/<timestamp>/`` with
   ``checkpoints/last.ckpt``; ``DIALAB_OUTPUTS`` moves ``outputs/``), unless ``--nlu-run`` /
   ``--policy-run`` name a run folder, a checkpoint or an already exported bundle.
2. Exports both bundles with :func:`experiments.export.export` into ``--out`` (default: a temporary
   folder, removed afterwards), where the two servers' logs go too.
3. Starts the demo bot's action server (``data/demo_bot/actions.py``) and ``python -m serving``
   as subprocesses on free loopback ports, with an in-memory tracker store, and waits for their
   ``/health``.
4. Talks to ``POST /webhooks/rest/webhook``: a greeting, "I'd like to order a pizza", answers to
   whatever the form asks (size, toppings, crust, delivery: read from the conversation's
   ``requested_slot``), then "what's the weather in Berlin?", "and tomorrow?" and an FAQ ("when
   are you open?", answered by the response selector through ``utter_faq``). Each text is
   first parsed with ``POST /model/parse``; when the model gets its intent or entities wrong the
   button payload (``/inform{"size": "large"}``, ...) is sent instead, and the transcript says so
   (the FAQ has no payload: a shortcut intent carries no response selection).
   Every line sent is printed as ``user: ...``, every bot message as ``bot:  ...``.
5. Stops both servers (terminate, wait, kill if needed), also on errors and Ctrl-C.

Exit code 0 when the bot answered every message and the order went through the form; 1 when the
conversation went wrong (the reasons are printed); 2 when the demo could not be set up (no run,
a failed export, a server that did not start; its log is printed).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from experiments import REPO_ROOT

__all__ = ["DemoError", "DemoResult", "Step", "run_demo", "latest_run", "resolve_bundle",
           "main", "ACTIONS_SCRIPT", "FORM_ANSWERS"]

ACTIONS_SCRIPT = REPO_ROOT / "data" / "demo_bot" / "actions.py"
FORM = "pizza_order_form"
SENDER = "demo"


class DemoError(RuntimeError):
    """The demo could not be set up (exit code 2)."""


@dataclass(frozen=True)
class Step:
    """One user message: the text, what it should parse as, and the payload to send instead."""

    text: str
    intent: str
    entities: tuple[tuple[str, str], ...] = ()
    payload: str = ""

    @classmethod
    def make(cls, text: str, intent: str, **entities: str | list[str]) -> "Step":
        pairs = tuple((name, v) for name, value in entities.items()
                      for v in (value if isinstance(value, list) else [value]))
        payload = f"/{intent}"
        if entities:
            payload += json.dumps(entities)
        return cls(text, intent, pairs, payload)


OPENING = (Step.make("hello", "greet"),
           Step.make("I'd like to order a pizza", "order_pizza"))
FORM_ANSWERS = {
    "size": Step.make("a large one, please", "inform", size="large"),
    "topping": Step.make("pepperoni and mushrooms", "inform", topping=["pepperoni", "mushrooms"]),
    "crust": Step.make("thin crust", "inform", crust="thin"),
    "wants_delivery": Step.make("yes, deliver it please", "affirm"),
}
WEATHER = (Step.make("what's the weather in Berlin?", "ask_weather", city="Berlin"),
           Step.make("and tomorrow?", "ask_weather_followup", date="tomorrow"))
FAQ = Step("when are you open?", "faq")   # the response selector picks faq/opening_hours


@dataclass
class DemoResult:
    """What happened: the transcript (``(speaker, text)``), the problems (none: success), the
    warnings (answers by other actions than the script expects: a weak model, not a failure),
    the bundles and the process ids of the two servers (stopped by the time it is returned)."""

    transcript: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bundles: dict[str, Path] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# ---- finding and exporting the models ------------------------------------------------------------
def outputs_dir() -> Path:
    """Where training runs go (``paths.log_dir``: ``DIALAB_OUTPUTS``, else ``outputs/``)."""
    return Path(os.environ.get("DIALAB_OUTPUTS") or REPO_ROOT / "outputs")


def latest_run(task_name: str, outputs: Path | None = None) -> Path:
    """The newest ``<outputs>/<task_name>/runs/<timestamp>/`` that has ``checkpoints/last.ckpt``."""
    runs_dir = (outputs or outputs_dir()) / task_name / "runs"
    runs = sorted(p for p in runs_dir.glob("*") if (p / "checkpoints" / "last.ckpt").is_file()) \
        if runs_dir.is_dir() else []
    if not runs:
        raise DemoError(f"no finished {task_name} run under {runs_dir} (no "
                        "runs/<timestamp>/checkpoints/last.ckpt); train one with `python -m "
                        f"experiments.train experiment={task_name}` or name a run folder")
    return runs[-1]


def resolve_bundle(source: Path, out: Path, print_fn: Callable[[str], None] = print,
                   onnx: bool = False) -> Path:
    """An export bundle for ``source``: a bundle folder (``manifest.json``) as it is, a
    checkpoint file or a run folder (``checkpoints/last.ckpt``) exported to ``out`` (with
    ``onnx``, a DIET bundle also gets its ONNX graphs, float and int8)."""
    source = Path(source)
    if (source / "manifest.json").is_file():
        return source
    checkpoint = source if source.is_file() else source / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise DemoError(f"{source} is neither an export bundle, a checkpoint nor a run folder "
                        "with checkpoints/last.ckpt")
    from omegaconf import OmegaConf

    from experiments.export import export

    print_fn(f"exporting {checkpoint}")
    try:
        return export(OmegaConf.create({"ckpt_path": str(checkpoint), "out": str(out),
                                        "metrics": "auto", "onnx": onnx, "int8": onnx}))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise DemoError(f"could not export {checkpoint}: {type(err).__name__}: {err}") from err


# ---- the two servers -----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A server subprocess with its output in ``log``; ``env`` adds to the environment, ``cwd``
    (default the repository) is where it runs."""

    def __init__(self, name: str, command: list[str], port: int, log: Path,
                 env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> None:
        self.name, self.command, self.port, self.log = name, command, port, log
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=cwd, env=env)

    def wait_healthy(self, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                raise DemoError(f"the {self.name} exited with code {code} before it was ready; "
                                f"its log ({self.log}):\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise DemoError(f"the {self.name} did not answer {self.url}/health within "
                                f"{timeout_s:.0f} s; its log ({self.log}):\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:]) or "    (empty)"


# ---- the conversation ----------------------------------------------------------------------------
class Conversation:
    """Sends steps to the server's REST webhook and records the transcript."""

    def __init__(self, url: str, result: DemoResult, print_fn: Callable[[str], None],
                 timeout_s: float = 60.0) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=timeout_s)
        self.result, self.print = result, print_fn

    def close(self) -> None:
        self.client.close()

    def say(self, step: Step, payload_because: str | None = None, optional: bool = False
            ) -> list[dict[str, Any]]:
        """Send ``step`` (its text, or its payload if the model misreads the text or
        ``payload_because`` says why); print and return the bot's messages. No answer is a
        problem, or with ``optional`` a warning."""
        message, note = step.text, None
        if payload_because:
            message, note = step.payload, f"sent the payload: {payload_because}"
        else:
            problem = self._misread(step)
            if problem and step.payload:
                message, note = step.payload, f"sent the payload: {step.text!r} {problem}"
            elif problem:
                note = f"{problem}"
        self._record("user", message)
        if note:
            self.print(f"      ({note})")
        response = self.client.post("/webhooks/rest/webhook",
                                    json={"sender": SENDER, "message": message})
        if response.status_code != 200:
            self.result.problems.append(f"the server answered {response.status_code} to "
                                        f"{message!r}: {response.text[:300]}")
            self._record("bot", f"[error {response.status_code}]")
            return []
        messages = response.json()
        for bot in messages:
            self._record("bot", _message_text(bot))
        if not messages:
            (self.result.warnings if optional else self.result.problems).append(
                f"the bot did not answer {message!r}")
            self._record("bot", "[no answer]")
        return messages

    def tracker(self) -> dict[str, Any]:
        response = self.client.get(f"/conversations/{SENDER}/tracker",
                                   params={"include_events": "NONE"})
        response.raise_for_status()
        return response.json()

    def actions_since_user(self) -> list[str]:
        """The actions that ran since the latest user message (``action_listen`` left out)."""
        response = self.client.get(f"/conversations/{SENDER}/tracker")
        response.raise_for_status()
        actions: list[str] = []
        for event in response.json().get("events") or []:
            if event.get("event") == "user":
                actions = []
            elif event.get("event") == "action" and event.get("name") != "action_listen":
                actions.append(str(event.get("name")))
        return actions

    def _misread(self, step: Step) -> str | None:
        """Why the model's parse of ``step.text`` is not what the step means, or None."""
        response = self.client.post("/model/parse", json={"text": step.text})
        if response.status_code != 200:
            return f"could not be parsed ({response.status_code})"
        parsed = response.json()
        intent = (parsed.get("intent") or {}).get("name")
        got = sorted((str(e.get("entity")), str(e.get("value")).casefold())
                     for e in parsed.get("entities") or [])
        want = sorted((name, value.casefold()) for name, value in step.entities)
        if intent != step.intent or got != want:
            shown = ", ".join(f"{n}={v}" for n, v in got) or "no entities"
            return f"was parsed as {intent} with {shown}"
        return None

    def _record(self, speaker: str, text: str) -> None:
        self.result.transcript.append((speaker, text))
        self.print(f"{speaker}: {'' if speaker == 'user' else ' '}{text}")


def hold_conversation(conversation: Conversation, result: DemoResult) -> None:
    """The scripted conversation (see the module docstring); problems go to ``result``."""
    for step in OPENING:
        conversation.say(step)
    asked: set[str] = set()
    for _ in range(2 * len(FORM_ANSWERS)):
        state = conversation.tracker()
        if (state.get("active_loop") or {}).get("name") != FORM:
            break
        slot = (state.get("slots") or {}).get("requested_slot")
        if slot not in FORM_ANSWERS:
            result.problems.append(f"the form asks for {slot!r}, which the script cannot answer")
            break
        conversation.say(FORM_ANSWERS[slot], f"the form asked for {slot} again"
                         if slot in asked else None)
        asked.add(slot)
    state = conversation.tracker()
    slots = state.get("slots") or {}
    if (state.get("active_loop") or {}).get("name") == FORM:
        result.problems.append(f"the pizza order form did not finish (still asking for "
                               f"{slots.get('requested_slot')!r})")
    elif not asked:
        result.problems.append("the pizza order form never started")
    elif not slots.get("order_id"):
        result.problems.append("the form finished but no order was placed (no order_id)")
    for step in WEATHER:
        conversation.say(step)
        actions = conversation.actions_since_user()
        if "action_get_weather" not in actions:
            ran = ", ".join(actions) or "no action"
            result.warnings.append(f"{step.text!r} was answered by {ran}, not "
                                   "action_get_weather")
    conversation.say(FAQ, optional=True)  # a weak model may not answer: not a failure
    actions = conversation.actions_since_user()
    if "utter_faq" not in actions:
        result.warnings.append(f"{FAQ.text!r} was answered by {', '.join(actions) or 'no action'}"
                               ", not utter_faq")


def run_demo(nlu_run: Path | None = None, policy_run: Path | None = None,
             out: Path | None = None, outputs: Path | None = None,
             startup_timeout_s: float = 180.0, stream: TextIO | None = None) -> DemoResult:
    """Export, serve, talk, stop (see the module docstring). Raises :class:`DemoError` when the
    demo cannot be set up; conversation problems are in the result's ``problems``."""
    def say(line: str) -> None:
        print(line, file=stream or sys.stdout, flush=True)

    result = DemoResult()
    nlu_source = Path(nlu_run) if nlu_run else latest_run("diet_demo", outputs)
    policy_source = Path(policy_run) if policy_run else latest_run("ted_demo", outputs)
    with tempfile.TemporaryDirectory(prefix="dialab-demo-") as tmp:
        work = Path(out) if out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result.bundles = {"nlu": resolve_bundle(nlu_source, work / "nlu_bundle", say),
                          "policy": resolve_bundle(policy_source, work / "policy_bundle", say)}
        services: list[Service] = []
        try:
            port = free_port()
            actions = Service("action server", [sys.executable, str(ACTIONS_SCRIPT), "--port",
                                                str(port)], port, work / "action_server.log")
            services.append(actions)
            result.pids.append(actions.process.pid)
            port = free_port()
            server = Service("dialab server", [
                sys.executable, "-m", "serving", "--nlu", str(result.bundles["nlu"]),
                "--policy", str(result.bundles["policy"]), "--port", str(port),
                "--action-endpoint", f"{actions.url}/webhook", "--tracker-store", "memory://",
                "--log-level", "warning"], port, work / "server.log")
            services.append(server)
            result.pids.append(server.process.pid)
            say(f"starting the action server ({actions.url}) and the dialab server "
                f"({server.url})...")
            for service in services:
                service.wait_healthy(startup_timeout_s)
            say("")
            conversation = Conversation(server.url, result, say)
            try:
                hold_conversation(conversation, result)
            except Exception as err:  # a dropped connection, a bad answer: say what and where
                result.problems.append(f"the conversation broke off: {type(err).__name__}: {err}")
            finally:
                conversation.close()
            if result.problems:
                for service in services:
                    say(f"\nthe {service.name}'s log ({service.log}):\n{service.log_tail()}")
        finally:
            for service in reversed(services):
                service.stop()
        if not out:  # the bundles lived in the temporary folder
            result.bundles = {}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.demo_conversation",
                                     description="Export the demo bot's latest runs, serve "
                                     "them with its action server, hold a scripted conversation "
                                     "and print it.")
    parser.add_argument("--nlu-run", type=Path, help="a diet_demo run folder, checkpoint or "
                        "nlu bundle (default: the latest outputs/diet_demo/runs/*)")
    parser.add_argument("--policy-run", type=Path, help="a ted_demo run folder, checkpoint or "
                        "policy bundle (default: the latest outputs/ted_demo/runs/*)")
    parser.add_argument("--out", type=Path, help="keep the bundles and the servers' logs here "
                        "(default: a temporary folder)")
    parser.add_argument("--startup-timeout", type=float, default=180.0,
                        help="seconds to wait for each server's /health (default 180)")
    args = parser.parse_args(argv)
    try:
        result = run_demo(args.nlu_run, args.policy_run, args.out,
                          startup_timeout_s=args.startup_timeout)
    except DemoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not result.ok:
        print("\nthe demo conversation went wrong:", file=sys.stderr)
        for problem in result.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("\nthe demo conversation went through; both servers are stopped.")
    return 0


def _message_text(message: dict[str, Any]) -> str:
    text = message.get("text") or ""
    buttons = message.get("buttons") or []
    if buttons:
        text += "  [" + " | ".join(str(b.get("title")) for b in buttons) + "]"
    for key in ("image", "custom", "attachment"):
        if message.get(key):
            text += f"  ({key}: {json.dumps(message[key])[:80]})"
    return text or json.dumps(message)[:200]


if __name__ == "__main__":
    sys.exit(main())
