"""DIET's ONNX graph in an ``nlu`` bundle and the torch-free :class:`OnnxNLUInterpreter`.

A tiny DIET (the ``diet_tiny`` model on the full demo bot, so the role head exists) trains once
per module and is exported with ``onnx=True, int8=True``. Checked here: the bundle lists the
ONNX files with their sha256; the graph has dynamic batch and token axes; the ONNX path parses
like the torch path — same intent names, rankings and entity spans, confidences within
``TOL = 1e-4`` (measured differences are ~1e-7: the graph's sparse projection sums in another
order than ``EmbeddingBag``); the numpy Viterbi equals the torch CRF's; the int8 graph's intent
accuracy on the demo bot's test NLU (printed with the fp32 one) is within 0.1 of fp32; and the
ONNX path imports no torch.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dialogue_models.project import load_bot
from experiments.export import export
from experiments.train import train
from nlu_models.diet.encoding import EncodedExample, collate
from nlu_models.diet.model import DIETConfig, DIETInputs, DIETModel
from nlu_models.export import BundleError, export_nlu_bundle, sha256
from nlu_models.fallback import FallbackConfig, is_fallback
from nlu_models.inference import NLUInterpreter
from nlu_models.modules.crf import CRF
from nlu_models.onnx_export import can_export, export_onnx, onnx_bundle_files
from nlu_models.onnx_runtime import (RUN_SIZE, OnnxNLUInterpreter, batch_inputs,
                                     length_sorted_runs, load_interpreter, viterbi_decode)
from tests.entry_points.conftest import compose_config

TOL = 1e-4
ONNX_FILES = {"model.onnx", "model.int8.onnx", "onnx.json"}
# the demo bot has a retrieval intent (faq/opening_hours, ...): its bundles hold the response
# selector too, its config beside DIET's and its own graphs beside DIET's
SELECTOR_FILES = {"response_selector.json"}
SELECTOR_ONNX_FILES = {"response_selector.model.onnx", "response_selector.model.int8.onnx",
                       "response_selector.onnx.json"}
NLU_FILES = {"manifest.json", "config.json", "labels.json", "featurizers.json",
             "model.safetensors"}
TEXTS = ["hi slice", "hello there!", "ok bye then", "yes that works", "no thank you",
         "are you a bot?", "what can you do?", "two large pepperoni pizzas to Berlin please",
         "I want to order a small margherita", "swap the olives for mushrooms",
         "can you add bacon", "deliver it to 12 Main Street", "what's the weather in Paris",
         "is my order on its way?", ""]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint, bundle with model.onnx + model.int8.onnx) of a tiny DIET on the demo bot."""
    out = tmp_path_factory.mktemp("diet_onnx")
    train(compose_config("train", ["experiment=diet_tiny", "data=demo_bot",
                                   "trainer.max_epochs=60", "evaluate=false"], out))
    ckpt = out / "checkpoints" / "last.ckpt"
    return ckpt, export_nlu_bundle(ckpt, out / "bundle", onnx=True, int8=True)


@pytest.fixture(scope="module")
def interpreters(trained):
    bundle = trained[1]
    return (load_interpreter(bundle, "torch"), load_interpreter(bundle, "onnx"),
            load_interpreter(bundle, "onnx-int8"))


