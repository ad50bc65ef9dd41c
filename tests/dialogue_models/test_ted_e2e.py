"""End-to-end TED: user texts as sentence features beside intents (``model.featurizers``).

A tiny hand-written story set where intent-less user texts alone decide the next action: TED
fits it with text features and cannot without them; the encoding has text exactly where the
stories have it; a turn with both an intent and a text trains and predicts in two versions;
checkpoint → bundle → load predicts the same; fine-tuning grows the text vocabulary; text-only
stories without the option are refused naming it. With ``label_action_text`` the actions' strings
are featurized too: each action's embedding reads its own text, the loss embeds only what it
reads (and equals the full computation), and such a policy survives bundles and fine-tuning.
With ``prev_action_text`` each turn reads its previous action's string: a bot utterance never
seen in training is understood by its words.
"""
from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch

from dialogue_models.domain import domain_from_yaml
from dialogue_models.events import ACTION_LISTEN, ActionExecuted, UserUttered
from dialogue_models.export import export_policy_bundle
from dialogue_models.featurize import ACTION_TEXT, TEXT, StateFeaturizer, state_versions
from dialogue_models.inference import DialoguePolicy
from dialogue_models.policies.ted import TEDPolicy
from dialogue_models.project import BotData
from dialogue_models.stories import stories_from_yaml
from dialogue_models.ted.datamodule import DialogueDataModule
from dialogue_models.ted.encoding import (collate, encode_examples, encode_states,
                                          set_label_texts)
from dialogue_models.ted.growth import grow_ted
from dialogue_models.ted.lit_module import TEDLitModule, action_hits
from dialogue_models.ted.model import TEDConfig, TEDModel
from dialogue_models.tracker import Tracker
from nlu_models.data.yaml_io import parse_yaml

WORDS = [{"name": "CountVectorsFeaturizer", "analyzer": "word"}]
TINY = dict(dense_dimension=8, dense_dimension_text=16, encoding_dimension=16,
            transformer_size=16, number_of_attention_heads=2, embedding_dimension=8,
            number_of_negative_examples=4, drop_rate_dialogue=0.0)
DOMAIN = """
version: "3.1"
intents: [greet, inform]
responses:
  utter_greet: [{text: hi}]
  utter_price: [{text: "5 euros."}]
  utter_hours: [{text: "From 9."}]
  utter_address: [{text: "Main Street 1."}]
"""
# after the same greeting, only the words of the intent-less user turn tell the stories apart
STORIES = """
stories:
- story: price
  steps: [{intent: greet}, {action: utter_greet}, {user: how much is it}, {action: utter_price}]
- story: hours
  steps: [{intent: greet}, {action: utter_greet}, {user: when do you open},
          {action: utter_hours}]
- story: address
  steps: [{intent: greet}, {action: utter_greet}, {user: where are you},
          {action: utter_address}]
- story: hours then price
  steps: [{user: when do you open}, {action: utter_hours}, {user: how much is it},
          {action: utter_price}]
- story: intent and text
  steps: [{intent: inform, user: what does it cost}, {action: utter_price}]
"""


def _domain(text: str = DOMAIN):
    return domain_from_yaml(parse_yaml(text, "domain.yml"), "domain.yml")


def _bot(stories: str = STORIES, domain: str = DOMAIN) -> BotData:
    return BotData(domain=_domain(domain),
                   stories=stories_from_yaml(parse_yaml(stories, "stories.yml"), "stories.yml"))


def _datamodule(featurizers=WORDS, **kwargs) -> DialogueDataModule:
    return DialogueDataModule(kwargs.pop("bot", None) or _bot(), augmentation_factor=0,
                              featurizers=featurizers, batch_size=16, **kwargs).prepare()


def _fit(featurizer: StateFeaturizer, examples, steps: int = 200, seed: int = 0) -> TEDModel:
    """Full-batch Adam on ``examples``; returns the model in eval mode."""
    torch.manual_seed(seed)
    batch = collate(encode_examples(examples, featurizer), "max_history")
    model = TEDModel(TEDConfig(feature_sizes=dict(featurizer.feature_sizes),
                               num_actions=len(featurizer.space.actions), **TINY))
    return _train(model, batch, steps)


