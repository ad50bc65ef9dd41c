"""DIET learns: a tiny data set is fitted to 100%, and training is seeded and repeatable."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from nlu_models.data.schema import EntitySpan, Message, NLUData
from nlu_models.diet.datamodule import NLUDataModule
from nlu_models.diet.lit_module import DIETLitModule, strict_entity_f1

TINY_MODEL = dict(transformer_size=32, number_of_transformer_layers=1,
                  number_of_attention_heads=2, dense_dimension_text=32,
                  concat_dimension_text=32, embedding_dimension=8, dense_dimension_label=8,
                  number_of_negative_examples=3, drop_rate=0.0)


def annotated(text: str, intent: str, *entities: tuple[str, str, str | None]) -> Message:
    spans = []
    for surface, entity, role in entities:
        start = text.index(surface)
        spans.append(EntitySpan(start, start + len(surface), surface, entity, role))
    return Message(text, intent, spans)


TINY_DATA = NLUData(examples=[
    annotated("hello there", "greet"),
    annotated("hi bot", "greet"),
    annotated("good morning", "greet"),
    annotated("bye for now", "goodbye"),
    annotated("see you later", "goodbye"),
    annotated("goodbye bot", "goodbye"),
    annotated("a large pepperoni pizza", "order", ("large", "size", None),
              ("pepperoni", "topping", None)),
    annotated("one small margherita please", "order", ("small", "size", None),
              ("margherita", "topping", None)),
    annotated("fly from Berlin to Paris", "travel", ("Berlin", "city", "from"),
              ("Paris", "city", "to")),
    annotated("a flight from Rome to Oslo", "travel", ("Rome", "city", "from"),
              ("Oslo", "city", "to")),
    annotated("weather in New York", "weather", ("New York", "city", None)),
    annotated("is it raining in London", "weather", ("London", "city", None)),
])


def fit(seed: int, epochs: int = 60) -> tuple[DIETLitModule, NLUDataModule]:
    L.seed_everything(seed, workers=True)
    dm = NLUDataModule(TINY_DATA, batch_size=[6, 12], show_progress=False).prepare()
    module = DIETLitModule.for_data(dm, TINY_MODEL, learning_rate=0.01)
    tiny_trainer(epochs).fit(module, datamodule=dm)
    return module, dm


def tiny_trainer(epochs: int) -> L.Trainer:
    """A quiet, deterministic CPU trainer without checkpoints or logs."""
    return L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, reload_dataloaders_every_n_epochs=1,
                     deterministic=True)


@pytest.fixture(scope="module")
def fitted():
    return fit(seed=7)


def test_tiny_data_is_fitted_to_100_percent(fitted):
    module, _ = fitted
    results = module.interpreter().parse_messages(TINY_DATA.examples)
    for gold, result in zip(TINY_DATA.examples, results):
        assert result["intent"]["name"] == gold.intent, gold.text
        predicted = {(e["start"], e["end"], e["entity"], e.get("role")) for e in result["entities"]}
        expected = {(s.start, s.end, s.entity, s.role) for s in gold.entities}
        assert predicted == expected, gold.text
    assert module.labels.roles == ["from", "to"]


def test_training_is_seeded_and_repeatable(fitted):
    again, _ = fit(seed=7, epochs=60)
    first, _ = fitted
    a = first.interpreter().parse("a large pizza to Rome")
    b = again.interpreter().parse("a large pizza to Rome")
    assert a == b


@pytest.mark.parametrize("given", [None, 3])
def test_the_heap_is_trimmed_by_exactly_one_callback(given):
    """A plain trainer gets the module's ReleaseFreedMemory; a trainer that lists one (dialab's
    callbacks config) keeps it and gets no second."""
    from nlu_models.memory import ReleaseFreedMemory

    dm = NLUDataModule(TINY_DATA, batch_size=[6, 12], show_progress=False).prepare()
    module = DIETLitModule.for_data(dm, TINY_MODEL)
    callbacks = [] if given is None else [ReleaseFreedMemory(every_n_batches=given)]
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, callbacks=callbacks,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    trimmers = [c for c in trainer.callbacks if isinstance(c, ReleaseFreedMemory)]
    assert len(trimmers) == 1
    assert trimmers[0].every_n_batches == (given or 10)


def test_the_training_entry_point_imports_no_scikit_learn():
    """seqeval (validation's entity F1) imports scikit-learn, ~70 MB resident: a run loads it
    at its first validation, not with the modules that train."""
    code = ("import sys\nimport experiments.train\n"
            "print(sorted(m for m in ('seqeval', 'sklearn') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("scheme", ["BILOU", "BIO"])
def test_strict_entity_f1_scores_exact_spans_only(scheme):
    last, unit = ("L", "U") if scheme == "BILOU" else ("I", "B")
    gold = [["B-city", f"{last}-city", "O"], [f"{unit}-date", "O"]]
    assert strict_entity_f1(gold, gold, scheme) == 1.0
    cut = [["B-city", "O", "O"], [f"{unit}-date", "O"]]  # the city span cut short
    # BILOU: a B- without its L- is no entity (P 1/1, R 1/2); BIO: a wrong span (P 1/2, R 1/2)
    expected = {"BILOU": 2 / 3, "BIO": 1 / 2}[scheme]
    assert strict_entity_f1(gold, cut, scheme) == pytest.approx(expected)