def test_bundle_lists_the_onnx_files_with_their_sha256(trained, tmp_path):
    bundle = trained[1]
    assert {p.name for p in bundle.iterdir()} == \
        NLU_FILES | ONNX_FILES | SELECTOR_FILES | SELECTOR_ONNX_FILES
    manifest = json.loads((bundle / "manifest.json").read_text())
    listed = {entry["name"]: entry["sha256"] for entry in manifest["files"]}
    assert ONNX_FILES <= set(listed)
    assert all(sha256(bundle / name) == listed[name] for name in ONNX_FILES)
    meta = json.loads((bundle / "onnx.json").read_text())
    assert meta["outputs"] == ["intent_confidences", "entity_emissions", "role_emissions"]
    assert set(meta["heads"]) == {"entity", "role"}
    for name in ("model.onnx", "model.int8.onnx"):  # an edited graph is refused, by both paths
        edited = shutil.copytree(bundle, tmp_path / name)
        data = bytearray((edited / name).read_bytes())
        data[-1] ^= 1
        (edited / name).write_bytes(bytes(data))
        for load in (OnnxNLUInterpreter.load, NLUInterpreter.load):
            with pytest.raises(BundleError, match=rf"{name} does not match its sha256"):
                load(edited)
    assert (bundle / "model.int8.onnx").stat().st_size < (bundle / "model.onnx").stat().st_size


def test_graph_has_dynamic_batch_and_token_axes(interpreters):
    torch_nlu, onnx_nlu, _ = interpreters
    session = onnx_nlu.session
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["mask"] == ["batch", "tokens"]
    assert shapes["seq_ids"] == shapes["seq_bags"] == ["seq_nnz"]
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert outputs["intent_confidences"][0] == "batch"
    assert outputs["entity_emissions"][:2] == ["batch", "tokens"]
    for texts in (TEXTS[:1], TEXTS[5:12]):  # batch 1 of 2 tokens; batch 7 of up to 8 tokens
        features = onnx_nlu.pipeline.transform_many(texts)
        feeds = batch_inputs(features, onnx_nlu.input_names)
        got = dict(zip(onnx_nlu.output_names, session.run(None, feeds)))
        b, t = len(texts), max(len(f.tokens) for f in features)
        assert feeds["mask"].shape == (b, t)
        assert got["intent_confidences"].shape == (b, len(onnx_nlu.labels.intents))
        assert got["entity_emissions"].shape[:2] == got["role_emissions"].shape[:2] == (b, t)
        want = torch_nlu.model.predict(collate([EncodedExample(None, f, -1, {})
                                                for f in features]))
        np.testing.assert_allclose(got["intent_confidences"], want.intent_confidences.numpy(),
                                   atol=TOL, rtol=0)


def test_onnx_parses_like_torch(interpreters):
    """Same intents, rankings and entity spans; confidences within TOL (1e-4)."""
    torch_nlu, onnx_nlu, _ = interpreters
    want, have = torch_nlu.parse(TEXTS), onnx_nlu.parse(TEXTS)
    assert onnx_nlu.parse(TEXTS[0]) == have[0]
    for w, h in zip(want, have):
        assert h["text"] == w["text"]
        assert h["intent"]["name"] == w["intent"]["name"]
        assert h["intent"]["confidence"] == pytest.approx(w["intent"]["confidence"], abs=TOL)
        assert [r["name"] for r in h["intent_ranking"]] == [r["name"] for r in w["intent_ranking"]]
        assert [r["confidence"] for r in h["intent_ranking"]] == \
            pytest.approx([r["confidence"] for r in w["intent_ranking"]], abs=TOL)
        assert _spans(h["entities"]) == _spans(w["entities"])
        for he, we in zip(h["entities"], w["entities"]):
            for key in ("confidence_entity", "confidence_role"):
                assert he.get(key, 0.0) == pytest.approx(we.get(key, 0.0), abs=TOL)
    assert any(r["entities"] for r in want)
    # the raw tagger output too: the tiny model finds few entities and fewer roles
    features = onnx_nlu.pipeline.transform_many(TEXTS)
    raw = onnx_nlu.predict(features)
    ref = torch_nlu.model.predict(collate([EncodedExample(None, f, -1, {}) for f in features]))
    for head in ("entity", "role"):
        np.testing.assert_array_equal(raw[f"{head}_tags"], ref.tags[head].numpy())
        np.testing.assert_allclose(raw[f"{head}_confidences"], ref.tag_confidences[head].numpy(),
                                   atol=TOL, rtol=0)