def _train(model: TEDModel, batch, steps: int) -> TEDModel:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        model(batch).loss.backward()
        optimizer.step()
    return model.eval()


def _accuracy(model: TEDModel, featurizer: StateFeaturizer, examples) -> float:
    batch = collate(encode_examples(examples, featurizer), "max_history")
    correct, total = action_hits(model.predict(batch), batch)
    return correct / total


def _live(*turns: tuple[str | None, str | None]) -> Tracker:
    """A conversation as the Agent passes it: each (text, intent) user turn answered by the
    actions the stories take, ending on the user turn to answer."""
    events = [ActionExecuted(ACTION_LISTEN)]
    for i, (text, intent) in enumerate(turns):
        events.append(UserUttered(text, intent))
        if i < len(turns) - 1:
            events += [ActionExecuted("utter_greet"), ActionExecuted(ACTION_LISTEN)]
    return Tracker("live", {}, events)


@pytest.fixture(scope="module")
def fitted():
    datamodule = _datamodule()
    model = _fit(datamodule.featurizer, datamodule.examples)
    return datamodule, TEDPolicy(model, datamodule.featurizer, max_history=5)


# ---- data ---------------------------------------------------------------------------------------
def test_the_pipeline_is_fitted_on_the_user_texts_of_the_stories():
    datamodule = _datamodule()
    vocabulary = datamodule.featurizer.text.sparse[0].to_dict()["vocabulary"]
    assert vocabulary == sorted({"how", "much", "is", "it", "when", "do", "you", "open", "where",
                                 "are", "what", "does", "cost"})
    assert datamodule.model_config()["feature_sizes"][TEXT] == len(vocabulary)


def test_turns_have_text_features_exactly_where_the_stories_have_text():
    datamodule = _datamodule()
    featurizer, pipeline = datamodule.featurizer, datamodule.featurizer.text
    checked = 0
    for example, encoded in zip(datamodule.examples, encode_examples(datamodule.examples,
                                                                     featurizer)):
        starts = np.concatenate([[0], np.cumsum(encoded.bags["text"].counts)])
        for d, state in enumerate(example.states):
            text = state.get("user", {}).get(TEXT)
            ids = encoded.bags["text"].ids[starts[d]:starts[d + 1]]
            values = encoded.bags["text"].values[starts[d]:starts[d + 1]]
            if text is None:
                assert len(ids) == 0
                continue
            expected = pipeline.transform(text)
            np.testing.assert_array_equal(ids, expected.sent_ids)
            np.testing.assert_array_equal(values, expected.sent_values)
            assert not encoded.features["intent"][d].any()  # text alone: no intent features
            checked += 1
    assert checked >= 6


def test_a_turn_with_intent_and_text_trains_in_both_versions():
    datamodule = _datamodule()
    story = [e for e in datamodule.examples if e.tracker == "intent and text"
             and e.labels == ["utter_price"]]
    assert [e.states[-1]["user"] for e in story] == [{"intent": "inform"},
                                                     {"text": "what does it cost"}]
    with_both = [{"user": {"intent": "inform", "text": "x", "entities": ("e",)}}]
    assert state_versions(with_both, {"inform"}) == [[{"user": {"intent": "inform",
                                                                "entities": ("e",)}}],
                                                     [{"user": {"text": "x"}}]]
    # an intent the domain lacks has no features: its text stands in, in one version
    assert state_versions(with_both, {"greet"}) == [[{"user": {"text": "x"}}]]


def test_stories_without_user_texts_get_no_text_features():
    bot = _bot(STORIES.split("- story: hours then price")[0].replace(
        "{user: how much is it}", "{intent: inform}").replace(
        "{user: when do you open}", "{intent: inform}").replace(
        "{user: where are you}", "{intent: greet}"))
    featurizer = _datamodule(bot=bot).featurizer
    assert featurizer.text is None and TEXT not in featurizer.feature_sizes


