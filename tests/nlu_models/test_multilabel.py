"""Multi-label intents: ``a+b`` / ``a#b`` labels read as sets of atomic intents, DIET's sigmoid
intent head (``intent_loss: sigmoid``) with its threshold, the parse results of the torch and
ONNX interpreters, the FallbackClassifier on them, and the multi-label reports."""
from __future__ import annotations

import json

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from nlu_models.data.schema import Message, NLUData
from nlu_models.diet.datamodule import NLUDataModule
from nlu_models.diet.labels import DIETLabels
from nlu_models.diet.lit_module import DIETLitModule
from nlu_models.diet.model import DIETConfig, DIETModel
from nlu_models.evaluation import evaluate_nlu, intent_sets, multi_label_report
from nlu_models.export import export_nlu_bundle
from nlu_models.fallback import FallbackConfig, is_fallback, undo_fallback
from nlu_models.modules import SigmoidLabelLoss, predicted_label_sets
from nlu_models.onnx_runtime import load_interpreter
from tests.conftest import shared_data
from tests.nlu_models.test_diet_model import batch_of, random_example, tiny_config
from tests.nlu_models.test_diet_training import TINY_MODEL, tiny_trainer

TOL = 1e-4
SIGMOID_MODEL = {**TINY_MODEL, "intent_loss": "sigmoid"}

# greet / order / weather, alone and in pairs; words are shared between the single and the
# double examples, so a double intent can only be predicted as the union of two singles
MULTI_DATA = NLUData(examples=[Message(text, intent) for text, intent in [
    ("hello there", "greet"), ("hi bot", "greet"), ("good morning", "greet"),
    ("a large pizza please", "order"), ("I want a pizza", "order"),
    ("order a pepperoni pizza", "order"),
    ("weather in Berlin", "weather"), ("is it raining", "weather"),
    ("how is the weather today", "weather"),
    ("hello there I want a pizza", "greet+order"), ("hi bot order a pizza", "order+greet"),
    ("good morning is it raining", "greet+weather"),
    ("hello how is the weather today", "weather+greet"),
    ("order a pizza is it raining", "order+weather"),
    ("I want a pizza how is the weather", "order+weather"),
]])


def canonical(intent: str) -> str:
    return "+".join(sorted(intent.split("+")))


# ---- labels ------------------------------------------------------------------------------------
def test_labels_are_the_atomic_intents_of_plus_labels():
    labels = DIETLabels.from_data(MULTI_DATA, multi_label=True)
    assert labels.intents == ["greet", "order", "weather"]
    assert labels.multi_label and labels.intent_split_symbol == "+"
    assert labels.intent_targets("weather+greet") == [1.0, 0.0, 1.0]
    assert labels.intent_targets("order") == [0.0, 1.0, 0.0]
    assert labels.intent_targets("unseen") == [0.0, 0.0, 0.0]  # no intent: out of the loss
    assert labels.canonical_intent("weather+greet") == "greet+weather"
    single = DIETLabels.from_data(MULTI_DATA)  # Rasa's way: every combination its own label
    assert "order+weather" in single.intents and len(single.intents) == 8
    assert single.intent_targets("order+weather") is None


def test_labels_split_at_hash_and_old_labels_json_still_loads():
    data = NLUData(examples=[Message("x", "atis_flight#atis_airfare"),
                             Message("y", "atis_aircraft#atis_flight#atis_flight_no")])
    labels = DIETLabels.from_data(data, multi_label=True, intent_split_symbol="#")
    assert labels.intents == ["atis_aircraft", "atis_airfare", "atis_flight", "atis_flight_no"]
    assert labels.intent_targets("atis_aircraft#atis_flight#atis_flight_no") == [1, 0, 1, 1]
    assert DIETLabels.from_dict(labels.to_dict()) == labels
    old = {k: v for k, v in labels.to_dict().items()
           if k not in ("multi_label", "intent_split_symbol")}  # a labels.json from before
    assert DIETLabels.from_dict(old).multi_label is False
    with pytest.raises(ValueError, match="cannot extend intents with multi_label=True"):
        labels.extended(DIETLabels.from_data(data))
    with pytest.raises(ValueError, match="intent_split_symbol"):
        DIETLabels(multi_label=True, intent_split_symbol="")


