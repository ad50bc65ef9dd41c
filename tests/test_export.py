"""checkpoint → export bundle → load: the documented files with their sha256, the same
predictions as the checkpoint, no pickle on loading, clear errors for edited or mismatched
bundles, and the ``experiments.export`` entry point. The tiny twins train once per module."""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from dialogue_models.events import ActionExecuted
from dialogue_models.evaluation.predict import story_events
from dialogue_models.export import export_bundle, export_policy_bundle
from dialogue_models.inference import DialoguePolicy
from dialogue_models.project import load_bot
from dialogue_models.tracker import Tracker
from experiments.export import export
from experiments.train import train
from nlu_models.export import BundleError, export_nlu_bundle, sha256
from nlu_models.inference import NLUInterpreter
from tests.entry_points.conftest import compose_config

NLU_FILES = {"manifest.json", "config.json", "labels.json", "featurizers.json",
             "model.safetensors"}
POLICY_FILES = NLU_FILES | {"policies.json", "domain.yml"}
TEXTS = ["hi slice", "hello there!", "ok bye then", "yes that works", "no thank you",
         "are you a bot?", "what can you do?", "two large pepperoni pizzas to Berlin please",
         "I want to order a small margherita", "swap the olives for mushrooms",
         "can you add bacon", "deliver it to 12 Main Street"]


@pytest.fixture(scope="module")
def nlu(tmp_path_factory):
    """(checkpoint, bundle) of the tiny DIET; the run writes reports/ (metrics=auto reads them)."""
    out = tmp_path_factory.mktemp("diet")
    train(compose_config("train", ["experiment=diet_tiny"], out))
    ckpt = out / "checkpoints" / "last.ckpt"
    return ckpt, export_nlu_bundle(ckpt, out / "bundle", metrics={"val/intent_f1": 0.5})


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """(checkpoint, bundle) of the tiny rules + memoization + TED ensemble, without reports."""
    out = tmp_path_factory.mktemp("ted")
    train(compose_config("train", ["experiment=ted_tiny", "evaluate=false"], out))
    ckpt = out / "checkpoints" / "last.ckpt"
    return ckpt, export_policy_bundle(ckpt, out / "bundle")


def _manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


@pytest.mark.parametrize("which,files,kind,model_class", [
    ("nlu", NLU_FILES, "nlu", "DIETModel"), ("policy", POLICY_FILES, "policy", "TEDModel")])
def test_bundle_holds_the_documented_files(which, files, kind, model_class, request):
    ckpt, bundle = request.getfixturevalue(which)
    assert {p.name for p in bundle.iterdir()} == files
    manifest = _manifest(bundle)
    assert manifest["format_version"] == 1 and manifest["kind"] == kind
    assert manifest["model_class"] == model_class
    assert {"created", "dialab_version", "torch_version"} <= set(manifest)
    listed = {entry["name"]: entry["sha256"] for entry in manifest["files"]}
    assert set(listed) == files - {"manifest.json"}
    assert all(sha256(bundle / name) == digest for name, digest in listed.items())
    # only the model's weights: no optimizer state, no "model." prefix
    weights = load_file(bundle / "model.safetensors")
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert set(weights) == {k.removeprefix("model.") for k in state}


def test_nlu_bundle_parses_like_the_checkpoint(nlu):
    ckpt, bundle = nlu
    expected, got = NLUInterpreter.load(ckpt), NLUInterpreter.load(bundle)
    assert got.labels == expected.labels and got.model.config == expected.model.config
    assert _manifest(bundle)["metrics"] == {"val/intent_f1": 0.5}
    (want_results, want_raw), (have_results, have_raw) = _parse(expected), _parse(got)
    for want, have in zip(want_results, have_results):
        assert have["intent"]["name"] == want["intent"]["name"]
        assert have["intent"]["confidence"] == pytest.approx(want["intent"]["confidence"],
                                                             abs=1e-6)
        assert [r["name"] for r in have["intent_ranking"]] == \
            [r["name"] for r in want["intent_ranking"]]
        assert _spans(have["entities"]) == _spans(want["entities"])
    # the tiny twin finds few entities, so compare the tagger's raw output too
    torch.testing.assert_close(have_raw.intent_confidences, want_raw.intent_confidences,
                               atol=1e-6, rtol=0)
    assert have_raw.tags.keys() == want_raw.tags.keys() and "entity" in have_raw.tags
    for head in want_raw.tags:
        assert torch.equal(have_raw.tags[head], want_raw.tags[head])
        torch.testing.assert_close(have_raw.tag_confidences[head],
                                   want_raw.tag_confidences[head], atol=1e-6, rtol=0)


def _parse(interpreter: NLUInterpreter):
    """The parse results of TEXTS and the model's raw prediction for them (one batch)."""
    seen = []
    predict = interpreter.model.predict
    interpreter.model.predict = lambda inputs: seen.append(predict(inputs)) or seen[-1]
    results = interpreter.parse(TEXTS)
    assert len(seen) == 1
    return results, seen[0]