def test_text_only_stories_without_the_option_are_refused_naming_it():
    with pytest.raises(ValueError, match="story 'price' has a user turn with text but no "
                                         "intent.*model.featurizers"):
        _datamodule(featurizers=[])


def test_a_dense_featurizer_is_refused():
    pipeline = _datamodule().featurizer.text
    pipeline.dense = object()  # stands in for a dense encoder: only its presence is checked
    with pytest.raises(ValueError, match="sparse sentence features"):
        StateFeaturizer(_datamodule().space, pipeline)
    with pytest.raises(ValueError, match="sparse only: remove the dense featurizer"):
        _datamodule(featurizers=WORDS + [{"name": "LanguageModelFeaturizer",
                                          "model_name_or_path": "x"}])


# ---- model --------------------------------------------------------------------------------------
def test_text_decides_what_intents_cannot():
    datamodule = _datamodule()
    with_text = _fit(datamodule.featurizer, datamodule.examples)
    assert _accuracy(with_text, datamodule.featurizer, datamodule.examples) == 1.0
    # the same examples without text features: price/hours/address have identical inputs
    blind = StateFeaturizer(datamodule.space)
    without = _fit(blind, datamodule.examples)
    assert _accuracy(without, blind, datamodule.examples) < 1.0


def test_every_text_parameter_gets_a_gradient_and_batching_changes_nothing():
    datamodule = _datamodule()
    encoded = encode_examples(datamodule.examples, datamodule.featurizer)
    model = TEDModel(TEDConfig(feature_sizes=datamodule.featurizer.feature_sizes,
                               num_actions=len(datamodule.space.actions), **TINY))
    model(collate(encoded, "max_history")).loss.backward()
    text_parameters = dict(model.turn_inputs[TEXT].named_parameters())
    assert text_parameters and all(p.grad is not None and p.grad.abs().sum() > 0
                                   for p in text_parameters.values())
    model.eval()
    together = model.predict(collate(encoded, "max_history")).confidences
    alone = torch.cat([model.predict(collate([e], "max_history")).confidences
                       for e in encoded])
    torch.testing.assert_close(together, alone)


def test_a_batch_without_the_text_the_model_expects_is_refused():
    datamodule = _datamodule()
    model = TEDModel(TEDConfig(feature_sizes=datamodule.featurizer.feature_sizes,
                               num_actions=len(datamodule.space.actions), **TINY))
    blind = encode_examples(datamodule.examples, StateFeaturizer(datamodule.space))
    with pytest.raises(ValueError,
                       match=r"built for the text features \['text'\], the batch has none"):
        model.predict(collate(blind, "max_history"))


# ---- inference ----------------------------------------------------------------------------------
def test_the_policy_answers_live_texts(fitted):
    datamodule, policy = fitted
    space = datamodule.space
    for text, action in [("how much is it", "utter_price"), ("when do you open", "utter_hours"),
                         ("where are you", "utter_address")]:
        prediction = policy.predict(_live(("hi", "greet"), (text, None)))
        assert prediction.action(space) == action, text
        assert not prediction.is_end_to_end  # one version: the turn has no intent


def test_a_live_turn_with_intent_and_text_is_predicted_in_two_versions(fitted):
    datamodule, policy = fitted
    tracker = _live(("hi", "greet"), ("where are you", "inform"))
    versions = policy.state_versions(tracker)
    assert [v[-1]["user"] for v in versions] == [{"intent": "inform"}, {"text": "where are you"}]
    batch = collate([encode_states(v, datamodule.featurizer) for v in versions], "max_history")
    both = policy.model.predict(batch)                                      # (2, L)
    text_wins = policy._text_wins(both.confidences, both.similarities)
    prediction = policy.predict(tracker)
    assert prediction.is_end_to_end == text_wins
    assert prediction.probabilities == pytest.approx(
        both.confidences[int(text_wins)].tolist(), abs=1e-6)
    # a text of unseen words alone would be an empty user turn: no text version then
    unseen = policy.state_versions(_live(("hi", "greet"), ("zzz qqq", "inform")))
    assert [v[-1]["user"] for v in unseen] == [{"intent": "inform"}]


