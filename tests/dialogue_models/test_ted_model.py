"""TED behaves: shapes per mode, gradients reach every parameter, padding and later turns do not
change predictions, the max-history reversal respects each example's length, a tiny story set is
fitted, configs validate and round-trip, and the Lightning system trains and logs."""
from __future__ import annotations

import itertools
import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from dialogue_models.ted import TEDConfig, TEDInputs, TEDModel, reverse_turns
from dialogue_models.ted.lit_module import TEDLitModule, action_hits
from nlu_models.memory import ReleaseFreedMemory
from nlu_models.modules import add_l2_gradient

MODES = ("max_history", "full_dialogue")
ALL_SIZES = {"intent": 4, "action_name": 5, "entities": 3, "slots": 2, "active_loop": 2}
TINY = dict(dense_dimension=8, encoding_dimension=12, transformer_size=16,
            number_of_transformer_layers=1, number_of_attention_heads=2, embedding_dimension=8,
            number_of_negative_examples=3, drop_rate_dialogue=0.0)


def tiny_model(mode: str, seed: int = 0, **overrides) -> TEDModel:
    torch.manual_seed(seed)
    values = dict(TINY, feature_sizes=ALL_SIZES, num_actions=5, mode=mode)
    return TEDModel(TEDConfig(**{**values, **overrides}))


def random_dialogue(length: int, seed: int) -> dict[str, torch.Tensor]:
    """attribute → (length, F) multi-hot; the intent is absent on every other turn."""
    g = torch.Generator().manual_seed(seed)
    turns = {a: (torch.rand(length, f, generator=g) > 0.5).float() for a, f in ALL_SIZES.items()}
    turns["intent"][1::2] = 0.0
    turns["action_name"][:, 0] = 1.0          # every turn has a previous action
    return turns


def batch_of(dialogues: list[dict[str, torch.Tensor]], labels: list[torch.Tensor] | None = None,
             width: int | None = None) -> TEDInputs:
    """Left-aligned padding to ``width`` turns (default: the longest dialogue)."""
    lengths = [len(next(iter(d.values()))) for d in dialogues]
    width = width or max(lengths)
    features = {a: torch.zeros(len(dialogues), width, v.shape[-1])
                for a, v in dialogues[0].items()}
    mask = torch.zeros(len(dialogues), width, dtype=torch.bool)
    for b, (dialogue, n) in enumerate(zip(dialogues, lengths)):
        for a, values in dialogue.items():
            features[a][b, :n] = values
        mask[b, :n] = True
    label_ids = None
    if labels is not None:
        if labels[0].dim() == 0:
            label_ids = torch.stack(labels)
        else:
            label_ids = torch.full((len(dialogues), width), -100, dtype=torch.long)
            for b, ids in enumerate(labels):
                label_ids[b, :len(ids)] = ids
    return TEDInputs(features, mask, label_ids)


def random_labels(mode: str, lengths: list[int]) -> list[torch.Tensor]:
    if mode == "max_history":
        return [torch.tensor(n % 5) for n in lengths]
    return [torch.arange(n) % 5 for n in lengths]


# ---- shapes and gradients -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_confidence_shapes_and_sums(mode):
    model = tiny_model(mode).eval()
    prediction = model.predict(batch_of([random_dialogue(n, n) for n in (2, 4, 3)]))
    expected = (3, 5) if mode == "max_history" else (3, 4, 5)
    assert prediction.confidences.shape == expected == prediction.similarities.shape
    assert torch.allclose(prediction.confidences.sum(-1), torch.ones(expected[:-1]))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("label_loss", ["dot_product", "softmax"])
