"""DIET fine-tuning its dense encoder (all-MiniLM-L6-v2): the encoder learns and the frozen path
stays as it was, both paths compute the same features, the checkpoint holds the tuned encoder,
and padding does not change predictions."""
from __future__ import annotations


import pytest

from tests.conftest import MINILM, require_minilm  # noqa: E402

require_minilm()
import torch  # noqa: E402

import lightning as L  # noqa: E402

from nlu_models.data.loading import load_nlu  # noqa: E402
from nlu_models.data.schema import Message, NLUData  # noqa: E402
from nlu_models.diet.datamodule import NLUDataModule  # noqa: E402
from nlu_models.diet.encoding import collate_fn  # noqa: E402
from nlu_models.diet.lit_module import DIETLitModule  # noqa: E402
from nlu_models.diet.model import DIETModel  # noqa: E402
from nlu_models.inference import NLUInterpreter  # noqa: E402
from tests.conftest import DEMO_BOT  # noqa: E402

MODEL = MINILM
FEATURIZERS = [{"name": "CountVectorsFeaturizer", "analyzer": "word"},
               {"name": "LanguageModelFeaturizer", "model_name_or_path": MODEL,
                "sentence_pooling": "mean"}]
TINY_MODEL = dict(transformer_size=16, number_of_transformer_layers=1,
                  number_of_attention_heads=2, dense_dimension_text=16,
                  concat_dimension_text=16, embedding_dimension=8, dense_dimension_label=8,
                  number_of_negative_examples=2, drop_rate=0.0)
INTENTS = ("order_pizza", "ask_weather", "greet", "goodbye")
TEXTS = ["hi", "a large margherita with extra jalapeños please", "weather in Berlin tomorrow",
         "bye", "order AB1234 to Pizzeria Margheritaville"]


@pytest.fixture(scope="module")
def data() -> NLUData:
    """Two demo-bot examples of each of four intents (pizza orders carry entities)."""
    nlu = load_nlu(DEMO_BOT / "data" / "nlu.yml")
    examples = [m for intent in INTENTS for m in
                [e for e in nlu.examples if e.intent == intent and len(e.text) < 50][:2]]
    return NLUData(examples=examples)


def datamodule(data: NLUData, finetune: bool) -> NLUDataModule:
    return NLUDataModule(data, featurizers=FEATURIZERS, batch_size=[4, 4],
                         batch_strategy="sequence", finetune_encoder=finetune,
                         show_progress=False).prepare()


@pytest.fixture(scope="module")
def finetune_dm(data) -> NLUDataModule:
    return datamodule(data, finetune=True)


@pytest.fixture(scope="module")
def frozen_dm(data) -> NLUDataModule:
    return datamodule(data, finetune=False)


def finetuned(dm: NLUDataModule, **training) -> DIETLitModule:
    torch.manual_seed(0)
    return DIETLitModule.for_data(dm, {**TINY_MODEL, "finetune_encoder": True}, **training)


def test_finetuning_trains_the_encoder_with_its_own_learning_rate(finetune_dm):
    # the frozen encoder never ran over the data: no vectors precomputed, no weights loaded
    assert all(e.features.seq_dense is None for e in finetune_dm.encoded["train"])
    assert finetune_dm.pipeline.dense._encoder is None
    module = finetuned(finetune_dm, learning_rate=1e-2)
    model = module.model
    assert model.word_encoder is not None and model.config.encoder_sentence_pooling == "mean"
    assert model.word_encoder.model.training  # trains with dropout, like the rest of DIET
    batch = next(iter(finetune_dm.train_dataloader()))
    assert batch.seq_dense is None
    assert batch.encoder_input_ids.shape == batch.encoder_word_index.shape  # (B, S)
    encoder = model.encoder_parameters()
    assert {id(p) for p in encoder}.isdisjoint(id(p) for p in model.regularized_parameters())
    optimizer = module.configure_optimizers()
    assert [g["lr"] for g in optimizer.param_groups] == [1e-2, 2e-5]
    assert len(optimizer.param_groups[1]["params"]) == len(encoder)
    before = [p.detach().clone() for p in encoder]

    model.train()
    model(batch).loss.backward()
    module.on_after_backward()  # Rasa's L2: must leave the encoder's gradients alone
    missing = [n for n, p in model.word_encoder.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing}"
    assert model.word_encoder.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    optimizer.step()
    changed = sum(not torch.equal(b, p) for b, p in zip(before, encoder))
    assert changed == len(encoder)


