"""DIETModel invariants on synthetic batches: shapes per head, every parameter learns, padding
does not change predictions, the options build and run."""
from __future__ import annotations

import pytest
import torch

from nlu_models.diet.model import DIETConfig, DIETInputs, DIETModel, rank_intents

SEQ_VOCAB, SENT_VOCAB, DENSE = 40, 50, 6
N_INTENTS, N_ENTITY_TAGS, N_ROLE_TAGS, N_GROUP_TAGS = 4, 9, 5, 5


def tiny_config(**overrides) -> DIETConfig:
    values = dict(seq_sparse_dim=SEQ_VOCAB, sent_sparse_dim=SENT_VOCAB, num_intents=N_INTENTS,
                  num_entity_tags=N_ENTITY_TAGS, num_role_tags=N_ROLE_TAGS,
                  num_group_tags=N_GROUP_TAGS, transformer_size=16,
                  number_of_transformer_layers=2, number_of_attention_heads=2,
                  dense_dimension_text=12, concat_dimension_text=12, embedding_dimension=8,
                  dense_dimension_label=8, number_of_negative_examples=3)
    values.update(overrides)
    return DIETConfig(**values)


def random_example(length: int, gen: torch.Generator, dense: bool = False) -> dict:
    k = 3
    ex = {
        "seq_ids": torch.randint(1, SEQ_VOCAB + 1, (length, k), generator=gen),
        "seq_values": torch.rand(length, k, generator=gen) + 0.5,
        "sent_ids": torch.randint(1, SENT_VOCAB + 1, (k * 2,), generator=gen),
        "sent_values": torch.rand(k * 2, generator=gen) + 0.5,
        "intent": int(torch.randint(0, N_INTENTS, (1,), generator=gen)),
        "entity": torch.randint(0, N_ENTITY_TAGS, (length,), generator=gen),
        "role": torch.randint(0, N_ROLE_TAGS, (length,), generator=gen),
        "group": torch.randint(0, N_GROUP_TAGS, (length,), generator=gen),
    }
    if dense:
        ex["seq_dense"] = torch.randn(length, DENSE, generator=gen)
        ex["sent_dense"] = torch.randn(DENSE, generator=gen)
    return ex


def batch_of(examples: list[dict], pad_bag: int = 0) -> DIETInputs:
    """Pad examples into one batch; ``pad_bag`` adds extra all-padding feature slots."""
    b, t = len(examples), max(len(e["entity"]) for e in examples)
    k = examples[0]["seq_ids"].shape[1] + pad_bag
    k2 = examples[0]["sent_ids"].shape[0] + pad_bag
    x = DIETInputs(mask=torch.zeros(b, t, dtype=torch.bool),
                   seq_ids=torch.zeros(b, t, k, dtype=torch.long), seq_values=torch.zeros(b, t, k),
                   sent_ids=torch.zeros(b, k2, dtype=torch.long), sent_values=torch.zeros(b, k2),
                   intent_ids=torch.tensor([e["intent"] for e in examples]),
                   entity_tags=torch.zeros(b, t, dtype=torch.long),
                   role_tags=torch.zeros(b, t, dtype=torch.long),
                   group_tags=torch.zeros(b, t, dtype=torch.long))
    if "seq_dense" in examples[0]:
        x.seq_dense, x.sent_dense = torch.zeros(b, t, DENSE), torch.zeros(b, DENSE)
    for i, e in enumerate(examples):
        n = len(e["entity"])
        x.mask[i, :n] = True
        x.seq_ids[i, :n, :e["seq_ids"].shape[1]] = e["seq_ids"]
        x.seq_values[i, :n, :e["seq_values"].shape[1]] = e["seq_values"]
        x.sent_ids[i, :len(e["sent_ids"])] = e["sent_ids"]
        x.sent_values[i, :len(e["sent_values"])] = e["sent_values"]
        for head in ("entity", "role", "group"):
            getattr(x, f"{head}_tags")[i, :n] = e[head]
        if "seq_dense" in e:
            x.seq_dense[i, :n] = e["seq_dense"]
            x.sent_dense[i] = e["sent_dense"]
    return x


@pytest.fixture
def examples() -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    return [random_example(n, gen) for n in (5, 2, 7, 3)]


