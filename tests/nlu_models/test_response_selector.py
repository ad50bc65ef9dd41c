"""Response selection (Rasa's ResponseSelector): DIET learns the collapsed retrieval intent, a
selector beside it learns the response keys, and every path that parses — the module, a
checkpoint, a bundle with torch, with ONNX and int8 — returns Rasa's ``response_selector``."""
from __future__ import annotations

import lightning as L
import pytest

from nlu_models.data.schema import Message, NLUData
from nlu_models.diet.datamodule import NLUDataModule
from nlu_models.diet.labels import DIETLabels
from nlu_models.diet.lit_module import DIETLitModule
from nlu_models.diet.model import DIETConfig
from nlu_models.diet.response_selector import (RESPONSE_SELECTOR_DEFAULTS, selector_config,
                                               selector_inputs)
from nlu_models.export import SELECTOR_CONFIG, export_nlu_bundle
from nlu_models.inference import NLUInterpreter
from nlu_models.onnx_runtime import OnnxNLUInterpreter
from tests.nlu_models.test_diet_training import TINY_MODEL, tiny_trainer

TINY_SELECTOR = dict(hidden_layers_text=[32], hidden_layers_label=[32], dense_dimension_text=32,
                     dense_dimension_label=32, concat_dimension_text=32, embedding_dimension=8,
                     number_of_negative_examples=2, drop_rate=0.0)
EXAMPLES = {
    "greet": ["hello there", "hi bot", "good morning", "hey"],
    "order": ["a large pizza", "one small margherita", "two pepperoni pizzas", "a pizza please"],
    "faq/opening_hours": ["when are you open", "what are your opening hours",
                          "are you open on sunday", "until when are you open tonight"],
    "faq/delivery_area": ["do you deliver to my street", "which areas do you deliver to",
                          "can you deliver to the suburbs", "is my address in your area"],
    "faq/payment": ["can i pay by card", "do you take cash", "which payment methods work",
                    "can i pay with paypal"],
}
RESPONSES = {"utter_faq/opening_hours": [{"text": "We are open 11 to 23."}],
             "utter_faq/payment": [{"text": "Card or cash."}]}
DATA = NLUData(examples=[Message(t, i) for i, texts in EXAMPLES.items() for t in texts],
               responses=RESPONSES)


def test_labels_collapse_retrieval_intents_and_keep_the_keys():
    labels = DIETLabels.from_data(DATA)
    assert labels.intents == ["faq", "greet", "order"]
    assert labels.response_keys == ["faq/delivery_area", "faq/opening_hours", "faq/payment"]
    assert labels.retrieval_intents == ["faq"]
    assert labels.responses == RESPONSES   # only the keys with responses in the data
    assert labels.response_id(Message("x", "faq/payment")) == 2
    assert labels.response_id(Message("x", "greet")) == -1
    restored = DIETLabels.from_dict(labels.to_dict())
    assert restored == labels
    # labels written before response selection (no response keys) still load
    old = {k: v for k, v in labels.to_dict().items() if k not in ("response_keys", "responses")}
    assert DIETLabels.from_dict(old).response_keys == []


def test_selector_config_has_rasa_defaults_and_diet_inputs():
    diet = DIETConfig(seq_sparse_dim=50, sent_sparse_dim=70, num_intents=3)
    config = selector_config(diet, 4)
    for key, value in RESPONSE_SELECTOR_DEFAULTS.items():
        assert getattr(config, key) == value, key
    assert (config.seq_sparse_dim, config.sent_sparse_dim, config.num_intents) == (50, 70, 4)
    assert not config.entity_recognition and config.intent_classification
    assert selector_config(diet, 4, {"drop_rate": 0.1}).drop_rate == 0.1
    with pytest.raises(ValueError, match="cannot set entity_recognition"):
        selector_config(diet, 4, {"entity_recognition": True})


def fit(epochs: int = 40) -> tuple[DIETLitModule, L.Trainer]:
    L.seed_everything(3, workers=True)
    dm = NLUDataModule(DATA, val=DATA, batch_size=[8, 16], show_progress=False).prepare()
    module = DIETLitModule.for_data(dm, TINY_MODEL, response_selector=TINY_SELECTOR,
                                    learning_rate=0.01)
    trainer = tiny_trainer(epochs)
    trainer.fit(module, datamodule=dm)
    return module, trainer


