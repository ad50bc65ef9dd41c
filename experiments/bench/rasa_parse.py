"""Parse texts with a trained Rasa model; run with the *Rasa* venv's python (Rasa 3.6):

    $RASA_VENV/bin/python experiments/bench/rasa_parse.py MODEL.tar.gz TEXTS.json OUT.json

TEXTS.json is a JSON list of strings; OUT.json gets Rasa's parse result for each, so dialab's
own evaluation code scores Rasa's predictions exactly as it scores dialab's."""
import asyncio
import json
import sys


async def main(model: str, texts_file: str, out_file: str) -> None:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    texts = json.load(open(texts_file))
    results = []
    for text in texts:
        parsed = await agent.parse_message(text)
        results.append({"text": parsed.get("text", text), "intent": parsed.get("intent"),
                         "intent_ranking": parsed.get("intent_ranking", []),
                         "entities": parsed.get("entities", [])})
    json.dump(results, open(out_file, "w"))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
