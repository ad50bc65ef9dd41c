"""``dialab shell --nlu BUNDLE --policy BUNDLE``: chat with the bot in a terminal (Rasa's
``rasa shell``). Type a message; the bot's messages are printed, buttons numbered: type a
button's number to send its payload. ``/quit`` (or ``/stop``, or end of input) stops."""
from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from serving.agent import Agent, channel_messages

__all__ = ["run_shell", "main", "QUIT_COMMANDS"]

QUIT_COMMANDS = ("/quit", "/stop", "/exit")


def run_shell(agent: Agent, sender_id: str = "shell", stdin: TextIO | None = None,
              stdout: TextIO | None = None) -> int:
    """Read lines from ``stdin`` until ``/quit``; print the bot's answers to ``stdout``."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    print(f"Bot loaded. Type a message and press enter ({QUIT_COMMANDS[0]} to stop).",
          file=stdout, flush=True)
    buttons: list[dict[str, Any]] = []
    for line in stdin:
        text = line.strip()
        if not text:
            continue
        if text in QUIT_COMMANDS:
            break
        if text.isdigit() and 1 <= int(text) <= len(buttons):
            text = str(buttons[int(text) - 1].get("payload", text))
        try:
            messages = channel_messages(sender_id, agent.handle_text(
                sender_id, text, input_channel="cmdline"))
        except Exception as err:  # an action server that is down must not end the chat
            print(f"error: {err}", file=stdout, flush=True)
            continue
        buttons = []
        for message in messages:
            _print_message(message, len(buttons), stdout)
            buttons += message.get("buttons") or []
    print("Bye.", file=stdout, flush=True)
    return 0


def _print_message(message: dict[str, Any], numbered: int, stdout: TextIO) -> None:
    if message.get("text"):
        print(f"bot: {message['text']}", file=stdout)
    for i, button in enumerate(message.get("buttons") or [], start=numbered + 1):
        print(f"  {i}: {button.get('title')} ({button.get('payload')})", file=stdout)
    for key in ("image", "custom", "attachment"):
        if message.get(key):
            print(f"bot ({key}): {message[key]}", file=stdout)
    stdout.flush()


def main(args: argparse.Namespace, stdin: TextIO | None = None,
         stdout: TextIO | None = None) -> int:
    """``dialab shell``: ``args`` has nlu, policy, action_endpoint, tracker_store, sender
    (parsed in :mod:`dialogue_models.cli`)."""
    agent = Agent.load(args.nlu, args.policy, args.tracker_store, args.action_endpoint)
    return run_shell(agent, args.sender, stdin, stdout)