def test_the_text_version_wins_only_when_sure_and_more_similar(fitted):
    _, policy = fitted
    confidences = torch.tensor([[0.7, 0.3], [0.2, 0.8]])                    # (intent, text)
    assert policy._text_wins(confidences, torch.tensor([[0.5, 0.1], [0.2, 0.9]]))
    assert not policy._text_wins(confidences, torch.tensor([[0.95, 0.1], [0.2, 0.9]]))
    unsure = torch.tensor([[0.5, 0.5], [0.5, 0.5]])                        # not above 0.5
    assert not policy._text_wins(unsure, torch.tensor([[0.5, 0.1], [0.2, 0.9]]))


def _checkpoint_and_bundle(datamodule: DialogueDataModule, tmp_path):
    """A TEDLitModule trained 3 epochs on ``datamodule``, its checkpoint and policy bundle."""
    L.seed_everything(0, verbose=False)
    module = TEDLitModule(config={**TINY, **datamodule.model_config()},
                          labels={"actions": list(datamodule.space.actions), "max_history": 5},
                          featurizer=datamodule.featurizer.to_dict())
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(module, datamodule=datamodule)
    ckpt = tmp_path / "ted.ckpt"
    trainer.save_checkpoint(ckpt)
    return module, ckpt, export_policy_bundle(ckpt, tmp_path / "bundle")


def test_checkpoint_and_bundle_predict_the_same(tmp_path):
    datamodule = _datamodule()
    module, ckpt, bundle = _checkpoint_and_bundle(datamodule, tmp_path)
    stored = json.loads((bundle / "featurizers.json").read_text())
    assert stored[TEXT]["sparse"][0]["vocabulary"] == \
        datamodule.featurizer.text.to_dict()["sparse"][0]["vocabulary"]
    expected = TEDPolicy.from_lit_module(module.cpu())
    loaded = [DialoguePolicy.load(path).ensemble.policies[-1] for path in (ckpt, bundle)]
    for tracker in [_live(("how much is it", None)),
                    _live(("hi", "greet"), ("where are you", None)),
                    _live(("hi", "greet"), ("what does it cost", "inform"))]:
        want = expected.predict(tracker)
        for policy in loaded:
            got = policy.predict(tracker)
            assert got.probabilities == pytest.approx(want.probabilities, abs=1e-6)
            assert got.is_end_to_end == want.is_end_to_end


# ---- the actions' texts as label features (label_action_text) ---------------------------------
BOT_DOMAIN = """
version: "3.1"
intents: [greet]
e2e_actions: ["It costs five euros.", "We open at nine.", "Our shop opens at nine daily."]
"""
# bot utterances as actions; the third never occurs in a story
BOT_STORIES = """
stories:
- story: price
  steps: [{user: how much is it}, {bot: It costs five euros.}]
- story: hours
  steps: [{user: when do you open}, {bot: We open at nine.}]
"""


def _label_datamodule(**kwargs) -> DialogueDataModule:
    return _datamodule(bot=_bot(BOT_STORIES, BOT_DOMAIN), label_texts=True, **kwargs)


def _label_model(datamodule: DialogueDataModule, seed: int = 0) -> TEDModel:
    torch.manual_seed(seed)
    model = TEDModel(TEDConfig.from_dict({**TINY, **datamodule.model_config()}))
    set_label_texts(model, datamodule.featurizer)
    return model


def test_label_texts_fit_the_pipeline_on_the_actions_too():
    datamodule = _label_datamodule()
    vocabulary = datamodule.featurizer.text.sparse[0].to_dict()["vocabulary"]
    assert {"costs", "nine", "daily", "action_listen"} <= set(vocabulary)  # actions' words
    assert datamodule.model_config()["label_action_text"] is True
    bags = datamodule.featurizer.encode_labels()
    space = datamodule.space
    assert len(bags.counts) == len(space.actions)
    unseen = space.actions.index("Our shop opens at nine daily.")
    start = int(bags.counts[:unseen].sum())
    np.testing.assert_array_equal(
        bags.ids[start:start + bags.counts[unseen]],
        datamodule.featurizer.text.transform("Our shop opens at nine daily.").sent_ids)
    with pytest.raises(ValueError, match="label_texts .* needs the text featurizers"):
        DialogueDataModule(_bot(BOT_STORIES, BOT_DOMAIN), featurizers=[], label_texts=True)
    with pytest.raises(ValueError, match="label_action_text needs the text features"):
        TEDConfig(feature_sizes={"intent": 2}, num_actions=3, label_action_text=True)


