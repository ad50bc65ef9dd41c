"""Fine-tuning with a grown label set (``init_from=``): train the tiny twin, add an intent (and,
for TED, an action), check the weight copy itself — the old labels score exactly as before —
then fine-tune through the real entry point."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from dialogue_models.ted.encoding import collate as collate_dialogues
from dialogue_models.ted.encoding import encode_examples as encode_dialogues
from dialogue_models.ted.growth import grow_ted
from dialogue_models.ted.growth import load_trained as load_ted
from dialogue_models.ted.model import TEDConfig, TEDModel
from experiments.train import build_datamodule, train
from nlu_models.data.schema import Message
from nlu_models.diet.encoding import EncodedExample, collate
from nlu_models.diet.growth import grow_diet, load_trained
from nlu_models.diet.lit_module import DIETLitModule
from nlu_models.export import export_nlu_bundle
from nlu_models.inference import NLUInterpreter
from tests.conftest import DEMO_BOT
from tests.entry_points.conftest import compose_config

QUIET = ["evaluate=false", "trainer.enable_progress_bar=false", "callbacks.model_summary=null"]
NEW_INTENT = """- intent: ask_price
  examples: |
    - how much is a pizza
    - what does a large pepperoni cost
    - how much do you charge for delivery
    - what are your prices
    - is the margherita expensive
    - price of a medium pizza please