def _spans(entities) -> list:
    return [{k: v for k, v in e.items() if not k.startswith("confidence")} for e in entities]


def test_policy_bundle_predicts_like_the_checkpoint(policy):
    ckpt, bundle = policy
    expected, got = DialoguePolicy.load(ckpt), DialoguePolicy.load(bundle)
    assert [p.name for p in got.ensemble.policies] == [p.name for p in expected.ensemble.policies]
    assert got.domain.actions == expected.domain.actions and got.actions == expected.actions
    bot = load_bot("data/demo_bot")
    checked = 0
    for story in bot.test_stories.stories:
        tracker = Tracker(story.name, bot.domain.slots, name=story.name)
        for position, (event, _) in enumerate(story_events(story, bot.domain)):
            if isinstance(event, ActionExecuted) and position > 0:
                want, have = expected.predict(tracker), got.predict(tracker)
                assert (have.action, have.policy) == (want.action, want.policy)
                assert have.confidence == pytest.approx(want.confidence, abs=1e-6)
                ted_want = expected.ensemble.policies[-1].predict(tracker).probabilities
                ted_have = got.ensemble.policies[-1].predict(tracker).probabilities
                assert ted_have == pytest.approx(ted_want, abs=1e-6)
                checked += 1
            tracker.update(event)
    assert checked > 20


def test_loading_a_bundle_unpickles_nothing(nlu, policy, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("bundle loading must not unpickle")

    for module, name in ((torch, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    assert NLUInterpreter.load(nlu[1]).parse("hi")["intent"] is not None
    assert DialoguePolicy.load(policy[1]).domain is not None


@pytest.mark.parametrize("which,load", [("nlu", NLUInterpreter.load),
                                        ("policy", DialoguePolicy.load)])
def test_an_edited_bundle_fails_its_sha256(which, load, request, tmp_path):
    edited = shutil.copytree(request.getfixturevalue(which)[1], tmp_path / "bundle")
    with open(edited / "labels.json", "a") as handle:
        handle.write(" ")
    with pytest.raises(BundleError, match=r"labels\.json does not match its sha256"):
        load(edited)
    (edited / "labels.json").unlink()
    with pytest.raises(BundleError, match="labels.json is listed in manifest.json but missing"):
        load(edited)


def test_wrong_kind_and_unknown_inputs_give_clear_errors(nlu, policy, tmp_path):
    with pytest.raises(BundleError, match="is a policy bundle.*use DialoguePolicy.load"):
        NLUInterpreter.load(policy[1])
    with pytest.raises(BundleError, match="is a nlu bundle.*use NLUInterpreter.load"):
        DialoguePolicy.load(nlu[1])
    with pytest.raises(BundleError, match="not an export bundle"):
        NLUInterpreter.load(tmp_path)
    torch.save({"state_dict": {}, "hyper_parameters": {}}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="neither a DIET checkpoint .* nor a TED one"):
        export_bundle(tmp_path / "other.ckpt", tmp_path / "out")


def test_export_entry_point_detects_the_kind_and_records_run_metrics(nlu, policy, tmp_path,
                                                                     capsys):
    for (ckpt, _), kind in ((nlu, "nlu"), (policy, "policy")):
        cfg = compose_config("export", [f"ckpt_path={ckpt}"], tmp_path / kind)
        bundle = export(cfg)
        assert bundle == tmp_path / kind / "bundle"
        manifest = _manifest(bundle)
        assert manifest["kind"] == kind
        printed = capsys.readouterr().out
        assert str(bundle) in printed and "model.safetensors" in printed
    summary = json.loads((nlu[0].parents[1] / "reports" / "summary.json").read_text())
    assert _manifest(tmp_path / "nlu" / "bundle")["metrics"] == summary
    assert "metrics" not in _manifest(tmp_path / "policy" / "bundle")  # trained without reports


def test_exporting_over_an_earlier_bundle_replaces_it(nlu, policy, tmp_path):
    folder = shutil.copytree(policy[1], tmp_path / "bundle")
    export_bundle(nlu[0], folder)
    assert {p.name for p in folder.iterdir()} == NLU_FILES
    assert NLUInterpreter.load(folder).labels == NLUInterpreter.load(nlu[1]).labels


def test_dialab_export_hands_off_to_the_entry_point():
    from dialogue_models.cli import _build_parser

    args = _build_parser().parse_args(["export", "ckpt_path=x.ckpt", "out=b"])
    assert args.module == "experiments.export" and args.overrides == ["ckpt_path=x.ckpt", "out=b"]


def test_bundle_loaders_import_neither_lightning_nor_hydra(nlu, policy):
    code = (
        "import sys\n"
        "from nlu_models.inference import NLUInterpreter\n"
        "from dialogue_models.inference import DialoguePolicy\n"
        f"NLUInterpreter.load({str(nlu[1])!r}).parse('hi')\n"
        f"DialoguePolicy.load({str(policy[1])!r})\n"
        "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf')"
        " if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
