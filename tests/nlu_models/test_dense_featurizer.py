"""The frozen all-MiniLM-L6-v2 featurizer: word pooling, sentence pooling, batching, export."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import MINILM, require_minilm  # noqa: E402

require_minilm()
import torch  # noqa: E402

from nlu_models.featurize import FeaturizerPipeline  # noqa: E402
from nlu_models.featurize.dense import HFDenseFeaturizer, HFWordEncoder  # noqa: E402

MODEL = MINILM
TEXTS = ["Book a table at Pizzeria Margheritaville for 4 people",
         "weather in Berlin tomorrow?", "hi", "", "order AB1234 with extra jalapeños"]


@pytest.fixture(scope="module")
def featurizer() -> HFDenseFeaturizer:
    return HFDenseFeaturizer(MODEL)


@pytest.fixture(scope="module")
def pipeline(featurizer: HFDenseFeaturizer) -> FeaturizerPipeline:
    return FeaturizerPipeline(dense=featurizer).fit([])


def reference(featurizer: HFDenseFeaturizer, words: list[str]) -> tuple[np.ndarray, list]:
    """The last hidden states of one unpadded word list and each sub-token's word id."""
    encoder = featurizer.encoder
    encoded = encoder.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model(input_ids=encoded["input_ids"],
                               attention_mask=encoded["attention_mask"]).last_hidden_state[0]
    return hidden.numpy(), encoded.word_ids(0)


def test_word_vectors_are_means_of_their_sub_tokens(pipeline: FeaturizerPipeline,
                                                    featurizer: HFDenseFeaturizer) -> None:
    features = pipeline.transform(TEXTS[0])
    words = [t.text for t in features.tokens]
    assert pipeline.dense_dim == 384 and features.seq_dense.shape == (len(words), 384)
    assert features.sent_dense.shape == (384,) and features.seq_dense.dtype == np.float32
    hidden, word_ids = reference(featurizer, words)
    split = words.index("Margheritaville")
    positions = [s for s, w in enumerate(word_ids) if w == split]
    assert len(positions) > 1  # the point of the test: a word of several sub-tokens
    np.testing.assert_allclose(features.seq_dense[split], hidden[positions].mean(axis=0),
                               atol=1e-5)
    np.testing.assert_allclose(features.sent_dense, hidden[0], atol=1e-5)  # CLS position


def test_mean_sentence_pooling_and_truncation(featurizer: HFDenseFeaturizer) -> None:
    words = TEXTS[1].replace("?", "").split()
    hidden, _ = reference(featurizer, words)
    (_, sentence), = HFDenseFeaturizer(MODEL, sentence_pooling="mean").encode([words])
    np.testing.assert_allclose(sentence, hidden.mean(axis=0), atol=1e-5)  # all sub-tokens
    short = HFDenseFeaturizer(MODEL, max_length=4)  # [CLS] + 2 sub-tokens + [SEP]
    short._encoder = featurizer.encoder  # same frozen weights; truncation is the featurizer's
    (vectors, _), = short.encode([words])
    assert vectors.shape == (len(words), 384)
    assert np.abs(vectors[:2]).sum(axis=1).min() > 0 and not vectors[2:].any()


def test_word_encoder_forward_equals_featurizer(featurizer: HFDenseFeaturizer) -> None:
    encoder = HFWordEncoder(MODEL).eval()
    word_lists = [t.split() for t in TEXTS]
    inputs = encoder.encode_inputs(word_lists, max_length=512)
    assert inputs["word_index"].shape == inputs["input_ids"].shape
    assert inputs["word_index"][0, 0] == -1  # [CLS] belongs to no word
    words, sentence = encoder(**inputs, num_words=max(map(len, word_lists)))
    for i, (vectors, sentence_vector) in enumerate(featurizer.encode(word_lists)):
        np.testing.assert_allclose(words[i, :len(word_lists[i])].detach().numpy(), vectors,
                                   atol=1e-5)
        np.testing.assert_allclose(sentence[i].detach().numpy(), sentence_vector, atol=1e-5)
    (words.sum() + sentence.sum()).backward()  # trainable when a model owns it
    assert encoder.model.embeddings.word_embeddings.weight.grad is not None
    assert not any(p.requires_grad for p in featurizer.encoder.parameters())


def test_transform_many_equals_one_at_a_time(pipeline: FeaturizerPipeline) -> None:
    together = pipeline.transform_many(TEXTS, batch_size=3)
    for text, batched in zip(TEXTS, together):
        alone = pipeline.transform(text)
        assert [t.text for t in alone.tokens] == [t.text for t in batched.tokens]
        np.testing.assert_allclose(batched.seq_dense, alone.seq_dense, atol=1e-5)
        np.testing.assert_allclose(batched.sent_dense, alone.sent_dense, atol=1e-5)
    assert together[3].seq_dense.shape == (0, 384)  # empty text: no words, a sentence vector


def test_config_and_json_store_the_model_name_not_weights(pipeline: FeaturizerPipeline) -> None:
    configured = FeaturizerPipeline.from_config([
        {"name": "WhitespaceTokenizer"}, {"name": "CountVectorsFeaturizer"},
        {"name": "LanguageModelFeaturizer", "model_name": "bert", "model_weights": MODEL},
    ])
    assert configured.dense.model_name_or_path == MODEL and configured.dense._encoder is None
    document = json.dumps(pipeline.to_dict())
    assert len(document) < 2_000 and MODEL in document
    restored = FeaturizerPipeline.from_dict(json.loads(document))
    restored.dense._encoder = pipeline.dense.encoder  # skip a second load
    np.testing.assert_allclose(restored.transform(TEXTS[2]).sent_dense,
                               pipeline.transform(TEXTS[2]).sent_dense, atol=1e-6)
    with pytest.raises(ValueError, match="sentence_pooling"):
        HFDenseFeaturizer(MODEL, sentence_pooling="max")