def test_an_action_embedding_reads_its_own_text_only():
    datamodule = _label_datamodule()
    model = _label_model(datamodule).eval()
    bags = datamodule.featurizer.encode_labels()
    before = model.action_embeddings()
    # give action 1 the text of the last action: only row 1 moves, to the last row's text part
    counts = bags.counts.copy()
    rows = np.split(np.arange(len(bags.ids)), np.cumsum(counts)[:-1])
    rows[1] = rows[-1]
    counts[1] = counts[-1]
    order = np.concatenate(rows)
    model.set_label_texts(torch.from_numpy(bags.ids[order]),
                          torch.from_numpy(bags.values[order]), torch.from_numpy(counts))
    after = model.action_embeddings()
    changed = (after - before).abs().sum(dim=-1) > 0
    assert changed.tolist() == [i == 1 for i in range(len(counts))]
    text_part = model.label_text(model.label_text_ids, model.label_text_values,
                                 model.label_text_offsets, torch.Size([len(counts), 1]))[:, 0]
    assert torch.equal(text_part[1], text_part[-1])


def test_label_texts_are_required_and_checked():
    datamodule = _label_datamodule()
    model = TEDModel(TEDConfig.from_dict({**TINY, **datamodule.model_config()}))
    with pytest.raises(RuntimeError, match="call set_label_texts"):
        model.action_embeddings()
    with pytest.raises(ValueError, match="label texts for 2 actions"):
        model.set_label_texts(torch.tensor([1, 2]), torch.ones(2), torch.tensor([1, 1]))
    plain = TEDModel(TEDConfig.from_dict({**TINY, **_datamodule().model_config()}))
    with pytest.raises(ValueError, match="no label_action_text"):
        plain.set_label_texts(torch.tensor([1]), torch.ones(1), torch.tensor([1]))
    assert not any(k.startswith("label_text_") for k in model.state_dict())  # data, not weights
    with pytest.raises(ValueError, match="needs its state featurizer"):
        TEDLitModule(config={**TINY, **datamodule.model_config()},
                     labels={"actions": list(datamodule.space.actions)})


def test_the_loss_embeds_only_the_actions_it_reads_and_equals_the_full_computation():
    datamodule = _label_datamodule()
    model = _label_model(datamodule).eval()  # no dropout: both paths see the same numbers
    ids = torch.tensor([3, 0, 3, 4, 1])
    torch.testing.assert_close(model.action_embeddings(ids), model.action_embeddings()[ids])
    batch = collate(encode_examples(datamodule.examples, datamodule.featurizer), "max_history")
    dialogue, labels = model.dialogue_embedding(batch), batch.label_ids
    torch.manual_seed(5)
    sampled = model._sampled_label_loss(dialogue, labels)
    torch.manual_seed(5)  # the same negatives, drawn as the loss draws them, over all actions
    pick = torch.randint(model.config.num_actions,
                         (len(labels), model.action_loss.num_negatives))
    actions = model.action_embeddings()
    full = model.action_loss(dialogue, actions[labels], labels, actions,
                             torch.arange(len(actions)), label_pick=pick)
    torch.testing.assert_close(sampled, full)


def test_label_text_parameters_learn_and_the_stories_are_fitted():
    datamodule = _label_datamodule()
    model = _label_model(datamodule)
    batch = collate(encode_examples(datamodule.examples, datamodule.featurizer), "max_history")
    model(batch).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.label_text.parameters())
    correct, total = action_hits(_train(model, batch, 150).predict(batch), batch)
    assert correct == total