def test_shapes_per_head(examples):
    torch.manual_seed(0)
    model = DIETModel(tiny_config())
    x = batch_of(examples)
    encoded = model.encode(x)
    assert encoded["hidden"].shape == (4, 8, 16)          # T + 1 positions (sentence slot)
    assert encoded["mask"].sum(1).tolist() == [6, 3, 8, 4]
    out = model(x)
    assert set(out.losses) == {"intent", "entity", "role", "group"}
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    pred = model.eval().predict(x)
    assert pred.intent_confidences.shape == (4, N_INTENTS)
    assert torch.allclose(pred.intent_confidences.sum(-1), torch.ones(4), atol=1e-5)
    for head, size in (("entity", N_ENTITY_TAGS), ("role", N_ROLE_TAGS), ("group", N_GROUP_TAGS)):
        assert pred.tags[head].shape == (4, 7)
        assert int(pred.tags[head].max()) < size
        assert pred.tag_confidences[head].shape == (4, 7)
    assert model.label_embeddings().shape == (N_INTENTS, 8)


def test_tag_losses_on_packed_tokens_equal_the_padded_crf(examples):
    """Training scores the CRF heads on the real tokens only (packed time-major); the losses
    are the padded CRF's mean negative log-likelihoods over the batch, empty rows included."""
    torch.manual_seed(0)
    model = DIETModel(tiny_config()).eval()  # no dropout: one hidden state for both ways
    x = batch_of(examples + [random_example(0, torch.Generator().manual_seed(1))])
    hidden = model.encode(x)["hidden"]
    losses = model(x).losses
    for head in ("entity", "role", "group"):
        emissions = model.tag_emissions(hidden, head, x.entity_tags)
        padded = -model.crfs[head].log_likelihood(emissions, x.tags(head), x.lengths).mean()
        torch.testing.assert_close(losses[head], padded)


def test_sentence_vector_sits_after_the_last_token(examples):
    model = DIETModel(tiny_config(number_of_transformer_layers=0)).eval()
    x = batch_of(examples)
    combined, mask = model.combine_features(x)
    sent = model.sent_input(x.sent_ids, x.sent_values, None)
    for b, n in enumerate(x.lengths.tolist()):
        assert torch.allclose(combined[b, n], sent[b])
        assert mask[b, n] and not mask[b, n + 1:].any()
        assert torch.count_nonzero(combined[b, n + 1:]) == 0