"""


def with_new_intent(nlu_file: Path, out: Path) -> Path:
    """The NLU file with ``ask_price`` first (the tiny twin keeps the first examples only)."""
    out.write_text(nlu_file.read_text().replace("nlu:\n", "nlu:\n" + NEW_INTENT, 1))
    return out


# ---- DIET ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def old_diet(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("diet_old")
    train(compose_config("train", ["experiment=diet_tiny", *QUIET], out))
    return out / "checkpoints" / "last.ckpt"


def diet_config(tmp_path: Path, init_from: Path, *overrides: str):
    nlu = with_new_intent(DEMO_BOT / "data" / "nlu.yml", tmp_path / "nlu.yml")
    return compose_config("train", ["experiment=diet_tiny", *QUIET, f"data.train.path={nlu}",
                                    f"init_from={init_from}", *overrides], tmp_path / "run")


def intent_similarities(model, pipeline, texts: list[str]) -> torch.Tensor:
    """(texts, intents) similarities of sentence and label embeddings, dropout off."""
    examples = [EncodedExample(Message(t), f, -1, {})
                for t, f in zip(texts, pipeline.transform_many(texts))]
    batch = collate(examples)
    model.eval()
    with torch.no_grad():
        hidden = model.encode(batch)["hidden"]
        return model.sentence_embedding(hidden, batch.lengths) @ model.label_embeddings().T


def grown_diet(cfg, old):
    datamodule = build_datamodule(cfg.data).prepare(old.pipeline, old.labels, extend=True)
    module = DIETLitModule.for_data(datamodule, model=OmegaConf.to_container(cfg.model.config),
                                    **OmegaConf.to_container(cfg.model.training))
    return datamodule, module


def test_grown_diet_scores_the_old_intents_exactly_as_before(old_diet, tmp_path):
    bundle = export_nlu_bundle(old_diet, tmp_path / "bundle")   # init_from takes bundles too
    old = load_trained(bundle)
    datamodule, module = grown_diet(diet_config(tmp_path, bundle), old)
    grown = grow_diet(old, module.model, datamodule.pipeline, datamodule.labels)

    assert datamodule.labels.intents == old.labels.intents + ["ask_price"]
    assert "(+ask_price)" in grown
    old_data = build_datamodule(compose_config("train", ["experiment=diet_tiny"]).data).prepare()
    texts = [m.text for m in old_data.data["train"].examples[:24]]  # what the old model saw
    before = intent_similarities(old.model, old.pipeline, texts)
    after = intent_similarities(module.model, datamodule.pipeline, texts)
    assert after.shape == (len(texts), before.shape[1] + 1)
    torch.testing.assert_close(after[:, :-1], before, rtol=0, atol=1e-6)
    assert after[:, :-1].argmax(-1).tolist() == before.argmax(-1).tolist()


def test_fine_tuning_from_a_checkpoint_starts_fresh_with_the_grown_labels(old_diet, tmp_path):
    cfg = diet_config(tmp_path, old_diet, "trainer.max_epochs=2")
    metrics = train(cfg)
    assert "train/loss" in metrics
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 1  # epochs 0 and 1: fine-tuning, not resuming
    old, tuned = NLUInterpreter.load(old_diet), NLUInterpreter.load(tmp_path / "run" / "checkpoints"
                                                                    / "last.ckpt")
    assert tuned.labels.intents == old.labels.intents + ["ask_price"]
    tuned.pipeline.column_maps(old.pipeline)  # the old vocabulary is a prefix of the new one
    assert tuned.parse("how much is a pizza")["intent"]["name"] in tuned.labels.intents


def test_a_different_architecture_or_a_resume_is_refused(old_diet, tmp_path):
    cfg = diet_config(tmp_path, old_diet, "model.config.transformer_size=16")
    old = load_trained(old_diet)
    datamodule, module = grown_diet(cfg, old)
    with pytest.raises(ValueError, match=r"transformer_size: 32 → 16"):
        grow_diet(old, module.model, datamodule.pipeline, datamodule.labels)
    with pytest.raises(ValueError, match="exclude each other"):
        train(diet_config(tmp_path, old_diet, f"ckpt_path={old_diet}"))


# ---- TED -------------------------------------------------------------------------------------
def bot_with_new_intent_and_action(out: Path) -> Path:
    shutil.copytree(DEMO_BOT, out)
    domain = (out / "domain.yml").read_text()
    domain = domain.replace("  - out_of_scope\n", "  - out_of_scope\n  - ask_price\n", 1)
    domain = domain.replace("responses:\n", 'responses:\n  utter_price:\n'
                            '    - text: "A large pizza is 12 euros."\n', 1)
    (out / "domain.yml").write_text(domain)
    with open(out / "data" / "stories.yml", "a") as stories:
        stories.write("\n- story: asking for prices\n  steps:\n  - intent: greet\n"
                      "  - action: utter_greet\n  - action: utter_intro\n"
                      "  - intent: ask_price\n  - action: utter_price\n")
    with_new_intent(out / "data" / "nlu.yml", out / "data" / "nlu.yml")
    return out


def test_ted_grows_its_actions_and_fine_tunes(tmp_path):
    tiny = ["experiment=ted_tiny", *QUIET, "trainer.max_epochs=1", "data.augmentation_factor=0"]
    train(compose_config("train", tiny, tmp_path / "old"))
    checkpoint = tmp_path / "old" / "checkpoints" / "last.ckpt"
    bot = bot_with_new_intent_and_action(tmp_path / "bot")
    cfg = compose_config("train", [*tiny, f"data.train={bot}", f"init_from={checkpoint}"],
                         tmp_path / "new")

    old = load_ted(checkpoint)
    datamodule = build_datamodule(cfg.data).prepare(extend=old.space)
    space = datamodule.space
    assert space.actions == old.space.actions + ["utter_price"]
    assert space.intents == old.space.intents + ["ask_price"]
    model = TEDModel(TEDConfig.from_dict({**old.model.config.to_dict(),
                                          **datamodule.model_config()}))
    assert "(+utter_price)" in grow_ted(old, model, datamodule.featurizer)
    examples = [e for e in datamodule.examples
                if "ask_price" not in str(e.states) and "utter_price" not in e.labels][:32]
    before = old.model.eval().predict(
        collate_dialogues(encode_dialogues(examples, old.featurizer), "max_history"))
    after = model.eval().predict(
        collate_dialogues(encode_dialogues(examples, datamodule.featurizer), "max_history"))
    n = len(old.space.actions)
    torch.testing.assert_close(after.similarities[:, :n], before.similarities, rtol=0, atol=1e-6)

    train(cfg)
    tuned = load_ted(tmp_path / "new" / "checkpoints" / "last.ckpt")
    assert tuned.space.actions == space.actions