def test_a_policy_with_label_texts_survives_checkpoint_and_bundle(tmp_path):
    module, ckpt, bundle = _checkpoint_and_bundle(_label_datamodule(), tmp_path)
    expected = TEDPolicy.from_lit_module(module.cpu())
    tracker = _live(("when do you open", None))
    want = expected.predict(tracker).probabilities
    for path in (ckpt, bundle):
        policy = DialoguePolicy.load(path).ensemble.policies[-1]
        assert policy.model.config.label_action_text
        assert policy.predict(tracker).probabilities == pytest.approx(want, abs=1e-6)


def test_the_policy_embeds_the_actions_again_after_a_weight_changes():
    datamodule = _label_datamodule()
    policy = TEDPolicy(_label_model(datamodule), datamodule.featurizer)
    tracker = _live(("how much is it", None))
    first = policy.predict(tracker).probabilities
    assert policy.predict(tracker).probabilities == first            # cached, same answer
    with torch.no_grad():
        policy.model.label_text.dense.bag.weight.mul_(3.0)           # in place, as a step
    fresh = policy.model.predict(collate([encode_states(policy.state_versions(tracker)[0],
                                                        datamodule.featurizer)],
                                         "max_history")).confidences[0]
    assert policy.predict(tracker).probabilities == pytest.approx(fresh.tolist(), abs=1e-6)
    assert policy.predict(tracker).probabilities != pytest.approx(first, abs=1e-6)


def test_fine_tuning_keeps_the_old_actions_embeddings_with_label_texts():
    old_datamodule = _label_datamodule()
    old = TEDPolicy(_label_model(old_datamodule), old_datamodule.featurizer)
    domain = BOT_DOMAIN.replace('daily."]', 'daily.", "Delivery is free."]')
    stories = BOT_STORIES + """- story: delivery
  steps: [{user: do you deliver}, {bot: Delivery is free.}]
"""
    grown = DialogueDataModule(_bot(stories, domain), augmentation_factor=0, featurizers=WORDS,
                               label_texts=True).prepare(extend=old.featurizer)
    assert grown.space.actions[-1] == "Delivery is free."
    model = _label_model(grown, seed=1)
    grow_ted(old, model, grown.featurizer)
    model.eval()
    count = len(old_datamodule.space.actions)
    torch.testing.assert_close(model.action_embeddings()[:count], old.model.action_embeddings())


# ---- the previous action's text as a turn feature (prev_action_text) --------------------------
DRINKS = ("tea", "coffee", "juice", "water")
OFFER_DOMAIN = """
version: "3.1"
intents: [greet, affirm, %s]
e2e_actions: [%s]
""" % (", ".join(f"ask_{d}" for d in DRINKS),
       ", ".join(f'"Would you like some {d}?", "Here is your {d}."' for d in DRINKS))
# with max_history 2, only the offer before "affirm" tells what to serve
OFFER_STORIES = "stories:\n" + "".join(f"""- story: {d}
  steps: [{{intent: ask_{d}}}, {{bot: "Would you like some {d}?"}}, {{intent: affirm}},
          {{bot: "Here is your {d}."}}]
""" for d in DRINKS)


def _offer_datamodule(**kwargs) -> DialogueDataModule:
    return _datamodule(bot=_bot(OFFER_STORIES, OFFER_DOMAIN), action_texts=True, max_history=2,
                       **kwargs)


def _offered(offer: str) -> Tracker:
    return Tracker("live", {}, [ActionExecuted(ACTION_LISTEN), UserUttered(None, "greet"),
                                ActionExecuted(action_text=offer), ActionExecuted(ACTION_LISTEN),
                                UserUttered(None, "affirm")])