@pytest.fixture(scope="module")
def fitted():
    return fit()


def test_diet_and_the_selector_learn_intents_and_response_keys(fitted):
    module, trainer = fitted
    assert trainer.callback_metrics["val/response_acc"] == 1.0
    assert trainer.callback_metrics["val/intent_acc"] == 1.0
    results = module.interpreter().parse_messages(DATA.examples)
    for gold, result in zip(DATA.examples, results):
        assert result["intent"]["name"] == gold.retrieval_intent, gold.text
        selected = result["response_selector"]["default"]["response"]
        assert selected["intent_response_key"] == gold.intent or not gold.response_key, gold.text
    faq = module.interpreter().parse("when do you open")
    selection = faq["response_selector"]
    assert selection["all_retrieval_intents"] == ["faq"]
    response = selection["default"]["response"]
    assert response["intent_response_key"] == "faq/opening_hours"
    assert response["utter_action"] == "utter_faq/opening_hours"
    assert response["responses"] == RESPONSES["utter_faq/opening_hours"]
    ranking = selection["default"]["ranking"]
    assert ranking[0]["confidence"] == response["confidence"]
    assert [r["confidence"] for r in ranking] == sorted((r["confidence"] for r in ranking),
                                                        reverse=True)
    # a key without responses in the NLU data: the domain's are used (None here)
    area = module.interpreter().parse("do you deliver to the harbour")
    assert area["response_selector"]["default"]["response"]["responses"] is None


def test_no_selector_without_retrieval_intents_or_when_turned_off():
    plain = NLUData(examples=[m for m in DATA.examples if not m.response_key])
    dm = NLUDataModule(plain, show_progress=False).prepare()
    assert DIETLitModule.for_data(dm, TINY_MODEL).response_selector is None
    dm = NLUDataModule(DATA, show_progress=False).prepare()
    module = DIETLitModule.for_data(dm, TINY_MODEL, response_selector=False)
    assert module.response_selector is None
    assert "response_selector" not in module.interpreter().parse("hello")


def test_checkpoints_and_bundles_carry_the_selector(fitted, tmp_path):
    module, trainer = fitted
    texts = ["when do you open", "can i pay by card", "hello", "deliver to my street?"]
    expected = module.interpreter().parse(texts)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    assert NLUInterpreter.load(ckpt).parse(texts) == expected
    bundle = export_nlu_bundle(ckpt, tmp_path / "bundle", onnx=True, int8=True)
    assert (bundle / SELECTOR_CONFIG).is_file()
    assert NLUInterpreter.load(bundle).parse(texts) == expected
    onnx = OnnxNLUInterpreter.load(bundle).parse(texts)
    int8 = OnnxNLUInterpreter.load(bundle, int8=True).parse(texts)
    for want, got, quantized in zip(expected, onnx, int8):
        want_sel = want["response_selector"]["default"]
        got_sel = got["response_selector"]["default"]
        assert got_sel["response"]["intent_response_key"] == \
            want_sel["response"]["intent_response_key"]
        assert got_sel["response"]["confidence"] == pytest.approx(
            want_sel["response"]["confidence"], abs=1e-4)
        assert quantized["response_selector"]["default"]["response"]["intent_response_key"] \
            == want_sel["response"]["intent_response_key"]


def test_rows_without_a_label_are_left_out_of_the_losses(fitted):
    module, _ = fitted
    plain = [m for m in DATA.examples if not m.response_key]
    dm = NLUDataModule(NLUData(examples=plain), show_progress=False)
    dm.prepare(module.pipeline, module.labels)
    batch = next(iter(dm.train_dataloader()))
    assert (batch.response_ids == -1).all() and not module._has_responses(batch)
    with pytest.raises(ValueError, match="no labels"):  # so training_step skips the selector
        module.response_selector(selector_inputs(module.model, batch, labelled=True))
    batch.intent_ids[:] = -1  # no intent anywhere: DIET has no intent loss either
    with pytest.raises(ValueError, match="no labels"):
        module.model(batch)