def test_every_parameter_gets_a_gradient(mode, label_loss):
    model = tiny_model(mode, label_loss=label_loss).train()
    lengths = [3, 5, 4, 2]
    batch = batch_of([random_dialogue(n, n) for n in lengths], random_labels(mode, lengths))
    output = model(batch)
    output.loss.backward()
    assert set(output.metrics) == {"action_acc"}
    missing = [name for name, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_regularized_parameters_are_kernels_only():
    model = tiny_model("max_history")
    names = {id(p): n for n, p in model.named_parameters()}
    chosen = [names[id(p)] for p in model.regularized_parameters()]
    assert "label_input.weight" in chosen and "embed_dialogue.weight" in chosen
    assert "turn_inputs.intent.encoder.layers.0.weight" in chosen
    assert not any(n.endswith("bias") or "norm" in n for n in chosen)


# ---- invariants ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_padding_does_not_change_predictions(mode):
    model = tiny_model(mode).eval()
    short, long = random_dialogue(3, seed=1), random_dialogue(6, seed=2)
    alone = model.predict(batch_of([short])).confidences[0]
    batched = model.predict(batch_of([short, long])).confidences[0]
    padded = model.predict(batch_of([short], width=7)).confidences[0]
    if mode == "full_dialogue":
        batched, padded = batched[:3], padded[:3]
    torch.testing.assert_close(batched, alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(padded, alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("multiple", [1, 5])
@pytest.mark.parametrize("mode", MODES)
def test_training_on_packed_turns_equals_the_padded_computation(mode, multiple, monkeypatch):
    """Training encodes and transforms the real turns only (packed); without dropout the loss
    and the gradients equal the padded computation's, on ragged dialogues, also with the packed
    row count rounded up (12 turns → 15 rows: what bfloat16 autocast does, with 32)."""
    monkeypatch.setattr("dialogue_models.ted.model.row_multiple", lambda device_type: multiple)
    model = tiny_model(mode, number_of_transformer_layers=2)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    lengths = [2, 5, 1, 4]
    x = batch_of([random_dialogue(n, n) for n in lengths], random_labels(mode, lengths))
    results = []
    for training in (True, False):
        model.train(training)
        model.zero_grad()
        torch.manual_seed(0)  # the same sampled negatives
        loss = model(x).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (packed, packed_grads), (padded, padded_grads) = results
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
    for got, want in zip(packed_grads, padded_grads):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_full_dialogue_later_turns_never_change_earlier_positions():
    model = tiny_model("full_dialogue").eval()
    dialogue = random_dialogue(6, seed=3)
    changed = {a: v.clone() for a, v in dialogue.items()}
    changed["intent"][3] = torch.tensor([1.0, 0.0, 1.0, 1.0])
    changed["slots"][3] = 1.0 - changed["slots"][3]
    before = model.predict(batch_of([dialogue])).confidences[0]          # (D, L)
    after = model.predict(batch_of([changed])).confidences[0]
    torch.testing.assert_close(after[:3], before[:3], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(after[3], before[3])


def test_max_history_reads_the_last_real_turn():
    model = tiny_model("max_history").eval()
    dialogue = random_dialogue(4, seed=4)
    base = model.predict(batch_of([dialogue])).confidences[0]
    last_changed = {a: v.clone() for a, v in dialogue.items()}
    last_changed["intent"][3] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    other = model.predict(batch_of([last_changed])).confidences[0]
    assert not torch.allclose(other, base)
    # the same dialogue as the short row of a batch: its own length decides the reversal
    batched = model.predict(batch_of([dialogue, random_dialogue(6, seed=5)])).confidences[0]
    torch.testing.assert_close(batched, base, atol=1e-6, rtol=1e-5)


def test_reverse_turns_respects_each_length():
    x = torch.arange(8.0).reshape(2, 4, 1)                                # (B, D, 1)
    reversed_ = reverse_turns(x, torch.tensor([3, 1]))[..., 0]
    assert reversed_.tolist() == [[2.0, 1.0, 0.0, 3.0], [4.0, 5.0, 6.0, 7.0]]


# ---- learning -----------------------------------------------------------------------------------
INTENTS = ("greet", "ask", "thank")
ACTIONS = ("action_listen", "utter_greet", "utter_answer", "utter_welcome")


def story_turns(order: tuple[int, ...]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Rasa-style states of one story: the user turn (intent, prev action = listen) is followed
    by the bot's answer, then a turn with no user input (prev action = the answer) → listen."""
    intents, actions, labels = [], [], []
    for intent in order:
        intents += [torch.eye(3)[intent], torch.zeros(3)]
        actions += [torch.eye(4)[0], torch.eye(4)[intent + 1]]
        labels += [intent + 1, 0]
    turns = {"intent": torch.stack(intents), "action_name": torch.stack(actions)}
    return turns, torch.tensor(labels)


def story_examples(mode: str) -> TEDInputs:
    dialogues, labels = [], []
    for order in itertools.permutations(range(3)):                         # 6 stories
        turns, ids = story_turns(order)
        if mode == "full_dialogue":
            dialogues.append(turns)
            labels.append(ids)
        else:                                                               # one per action
            for n in range(1, len(ids) + 1):
                dialogues.append({a: v[:n] for a, v in turns.items()})
                labels.append(ids[n - 1])
    return batch_of(dialogues, labels)


@pytest.mark.parametrize("mode", MODES)
def test_tiny_stories_are_fitted(mode):
    torch.manual_seed(0)
    config = TEDConfig(**TINY, feature_sizes={"intent": 3, "action_name": 4}, num_actions=4,
                       mode=mode)
    model = TEDModel(config)
    batch = story_examples(mode)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        model(batch).loss.backward()
        optimizer.step()
    correct, total = action_hits(model.eval().predict(batch), batch)
    assert total == 36 and correct == total


# ---- configs and inputs -------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    ({"feature_sizes": {}}, "needs input features"),
    ({"feature_sizes": {"intent": 0}}, "needs input features"),
    ({"feature_sizes": {"bot_text": 3}}, "unknown TED feature attributes"),
    ({"e2e_confidence_threshold": 1.5}, "e2e_confidence_threshold must be in"),
    ({"num_actions": 0}, "num_actions must be >= 1"),
    ({"mode": "bidirectional"}, "mode must be one of"),
    ({"label_loss": "margin"}, "label_loss must be"),
    ({"drop_rate_dialogue": 1.0}, "drop_rate_dialogue must be in"),
])
def test_config_validation(overrides, message):
    values = {"feature_sizes": {"intent": 3}, "num_actions": 2, **overrides}
    with pytest.raises(ValueError, match=message):
        TEDConfig(**values)


def test_config_round_trip_and_unknown_keys():
    config = TEDConfig(feature_sizes=dict(ALL_SIZES), num_actions=5, mode="full_dialogue")
    restored = TEDConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert config.attributes == ["intent", "action_name", "entities", "slots", "active_loop"]
    with pytest.raises(ValueError, match="unknown TEDConfig keys: max_history"):
        TEDConfig.from_dict({**config.to_dict(), "max_history": 5})


def test_bad_batches_give_clear_errors():
    model = tiny_model("max_history")
    batch = batch_of([random_dialogue(3, 0)], [torch.arange(3)])
    with pytest.raises(ValueError, match=r"max_history mode needs label_ids of shape \(1,\)"):
        model(batch)
    del batch.features["slots"]
    with pytest.raises(ValueError, match="TED was built for features"):
        model.predict(batch)


def test_l2_gradient_modes():
    weight = torch.nn.Parameter(torch.ones(2, 2))
    weight.grad = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    add_l2_gradient([weight], 0.5, "rasa")                                  # + 2·c·w where grad > 0
    assert weight.grad.tolist() == [[2.0, -1.0], [0.0, 3.0]]
    add_l2_gradient([weight], 0.5, "plain")
    assert weight.grad.tolist() == [[3.0, 0.0], [1.0, 4.0]]


# ---- Lightning system ---------------------------------------------------------------------------
def collate(examples: list[tuple[dict[str, torch.Tensor], torch.Tensor]]) -> TEDInputs:
    return batch_of([turns for turns, _ in examples], [ids for _, ids in examples])


def test_lit_module_trains_logs_and_reloads(tmp_path):
    L.seed_everything(0)
    stories = [story_turns(order) for order in itertools.permutations(range(3))]
    config = dict(TINY, feature_sizes={"intent": 3, "action_name": 4}, num_actions=4,
                  mode="full_dialogue")
    featurizer = {"name": "SingleStateFeaturizer", "intents": list(INTENTS)}
    module = TEDLitModule(config, {"actions": list(ACTIONS)}, learning_rate=0.01,
                          featurizer=featurizer)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    loader = DataLoader(stories, batch_size=3, collate_fn=collate)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)
    metrics = trainer.callback_metrics
    assert {"train/loss", "train/action_acc", "val/loss", "val/action_acc"} <= set(metrics)
    # a plain trainer gets the heap trimmer dialab's callbacks config would have given it
    assert sum(isinstance(c, ReleaseFreedMemory) for c in trainer.callbacks) == 1
    assert 0.0 <= float(metrics["val/action_acc"]) <= 1.0
    assert module.hparams.featurizer == featurizer and module.actions == list(ACTIONS)
    trainer.save_checkpoint(tmp_path / "ted.ckpt")
    restored = TEDLitModule.load_from_checkpoint(tmp_path / "ted.ckpt")
    batch = collate(stories)
    torch.testing.assert_close(restored.model.eval().predict(batch).confidences,
                               module.model.eval().predict(batch).confidences)
    assert restored.featurizer == featurizer and restored.actions == list(ACTIONS)


def test_lit_module_rejects_bad_arguments():
    config = dict(TINY, feature_sizes={"intent": 3}, num_actions=2)
    with pytest.raises(ValueError, match="l2_mode"):
        TEDLitModule(config, {"actions": ["a", "b"]}, l2_mode="weird")
    with pytest.raises(ValueError, match="labels has 1 actions but"):
        TEDLitModule(config, {"actions": ["a"]})