def test_each_turn_carries_the_text_features_of_its_previous_action():
    datamodule = _offer_datamodule()
    featurizer = datamodule.featurizer
    assert featurizer.feature_sizes[ACTION_TEXT] == featurizer.feature_sizes[TEXT] > 0
    assert datamodule.model_config()["feature_sizes"][ACTION_TEXT] > 0
    checked = 0
    for example in datamodule.examples:
        bags = encode_states(example.states, featurizer).bags[ACTION_TEXT]
        starts = np.concatenate([[0], np.cumsum(bags.counts)])
        for d, state in enumerate(example.states):
            prev = state.get("prev_action", {}).get("action_name")
            want = featurizer.text.transform(prev).sent_ids if prev else np.zeros(0)
            np.testing.assert_array_equal(bags.ids[starts[d]:starts[d + 1]], want)
            checked += prev is not None
    assert checked > 10
    again = StateFeaturizer.from_dict(json.loads(json.dumps(featurizer.to_dict())))
    assert again.action_text and again.feature_sizes == featurizer.feature_sizes
    assert not StateFeaturizer.from_dict(_datamodule().featurizer.to_dict()).action_text
    with pytest.raises(ValueError, match="action_texts .* needs the text featurizers"):
        DialogueDataModule(_bot(OFFER_STORIES, OFFER_DOMAIN), action_texts=True)
    with pytest.raises(ValueError, match="action_text .* needs the text pipeline"):
        StateFeaturizer(datamodule.space, None, action_text=True)


def test_an_unseen_bot_utterance_is_read_by_its_words():
    datamodule = _offer_datamodule()
    featurizer = datamodule.featurizer
    batch = collate(encode_examples(datamodule.examples, featurizer), "max_history")
    torch.manual_seed(0)
    model = TEDModel(TEDConfig(feature_sizes=dict(featurizer.feature_sizes),
                               num_actions=len(featurizer.space.actions), **TINY))
    model(batch).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.turn_inputs[ACTION_TEXT].parameters())
    policy = TEDPolicy(_train(model, batch, 600), featurizer, max_history=2)
    assert action_hits(model.predict(batch), batch) == (17, 17)
    offers = {d: f"Can I bring you some {d} now?" for d in DRINKS}  # in no story or domain
    served = [featurizer.space.actions[int(np.argmax(policy.predict(_offered(o)).probabilities))]
              for o in offers.values()]
    # 4 of 4 with this seed; 3 or 4 of 4 over seeds 0-7 (a new phrasing shifts the embedding)
    assert sum(s == f"Here is your {d}." for s, d in zip(served, offers)) >= 3, served
    # without the words the four unseen offers are the same input: one answer for all four
    blind = StateFeaturizer(featurizer.space, featurizer.text)
    encoded = [encode_states(TEDPolicy(model, blind).state_versions(_offered(o))[0], blind)
               for o in offers.values()]
    assert all(all(np.array_equal(e.features[a], encoded[0].features[a]) for a in e.features)
               for e in encoded)


def test_a_policy_with_previous_action_texts_survives_checkpoint_bundle_and_fine_tuning(
        tmp_path):
    datamodule = _offer_datamodule()
    module, ckpt, bundle = _checkpoint_and_bundle(datamodule, tmp_path)
    expected = TEDPolicy.from_lit_module(module.cpu())
    tracker = _offered("Can I bring you some juice now?")
    want = expected.predict(tracker).probabilities
    for path in (ckpt, bundle):
        policy = DialoguePolicy.load(path).ensemble.policies[-1]
        assert policy.featurizer.action_text
        assert policy.predict(tracker).probabilities == pytest.approx(want, abs=1e-6)
    # fine-tuning on a grown domain: the old turns reach the same dialogue embeddings
    domain = OFFER_DOMAIN.replace('juice."', 'juice.", "Would you like some milk?"')
    grown = DialogueDataModule(_bot(OFFER_STORIES + """- story: milk
  steps: [{intent: greet}, {bot: "Would you like some milk?"}]
""", domain), augmentation_factor=0, featurizers=WORDS, action_texts=True
                               ).prepare(extend=expected.featurizer)
    model = TEDModel(TEDConfig.from_dict({**expected.model.config.to_dict(),
                                          **grown.model_config()}))
    assert "text features" in grow_ted(expected, model, grown.featurizer)
    examples = datamodule.examples
    before = expected.model.eval().dialogue_embedding(
        collate(encode_examples(examples, expected.featurizer), "max_history"))
    after = model.eval().dialogue_embedding(collate(encode_examples(examples, grown.featurizer),
                                                    "max_history"))
    torch.testing.assert_close(after, before)
    plain = DialogueDataModule(_bot(OFFER_STORIES, OFFER_DOMAIN), augmentation_factor=0,
                               featurizers=WORDS).prepare(extend=expected.featurizer)
    model = TEDModel(TEDConfig.from_dict({**expected.model.config.to_dict(),
                                          **plain.model_config()}))
    with pytest.raises(ValueError, match="old model has previous-action-text features"):
        grow_ted(expected, model, plain.featurizer)