def test_atis_multi_intent_labels(data_dir):
    from nlu_models.data.benchmarks import read_jointbert

    train = read_jointbert(shared_data("atis/jointbert/train"))
    labels = DIETLabels.from_data(train, multi_label=True, intent_split_symbol="#")
    assert not any("#" in i for i in labels.intents)
    assert {"atis_flight", "atis_airfare", "atis_flight_no"} <= set(labels.intents)
    multi = [m for m in train.examples if "#" in m.intent]
    assert len(multi) == 23
    assert sorted(sum(labels.intent_targets(m.intent)) for m in multi)[-1] == 3


# ---- the sigmoid head --------------------------------------------------------------------------
def test_predicted_sets_take_the_threshold_and_never_come_out_empty():
    conf = torch.tensor([[0.9, 0.6, 0.1], [0.2, 0.4, 0.3], [0.5, 0.5, 0.49]])
    assert predicted_label_sets(conf, 0.5).tolist() == [[True, True, False],
                                                       [False, True, False],
                                                       [True, True, False]]
    assert predicted_label_sets(conf, 0.7).tolist() == [[True, False, False],
                                                       [False, True, False],
                                                       [True, False, False]]
    assert predicted_label_sets(conf, 0.3).tolist()[1] == [False, True, True]


def test_sigmoid_loss_is_bce_summed_over_labels():
    torch.manual_seed(0)
    loss_fn = SigmoidLabelLoss(threshold=0.5)
    inputs, labels = torch.randn(4, 5), torch.randn(3, 5)
    targets = torch.tensor([[1.0, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 1]])
    loss, accuracy = loss_fn(inputs, targets, labels)
    logits = inputs @ labels.T
    want = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 4
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    exact = (predicted_label_sets(logits.sigmoid(), 0.5) == targets.bool()).all(-1)
    assert accuracy.item() == pytest.approx(exact.float().mean().item())
    confidences = loss_fn.confidences(inputs, labels)
    assert torch.allclose(confidences, logits.sigmoid())  # independent: rows need not sum to 1