def test_sorted_runs_answer_in_input_order(interpreters):
    """A batch runs in length-sorted runs of ``batch_size``: the answers come back in the input
    order and equal each text parsed alone (int8 within 0.02: dynamic quantization scales
    the activations by the whole run's range, so its numbers depend on the run)."""
    assert length_sorted_runs([3, 1, 2, 1], 2) == [[1, 3], [2, 0]]
    for interpreter, tolerance in zip(interpreters, (TOL, TOL, 0.02)):
        assert interpreter.parse([]) == []
        interpreter.batch_size = 4
        try:
            batched = interpreter.parse(TEXTS)
        finally:
            interpreter.batch_size = RUN_SIZE
        for text, answer in zip(TEXTS, batched):
            alone = interpreter.parse(text)
            assert answer["text"] == text
            ranking = {r["name"]: r["confidence"] for r in answer["intent_ranking"]}
            for expected in alone["intent_ranking"]:
                assert ranking.get(expected["name"], 0.0) == pytest.approx(
                    expected["confidence"], abs=tolerance)
            if tolerance == TOL:
                assert _spans(answer["entities"]) == _spans(alone["entities"])


def _spans(entities) -> list:
    return [{k: v for k, v in e.items() if not k.startswith("confidence")} for e in entities]


def test_onnx_applies_the_fallback_as_torch_does(trained):
    """Rasa's FallbackClassifier, given when loading (this bundle stores none): the same
    ``nlu_fallback`` results on both paths."""
    bundle = trained[1]
    options = {"threshold": 0.5, "ambiguity_threshold": 0.2}
    want = load_interpreter(bundle, "torch", fallback=options).parse(TEXTS)
    onnx_nlu = load_interpreter(bundle, "onnx", fallback=options)
    have = onnx_nlu.parse(TEXTS)
    assert [[r["name"] for r in h["intent_ranking"]] for h in have] == \
        [[r["name"] for r in w["intent_ranking"]] for w in want]
    fell = [is_fallback(h) for h in have]
    assert any(fell) and not all(fell), fell
    assert onnx_nlu.fallback == FallbackConfig(0.5, 0.2)
    assert load_interpreter(bundle, "onnx").fallback is None


@pytest.mark.parametrize("overrides", [
    # role + group heads on the decoded entity tags, relative attention, hidden layers, dense
    # inputs without sentence sparse features (→ the concat projections)
    dict(num_role_tags=5, num_group_tags=3, use_key_relative_attention=True,
         use_value_relative_attention=True, max_relative_position=2, hidden_layers_text=[24],
         hidden_layers_label=[6], dense_dim=6, sent_sparse_dim=0),
    # no transformer, softmax intent loss, margin-free cosine similarities, ranking of 3
    dict(number_of_transformer_layers=0, intent_loss="softmax", ranking_length=3),
    dict(loss_type="margin", unidirectional_encoder=True, entity_recognition=False),
    # multi-label intents: independent sigmoid confidences with the learned bias
    dict(intent_loss="sigmoid", multi_label_threshold=0.3, entity_recognition=False),
])
def test_random_diets_run_the_same_in_onnx(overrides):
    """Untrained DIETs of other shapes: the ONNX graph + numpy Viterbi equal DIETModel.predict
    (tags exactly, scores within TOL) on random sparse bags, empty bags included."""
    torch.manual_seed(0)
    config = DIETConfig(**{**dict(seq_sparse_dim=40, sent_sparse_dim=30, num_intents=6,
                                  num_entity_tags=9, transformer_size=16,
                                  number_of_attention_heads=2, dense_dimension_text=12,
                                  concat_dimension_text=14, embedding_dimension=8,
                                  dense_dimension_label=8, number_of_transformer_layers=2),
                              **overrides})
    model = DIETModel(config).eval()
    files = export_onnx(model)
    interpreter = _interpreter(files)
    rng = np.random.default_rng(0)
    for lengths in ([4, 1, 6, 0, 3, 6, 2], [1], [3, 3]):
        inputs, feeds = _random_batch(config, lengths, rng)
        want, have = model.predict(inputs), interpreter.run(feeds)
        if config.intent_classification:
            np.testing.assert_allclose(have["intent_confidences"],
                                       want.intent_confidences.numpy(), atol=TOL, rtol=0)
        assert {k.rsplit("_", 1)[0] for k in have if k.endswith("_tags")} == set(want.tags)
        for head in want.tags:
            np.testing.assert_array_equal(have[f"{head}_tags"], want.tags[head].numpy())
            np.testing.assert_allclose(have[f"{head}_confidences"],
                                       want.tag_confidences[head].numpy(), atol=TOL, rtol=0)