# ---- fine-tuning --------------------------------------------------------------------------------
GROWN_DOMAIN = DOMAIN + "  utter_delivery: [{text: \"Yes.\"}]\n"
GROWN_STORIES = STORIES + """- story: delivery
  steps: [{intent: greet}, {action: utter_greet}, {user: do you deliver},
          {action: utter_delivery}]
"""


def test_fine_tuning_grows_the_text_vocabulary_and_keeps_old_answers(fitted):
    old_datamodule, old = fitted
    grown = DialogueDataModule(_bot(GROWN_STORIES, GROWN_DOMAIN), augmentation_factor=0,
                               featurizers=WORDS).prepare(extend=old.featurizer)
    featurizer = grown.featurizer
    old_vocabulary = old.featurizer.text.sparse[0].to_dict()["vocabulary"]
    vocabulary = featurizer.text.sparse[0].to_dict()["vocabulary"]
    assert vocabulary[:len(old_vocabulary)] == old_vocabulary and vocabulary[-1] == "deliver"
    model = TEDModel(TEDConfig.from_dict({**old.model.config.to_dict(),
                                          **grown.model_config()}))
    described = grow_ted(old, model, featurizer)
    assert f"text features: {len(old_vocabulary)} → {len(vocabulary)}" in described
    model.eval()
    # the old conversations reach the same dialogue embeddings through the grown tables
    examples = old_datamodule.examples
    before = old.model.dialogue_embedding(collate(encode_examples(examples, old.featurizer),
                                                  "max_history"))
    after = model.dialogue_embedding(collate(encode_examples(examples, featurizer),
                                             "max_history"))
    torch.testing.assert_close(after, before)


def test_fine_tuning_between_text_and_no_text_is_refused(fitted):
    _, old = fitted
    bot = _bot(STORIES.split("- story: price")[0] + """- story: plain
  steps: [{intent: greet}, {action: utter_greet}]
""")
    blind = DialogueDataModule(bot, augmentation_factor=0).prepare(extend=old.featurizer)
    model = TEDModel(TEDConfig.from_dict({**old.model.config.to_dict(),
                                          **blind.model_config()}))
    with pytest.raises(ValueError, match="the old model has user-text features"):
        grow_ted(old, model, blind.featurizer)


def test_the_text_cache_keeps_the_most_recent_texts_only(monkeypatch):
    """A server featurizes new user texts without end: the cache must not grow with them."""
    from dialogue_models import featurize

    monkeypatch.setattr(featurize, "TEXT_CACHE_SIZE", 3)
    from dialogue_models.states import DialogueSpace
    from nlu_models.data.schema import Message, NLUData
    from nlu_models.featurize import FeaturizerPipeline

    messages = [Message(t) for t in ("one two", "three four", "five six")]
    pipeline = FeaturizerPipeline.from_config(WORDS).fit(messages, NLUData(messages))
    featurizer = featurize.StateFeaturizer(DialogueSpace(intents=["greet"]), pipeline)
    texts = ["one", "two", "three", "one", "four", "five"]
    bags = featurizer.encode_text([{"user": {"text": t}} for t in texts])
    assert list(featurizer._text_cache) == ["one", "four", "five"]  # "one" was used again
    again = featurizer.encode_text([{"user": {"text": t}} for t in texts])
    assert np.array_equal(bags.ids, again.ids) and np.array_equal(bags.counts, again.counts)