@pytest.mark.parametrize("options", [
    {},
    {"use_masked_language_model": True},
    {"use_key_relative_attention": True, "use_value_relative_attention": True},
    {"intent_loss": "softmax"},
    {"loss_type": "margin"},
    {"hidden_layers_text": [10], "hidden_layers_label": [6]},
    {"dense_dim": DENSE},
    {"num_role_tags": 0, "num_group_tags": 0},  # no unused layers (DDP refuses them)
])
def test_gradients_reach_every_trainable_parameter(examples, options):
    torch.manual_seed(1)
    dense = "dense_dim" in options
    gen = torch.Generator().manual_seed(3)
    batch = [random_example(n, gen, dense=dense) for n in (6, 4, 9, 5, 8, 7)]
    model = DIETModel(tiny_config(**options)).train()
    x = batch_of(batch)
    if options.get("use_masked_language_model"):
        torch.manual_seed(5)  # make sure some tokens get masked
    out = model(x)
    if options.get("use_masked_language_model"):
        assert "mask" in out.losses
    out.loss.backward()
    missing = [name for name, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("options", [{}, {"use_key_relative_attention": True},
                                     {"dense_dim": DENSE}])
def test_padding_does_not_change_predictions(options):
    torch.manual_seed(2)
    dense = "dense_dim" in options
    gen = torch.Generator().manual_seed(4)
    batch = [random_example(n, gen, dense=dense) for n in (3, 8, 1, 5)]
    model = DIETModel(tiny_config(**options)).eval()
    together = model.predict(batch_of(batch, pad_bag=2))
    for i, example in enumerate(batch):
        alone = model.predict(batch_of([example]))
        n = len(example["entity"])
        assert torch.allclose(alone.intent_confidences[0], together.intent_confidences[i],
                              atol=1e-5)
        for head in ("entity", "role", "group"):
            assert alone.tags[head][0, :n].tolist() == together.tags[head][i, :n].tolist()
            assert torch.allclose(alone.tag_confidences[head][0, :n],
                                  together.tag_confidences[head][i, :n], atol=1e-5)


def test_intent_only_and_entity_only_modes(examples):
    x = batch_of(examples)
    intent_only = DIETModel(tiny_config(entity_recognition=False))
    assert set(intent_only(x).losses) == {"intent"}
    assert intent_only.eval().predict(x).tags == {}
    entity_only = DIETModel(tiny_config(intent_classification=False))
    assert set(entity_only(x).losses) == {"entity", "role", "group"}
    assert entity_only.eval().predict(x).intent_confidences is None


def test_connection_density_masks_transformer_weights():
    sparse = DIETModel(tiny_config(connection_density=0.2, transformer_size=64))
    dense = DIETModel(tiny_config(connection_density=1.0, transformer_size=64))
    masks = [b for n, b in sparse.named_buffers() if n.endswith("mask")]
    assert masks, "RandomlyConnectedDense masks expected in the transformer"
    density = sum(float(m.float().sum()) for m in masks) / sum(m.numel() for m in masks)
    assert 0.15 < density < 0.4
    assert not [n for n, _ in dense.named_buffers() if n.endswith("mask")] or all(
        bool(b.all()) for n, b in dense.named_buffers() if n.endswith("mask"))


def test_config_validation():
    with pytest.raises(ValueError, match="input features"):
        DIETConfig(num_intents=3)
    with pytest.raises(ValueError, match="intent_loss"):
        tiny_config(intent_loss="nope")
    with pytest.raises(ValueError, match="unknown DIETConfig keys"):
        DIETConfig.from_dict({"seq_sparse_dim": 3, "transformer_sizes": 5})
    config = tiny_config()
    assert DIETConfig.from_dict(config.to_dict()) == config


def test_rank_intents_keeps_the_top_k_without_renormalising():
    conf = torch.tensor([[0.1, 0.5, 0.15, 0.25]])
    ranked = rank_intents(conf, 2)
    assert ranked.tolist() == [[0.0, 0.5, 0.0, 0.25]]
    assert torch.equal(rank_intents(conf, 0), conf)


def flat_bags(x: DIETInputs) -> DIETInputs:
    """The same batch with padding-free sparse bags (ids/values + offsets), as collate builds."""
    def flatten(ids, values):
        rows_ids, rows_values = ids.reshape(-1, ids.shape[-1]), values.reshape(-1, ids.shape[-1])
        keep = rows_ids != 0
        sizes = keep.sum(1)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)[:-1]])
        return rows_ids[keep], rows_values[keep], offsets
    flat = DIETInputs(**vars(x))
    flat.seq_ids, flat.seq_values, flat.seq_offsets = flatten(x.seq_ids, x.seq_values)
    flat.sent_ids, flat.sent_values, flat.sent_offsets = flatten(x.sent_ids, x.sent_values)
    return flat


def test_flat_sparse_bags_give_the_same_predictions_as_padded_bags(examples):
    torch.manual_seed(0)
    model = DIETModel(tiny_config()).eval()
    padded = batch_of(examples, pad_bag=3)
    flat = flat_bags(padded)
    assert flat.seq_ids.dim() == 1 and flat.seq_offsets.shape == (4 * 7,)
    a, b = model.predict(padded), model.predict(flat)
    assert torch.allclose(a.intent_confidences, b.intent_confidences, atol=1e-6)
    for head in a.tags:
        assert torch.equal(a.tags[head], b.tags[head])


@pytest.mark.parametrize("options", [{}, {"dense_dim": DENSE}, {"use_masked_language_model": True}])
def test_trains_and_predicts_under_bf16_autocast(options):
    """`trainer=gpu` uses bf16 mixed precision; CPU autocast exercises the same dtype paths."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    batch = batch_of([random_example(n, gen, dense="dense_dim" in options) for n in (4, 7, 2)])
    model = DIETModel(tiny_config(**options))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
        out.loss.backward()
        prediction = model.eval().predict(batch)
    assert torch.isfinite(out.loss)
    assert prediction.intent_confidences.shape == (3, N_INTENTS)