def test_sigmoid_diet_learns_from_targets_and_skips_rows_without_intent():
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(3)
    examples = [random_example(n, gen) for n in (6, 4, 9, 5)]
    model = DIETModel(tiny_config(intent_loss="sigmoid", drop_rate=0.0)).train()
    x = batch_of(examples)
    x.intent_targets = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
    out = model(x)
    out.loss.backward()
    missing = [name for name, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not missing, f"no gradient for {missing}"
    assert "intent_loss.bias" in dict(model.named_parameters())
    without = batch_of([examples[i] for i in (0, 1, 3)])  # the row without an intent left out
    without.intent_targets = x.intent_targets[[0, 1, 3]]
    model.eval()  # no dropout: the two batches must give the same intent loss
    assert model(x).losses["intent"].item() == pytest.approx(
        model(without).losses["intent"].item(), rel=1e-4)
    confidences = model.predict(x).intent_confidences
    assert confidences.shape == (4, 4) and not torch.allclose(confidences.sum(-1),
                                                              torch.ones(4))


def test_config_checks_the_threshold():
    with pytest.raises(ValueError, match="multi_label_threshold"):
        tiny_config(intent_loss="sigmoid", multi_label_threshold=1.0)
    assert DIETConfig.from_dict(tiny_config(intent_loss="sigmoid").to_dict()).multi_label


# ---- parse results and the fallback ------------------------------------------------------------
@pytest.fixture
def labels() -> DIETLabels:
    return DIETLabels(intents=["greet", "order", "weather"], multi_label=True)


def test_parse_result_names_the_set_at_or_above_the_threshold(labels):
    result = labels.parse_result("hi", [], [0.9, 0.5, 0.2], {}, {})
    assert result["intent"] == {"name": "greet+order", "confidence": 0.5}
    assert result["intents"] == [{"name": "greet", "confidence": 0.9},
                                 {"name": "order", "confidence": 0.5}]
    assert [r["name"] for r in result["intent_ranking"]] == ["greet", "order", "weather"]
    # label order in the name, whatever the confidences
    assert labels.parse_result("x", [], [0.6, 0.1, 0.95], {}, {})["intent"]["name"] == \
        "greet+weather"
    higher = labels.parse_result("hi", [], [0.9, 0.5, 0.2], {}, {}, multi_label_threshold=0.7)
    assert higher["intent"] == {"name": "greet", "confidence": 0.9}
    none = labels.parse_result("hi", [], [0.1, 0.3, 0.2], {}, {})  # the top one alone
    assert none["intent"] == {"name": "order", "confidence": 0.3}
    assert none["intents"] == [{"name": "order", "confidence": 0.3}]


def test_fallback_on_multi_label_results(labels):
    fallback = FallbackConfig(threshold=0.3, ambiguity_threshold=0.1)
    two = labels.parse_result("hi", [], [0.95, 0.94, 0.02], {}, {})
    assert not fallback.should_fallback(two)  # two confident intents are not ambiguous
    close = labels.parse_result("hi", [], [0.95, 0.55, 0.48], {}, {})  # set vs the rest: 0.07
    fell = fallback.apply(close)
    assert is_fallback(fell) and fell["intents"] == close["intents"]
    assert undo_fallback(fell, "+")["intent"] == close["intent"] == {"name": "greet+order",
                                                                     "confidence": 0.55}
    low = labels.parse_result("hi", [], [0.1, 0.2, 0.05], {}, {})
    assert is_fallback(fallback.apply(low))
    assert undo_fallback(fallback.apply(low), "+")["intent"] == {"name": "order",
                                                                 "confidence": 0.2}


# ---- data module and module checks -------------------------------------------------------------
def test_for_data_refuses_a_model_and_data_that_disagree_on_multi_label():
    single = NLUDataModule(MULTI_DATA, show_progress=False).prepare()
    with pytest.raises(ValueError, match="not multi-label; build it with multi_label=True"):
        DIETLitModule.for_data(single, SIGMOID_MODEL)
    multi = NLUDataModule(MULTI_DATA, multi_label=True, show_progress=False).prepare()
    with pytest.raises(ValueError, match="data module is multi-label"):
        DIETLitModule.for_data(multi, TINY_MODEL)
    module = DIETLitModule.for_data(multi, SIGMOID_MODEL)
    assert module.model.config.num_intents == 3


def test_multi_label_batches_carry_targets_and_balance_combined_labels():
    dm = NLUDataModule(MULTI_DATA, multi_label=True, batch_size=4,
                       show_progress=False).prepare()
    keys = dm._batch_labels(dm.encoded["train"])
    by_text = {e.message.text: k for e, k in zip(dm.encoded["train"], keys)}
    assert by_text["hello there I want a pizza"] == by_text["hi bot order a pizza"]  # a+b = b+a
    assert by_text["hello there"] != by_text["hello there I want a pizza"]
    assert len(set(keys)) == 6
    batch = next(iter(dm.train_dataloader()))
    assert batch.intent_targets.shape == (batch.mask.shape[0], 3)
    assert set(batch.intent_targets.sum(-1).tolist()) <= {1.0, 2.0}


# ---- training, torch and ONNX ------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny sigmoid DIET trained on MULTI_DATA (validated on it too) and its ONNX bundle."""
    L.seed_everything(3, workers=True)
    dm = NLUDataModule(MULTI_DATA, val=MULTI_DATA, multi_label=True, batch_size=[8, 15],
                       show_progress=False).prepare()
    module = DIETLitModule.for_data(dm, SIGMOID_MODEL, learning_rate=0.01)
    trainer = tiny_trainer(80)
    trainer.fit(module, datamodule=dm)
    out = tmp_path_factory.mktemp("multilabel")
    trainer.save_checkpoint(out / "model.ckpt")
    return module, trainer, dm, export_nlu_bundle(out / "model.ckpt", out / "bundle", onnx=True)


def test_tiny_multi_label_data_is_fitted(fitted):
    module, trainer, dm, _ = fitted
    results = module.interpreter().parse_messages(MULTI_DATA.examples)
    for gold, result in zip(MULTI_DATA.examples, results):
        assert result["intent"]["name"] == canonical(gold.intent), gold.text
        assert sorted(i["name"] for i in result["intents"]) == sorted(gold.intent.split("+"))
    metrics = trainer.validate(module, datamodule=dm, verbose=False)[0]
    assert metrics["val/intent_acc"] == 1.0  # exact-set accuracy


def test_onnx_parses_multi_label_like_torch(fitted):
    bundle = fitted[3]
    texts = [m.text for m in MULTI_DATA.examples] + ["hello is it raining", "pizza"]
    want = load_interpreter(bundle, "torch").parse(texts)
    have = load_interpreter(bundle, "onnx").parse(texts)
    assert json.loads((bundle / "onnx.json").read_text())["multi_label_threshold"] == 0.5
    for w, h in zip(want, have):
        assert h["intent"]["name"] == w["intent"]["name"]
        assert h["intent"]["confidence"] == pytest.approx(w["intent"]["confidence"], abs=TOL)
        assert [i["name"] for i in h["intents"]] == [i["name"] for i in w["intents"]]
        assert [r["name"] for r in h["intent_ranking"]] == [r["name"] for r in w["intent_ranking"]]
        assert [r["confidence"] for r in h["intent_ranking"]] == \
            pytest.approx([r["confidence"] for r in w["intent_ranking"]], abs=TOL)
    assert any(len(w["intents"]) == 2 for w in want)


# ---- metrics -----------------------------------------------------------------------------------
GOLD = [Message("one", "a"), Message("two", "a+b"), Message("three", "b"), Message("four", "c")]
PRED_SETS = [["a"], ["a"], ["b", "c"], ["c"]]


def test_multi_label_report_on_hand_made_sets():
    report = multi_label_report([["a"], ["a", "b"], ["b"], ["c"]], PRED_SETS)
    assert report["exact_match"] == 0.5
    assert report["hamming_loss"] == pytest.approx(2 / 12)
    assert report["a"] == {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 2}
    assert report["b"]["precision"] == 1.0 and report["b"]["recall"] == 0.5
    assert report["c"]["precision"] == 0.5 and report["c"]["recall"] == 1.0
    assert report["micro avg"]["f1-score"] == pytest.approx(0.8)
    assert report["macro avg"]["f1-score"] == pytest.approx(7 / 9)
    assert report["samples avg"]["f1-score"] == pytest.approx(5 / 6)
    assert report["multi_intent"] == {"exact_match": 0.0, "support": 1}
    assert multi_label_report([], []) == {}


def multi_label_result(names: list[str], confidence: float = 0.9) -> dict:
    intents = [{"name": n, "confidence": confidence} for n in names]
    return {"text": "", "intent": {"name": "+".join(names), "confidence": confidence},
            "intent_ranking": intents, "intents": intents, "entities": []}


def test_reports_of_a_multi_label_model(tmp_path):
    gold = GOLD + [Message("five", "b+a")]
    preds = [multi_label_result(s) for s in PRED_SETS] + [multi_label_result(["a", "b"])]
    summary = evaluate_nlu(gold, preds, tmp_path, {}, plots=False, intent_split_symbol="+")
    assert summary["intent_exact_match"] == pytest.approx(3 / 5)
    assert summary["intent_exact_match_multi_intent"] == 0.5
    assert summary["intent_accuracy"] == pytest.approx(3 / 5)  # b+a scored as a+b
    report = json.loads((tmp_path / "multi_label_report.json").read_text())
    assert report["multi_intent"]["support"] == 2
    assert set(json.loads((tmp_path / "intent_report.json").read_text())) >= {"a", "a+b", "b"}
    assert "## Multi-label intents" in (tmp_path / "report.md").read_text()
    for key in ("intent_micro_f1", "intent_samples_f1", "intent_hamming_loss"):
        assert 0.0 <= summary[key] <= 1.0


def test_single_label_predictions_of_combined_labels_are_split(tmp_path):
    """A model over combined labels (Rasa's way): its names are split into sets; the intent
    report keeps the strings as they are (b#a is not a#b there, as in Rasa)."""
    gold = [Message("x", "a#b"), Message("y", "b#a"), Message("z", "c")]
    preds = [{"intent": {"name": n, "confidence": 0.8}, "intent_ranking": [], "entities": []}
             for n in ("a#b", "a#b", "c")]
    assert intent_sets(gold, preds, "#") == ([["a", "b"], ["b", "a"], ["c"]],
                                             [["a", "b"], ["a", "b"], ["c"]])
    summary = evaluate_nlu(gold, preds, tmp_path, {}, plots=False, intent_split_symbol="#")
    assert summary["intent_exact_match"] == 1.0
    assert summary["intent_accuracy"] == pytest.approx(2 / 3)
    plain = evaluate_nlu([Message("z", "c")], preds[2:], tmp_path / "plain", {}, plots=False,
                         intent_split_symbol="#")  # no multi-intent anywhere: no report
    assert "intent_exact_match" not in plain
    assert not (tmp_path / "plain" / "multi_label_report.json").exists()