def test_frozen_encoder_stays_out_of_the_model(frozen_dm):
    module = DIETLitModule.for_data(frozen_dm, TINY_MODEL)
    model = module.model
    assert model.word_encoder is None and model.encoder_parameters() == []
    assert not any(name.startswith("word_encoder") for name in model.state_dict())
    batch = next(iter(frozen_dm.train_dataloader()))
    assert batch.seq_dense.shape[-1] == 384 and batch.encoder_input_ids is None
    assert len(module.configure_optimizers().param_groups) == 1
    with pytest.raises(ValueError, match="finetune_encoder"):
        DIETLitModule.for_data(frozen_dm, {**TINY_MODEL, "finetune_encoder": True})


def test_finetuned_and_frozen_paths_compute_the_same_features(finetune_dm, frozen_dm):
    torch.manual_seed(0)
    frozen = DIETLitModule.for_data(frozen_dm, TINY_MODEL).model.eval()
    tuned = DIETModel(finetuned(finetune_dm).model.config)
    missing, unexpected = tuned.load_state_dict(frozen.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("word_encoder.") for k in missing)
    tuned.eval()
    frozen_batch = collate_fn(frozen_dm.pipeline)(frozen_dm.encoded["train"])
    tuned_batch = collate_fn(finetune_dm.pipeline, True)(finetune_dm.encoded["train"])
    words, sentence = tuned.dense_features(tuned_batch)
    mask = frozen_batch.mask.unsqueeze(-1)
    torch.testing.assert_close(words * mask, frozen_batch.seq_dense, atol=1e-4, rtol=0)
    torch.testing.assert_close(sentence, frozen_batch.sent_dense, atol=1e-4, rtol=0)
    a, b = frozen.predict(frozen_batch), tuned.predict(tuned_batch)
    torch.testing.assert_close(b.intent_confidences, a.intent_confidences, atol=1e-4, rtol=0)
    assert torch.equal(b.tags["entity"], a.tags["entity"])
    torch.testing.assert_close(b.tag_confidences["entity"], a.tag_confidences["entity"],
                               atol=1e-4, rtol=0)


def same_parses(a: list[dict], b: list[dict]) -> None:
    """Same intents, ranking and entity spans; confidences within 1e-4."""
    for x, y in zip(a, b, strict=True):
        assert [r["name"] for r in x["intent_ranking"]] == [r["name"] for r in y["intent_ranking"]]
        assert [r["confidence"] for r in x["intent_ranking"]] == pytest.approx(
            [r["confidence"] for r in y["intent_ranking"]], abs=1e-4)
        assert [(e["start"], e["end"], e["entity"]) for e in x["entities"]] == \
            [(e["start"], e["end"], e["entity"]) for e in y["entities"]], x["text"]
        assert [e["confidence_entity"] for e in x["entities"]] == pytest.approx(
            [e["confidence_entity"] for e in y["entities"]], abs=1e-4)


def last_layer_weight(model: DIETModel) -> torch.Tensor:
    return model.word_encoder.model.encoder.layer[-1].output.dense.weight


def test_checkpoint_holds_the_finetuned_encoder(finetune_dm, tmp_path):
    module = finetuned(finetune_dm, learning_rate=1e-2, encoder_learning_rate=1e-3)
    pretrained = last_layer_weight(module.model).detach().clone()
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(module, datamodule=finetune_dm)
    assert not torch.equal(last_layer_weight(module.model), pretrained)  # the encoder trained
    path = tmp_path / "finetuned.ckpt"
    trainer.save_checkpoint(path)

    loaded = NLUInterpreter.load(path)
    assert torch.equal(last_layer_weight(loaded.model), last_layer_weight(module.model))
    same_parses(loaded.parse(TEXTS), module.interpreter().parse(TEXTS))


def test_padding_does_not_change_finetuned_predictions(finetune_dm):
    module = finetuned(finetune_dm)
    batched = NLUInterpreter(module.model, finetune_dm.pipeline, module.labels, batch_size=64)
    alone = NLUInterpreter(module.model, finetune_dm.pipeline, module.labels, batch_size=1)
    messages = [Message(t) for t in TEXTS]
    same_parses(batched.parse_messages(messages), alone.parse_messages(messages))