def _interpreter(files) -> OnnxNLUInterpreter:
    import onnxruntime as ort

    session = ort.InferenceSession(files["model.onnx"], providers=["CPUExecutionProvider"])
    return OnnxNLUInterpreter(session, None, None, files["onnx.json"])


def _random_batch(config: DIETConfig, lengths: list[int], rng):
    """The same random batch as DIETInputs (flat bags + offsets) and as the graph's feeds."""
    b, t = len(lengths), max(max(lengths), 1)
    mask = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
    inputs, feeds = DIETInputs(mask=torch.from_numpy(mask)), {"mask": mask}
    for kind, bags_shape, dim in (("seq", (b, t), config.seq_sparse_dim),
                                  ("sent", (b,), config.sent_sparse_dim)):
        real = mask if kind == "seq" else np.ones(b, bool)
        sizes = np.where(real, rng.integers(0, 5, bags_shape), 0).ravel()  # some empty bags
        ids = rng.integers(1, max(dim, 1) + 1, sizes.sum())
        values = rng.random(sizes.sum(), dtype=np.float32)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        setattr(inputs, f"{kind}_ids", torch.from_numpy(ids))
        setattr(inputs, f"{kind}_values", torch.from_numpy(values))
        setattr(inputs, f"{kind}_offsets", torch.from_numpy(offsets))
        if dim:
            feeds.update({f"{kind}_ids": ids, f"{kind}_values": values,
                          f"{kind}_bags": np.repeat(np.arange(len(sizes)), sizes)})
    if config.dense_dim:
        seq_dense = rng.standard_normal((b, t, config.dense_dim), dtype=np.float32)
        sent_dense = rng.standard_normal((b, config.dense_dim), dtype=np.float32)
        inputs.seq_dense, inputs.sent_dense = torch.from_numpy(seq_dense), torch.from_numpy(
            sent_dense)
        feeds.update(seq_dense=seq_dense, sent_dense=sent_dense)
    return inputs, feeds


@pytest.mark.parametrize("seed", range(5))
def test_numpy_viterbi_equals_the_torch_crf(seed):
    generator = torch.Generator().manual_seed(seed)
    b, t, tags = 8, 1 + seed * 3, 2 + seed * 2
    crf = CRF(tags)
    with torch.no_grad():
        crf.transitions.copy_(torch.randn(tags, tags, generator=generator))
    emissions = torch.randn(b, t, tags, generator=generator) * 3
    lengths = torch.randint(0, t + 1, (b,), generator=generator)
    lengths[0], lengths[1] = t, 0
    with torch.no_grad():
        want_tags, want_conf = crf.decode(emissions, lengths)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).numpy()
    have_tags, have_conf = viterbi_decode(emissions.numpy(), crf.transitions.detach().numpy(),
                                          mask)
    np.testing.assert_array_equal(have_tags, want_tags.numpy())
    np.testing.assert_allclose(have_conf, want_conf.numpy(), atol=1e-6, rtol=0)
    empty_tags, empty_conf = viterbi_decode(np.zeros((2, 0, tags)), np.zeros((tags, tags)),
                                            np.zeros((2, 0), bool))
    assert empty_tags.shape == empty_conf.shape == (2, 0)


def test_int8_intent_accuracy_on_the_demo_test_set(interpreters):
    """Measured, printed, and loosely bounded: int8 ≥ fp32 − 0.1 on the tiny model."""
    messages = [m for m in load_bot("data/demo_bot").test_nlu.examples if m.intent]
    texts = [m.text for m in messages]
    accuracy = {}
    for name, nlu in zip(("torch", "onnx", "onnx-int8"), interpreters):
        results = nlu.parse(texts)
        accuracy[name] = np.mean([r["intent"]["name"] == m.intent
                                  for r, m in zip(results, messages)])
    print(f"\nintent accuracy on {len(messages)} demo test messages: "
          + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
    assert accuracy["onnx"] == accuracy["torch"]
    assert accuracy["onnx-int8"] >= accuracy["onnx"] - 0.1


def test_the_onnx_path_imports_no_torch(trained):
    code = ("import sys\n"
            "from nlu_models.onnx_runtime import OnnxNLUInterpreter, load_interpreter\n"
            f"nlu = load_interpreter({str(trained[1])!r})\n"
            "assert isinstance(nlu, OnnxNLUInterpreter), type(nlu)\n"
            "result = nlu.parse(['two large pepperoni pizzas please', 'hi'])\n"
            "assert result[0]['intent']['name'], result\n"
            f"load_interpreter({str(trained[1])!r}, 'onnx-int8').parse('hi')\n"
            "print(sorted(m for m in ('torch', 'lightning', 'hydra', 'safetensors')"
            " if m in sys.modules), 'onnxruntime' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "[] True"


def test_load_interpreter_picks_the_backend(trained, tmp_path):
    ckpt, bundle = trained
    assert isinstance(load_interpreter(bundle), OnnxNLUInterpreter)
    plain = export_nlu_bundle(ckpt, tmp_path / "plain")          # no ONNX graph
    assert {p.name for p in plain.iterdir()} == NLU_FILES | SELECTOR_FILES
    assert isinstance(load_interpreter(plain), NLUInterpreter)
    assert isinstance(load_interpreter(ckpt), NLUInterpreter)
    with pytest.raises(BundleError, match="has no model.onnx: export it with onnx=true"):
        load_interpreter(plain, "onnx")
    fp32_only = export_nlu_bundle(ckpt, tmp_path / "fp32", onnx=True)
    assert {p.name for p in fp32_only.iterdir()} == NLU_FILES | SELECTOR_FILES | {
        "model.onnx", "onnx.json", "response_selector.model.onnx", "response_selector.onnx.json"}
    with pytest.raises(BundleError, match="has no model.int8.onnx"):
        load_interpreter(fp32_only, "onnx-int8")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_interpreter(bundle, "tensorrt")
    with pytest.raises(ValueError, match="int8=True .* needs onnx=True"):
        export_nlu_bundle(ckpt, tmp_path / "bad", int8=True)


def test_a_fine_tuned_encoder_is_not_exported(caplog):
    model = SimpleNamespace(config=SimpleNamespace(finetune_encoder=True))
    assert "fine-tunes its Hugging Face encoder" in can_export(model)
    assert onnx_bundle_files(model, int8=True) == {}
    assert "no ONNX graph in this bundle" in caplog.text


def test_export_entry_point_writes_the_onnx_files(trained, tmp_path, capsys):
    cfg = compose_config("export", [f"ckpt_path={trained[0]}"], tmp_path)
    assert cfg.onnx is True and cfg.int8 is True
    bundle = export(cfg)
    assert {p.name for p in bundle.iterdir()} == \
        NLU_FILES | ONNX_FILES | SELECTOR_FILES | SELECTOR_ONNX_FILES
    assert "model.int8.onnx" in capsys.readouterr().out
    assert isinstance(load_interpreter(bundle), OnnxNLUInterpreter)
