"""``OnnxNLUInterpreter``: an ``nlu`` bundle's ONNX graph run with onnxruntime — no torch.

```python
from nlu_models.onnx_runtime import load_interpreter
nlu = load_interpreter("bundles/demo")           # ONNX when the bundle has model.onnx, else torch
nlu.parse("two large margheritas to Berlin")     # the same result as NLUInterpreter.parse
```

The path: the bundle's JSON featurizers (numpy) → flat sparse bags with their bag indices →
``model.onnx`` (intent confidences and CRF emission scores, see :mod:`nlu_models.onnx_export`)
→ :func:`viterbi_decode` in numpy with the transitions from ``onnx.json`` → Rasa's parse
result, decoded by :class:`~nlu_models.diet.labels.DIETLabels` as :class:`NLUInterpreter` does.
A bundle with a response selector has its graph too (``response_selector.model.onnx``), run on
the same inputs.

Nothing here imports torch, and neither does reading the bundle, the sparse featurizers or the
labels. A bundle whose featurizers include a dense Hugging Face encoder still runs, but its
featurizer imports torch (and transformers) to compute the dense vectors: only sparse-feature
bundles are torch-free.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlu_models.data.schema import Message
from nlu_models.diet.labels import DIETLabels
from nlu_models.export import SELECTOR_CONFIG, SELECTOR_PREFIX, open_bundle
from nlu_models.fallback import FILENAME as FALLBACK_FILE
from nlu_models.fallback import (FallbackConfig, FallbackOption, apply_fallback,
                                 chosen_fallback)
from nlu_models.featurize import FeaturizerPipeline, MessageFeatures

ONNX_FILE, INT8_FILE, META_FILE = "model.onnx", "model.int8.onnx", "onnx.json"
META_FORMAT, META_VERSION = "dialab.onnx", 1
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
RUN_SIZE = 16  # messages per model run at inference (see length_sorted_runs)


class OnnxNLUInterpreter:
    """Same ``parse`` / ``parse_messages`` results as :class:`~nlu_models.inference.
    NLUInterpreter`, from the bundle's ONNX graph (``int8``: its quantized variant), with the
    same ``fallback`` (Rasa's ``FallbackClassifier``, :mod:`nlu_models.fallback`)."""

    def __init__(self, session: Any, pipeline: FeaturizerPipeline, labels: DIETLabels,
                 meta: dict[str, Any], batch_size: int = RUN_SIZE,
                 fallback: FallbackConfig | None = None,
                 selector: tuple[Any, dict[str, Any]] | None = None) -> None:
        self.session = session
        self.selector = selector  # the response selector's (session, onnx.json), if any
        self.pipeline = pipeline
        self.labels = labels
        self.meta = meta
        self.batch_size = batch_size
        self.fallback = fallback
        self.input_names = list(meta["inputs"])
        self.output_names = list(meta["outputs"])
        self.ranking_length = int(meta["ranking_length"])
        self.multi_label_threshold = float(meta.get("multi_label_threshold", 0.5))
        self.transitions = {h: np.asarray(e["transitions"], dtype=np.float32)
                            for h, e in meta["heads"].items()}
        self.tag_terms = {h: np.asarray(e["entity_tag_emissions"], dtype=np.float32)
                          for h, e in meta["heads"].items() if "entity_tag_emissions" in e}

    # ---- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, int8: bool = False, num_threads: int | None = None,
             providers: Sequence[str] | None = None, fallback: FallbackOption = None
             ) -> "OnnxNLUInterpreter":
        """From an ``nlu`` bundle exported with ``onnx=True`` (``int8``: with ``int8=True``);
        every file is checked against the manifest's sha256. ``num_threads`` sets
        onnxruntime's intra-op threads (default: its own choice). ``fallback``: None applies
        the bundle's ``fallback.json`` (if any), False none, True / a mapping / a
        :class:`~nlu_models.fallback.FallbackConfig` that one."""
        import onnxruntime as ort

        from nlu_models.export import BundleError

        bundle = open_bundle(path, "nlu")
        name = INT8_FILE if int8 else ONNX_FILE
        if not (bundle.has(name) and bundle.has(META_FILE)):
            flag = "onnx=true int8=true" if int8 else "onnx=true"
            raise BundleError(f"{bundle.path} has no {name}: export it with {flag}, or load "
                              "it with NLUInterpreter.load (torch)")
        meta = bundle.json(META_FILE)
        if meta.get("format") != META_FORMAT or meta.get("version") != META_VERSION:
            raise BundleError(f"{bundle.path / META_FILE} is not a {META_FORMAT} "
                              f"v{META_VERSION} document")
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        providers = list(providers or ["CPUExecutionProvider"])
        session = ort.InferenceSession(str(bundle.path / name), options, providers=providers)
        selector = None
        if bundle.has(SELECTOR_CONFIG):
            if not bundle.has(SELECTOR_PREFIX + name):
                raise BundleError(f"{bundle.path} has a response selector but no "
                                  f"{SELECTOR_PREFIX + name}: export it again")
            selector = (ort.InferenceSession(str(bundle.path / (SELECTOR_PREFIX + name)),
                                             options, providers=providers),
                        bundle.json(SELECTOR_PREFIX + META_FILE))
        pipeline = FeaturizerPipeline.from_dict(bundle.json("featurizers.json"))
        stored = bundle.json(FALLBACK_FILE) if bundle.has(FALLBACK_FILE) else None
        return cls(session, pipeline, DIETLabels.from_dict(bundle.json("labels.json")), meta,
                   fallback=chosen_fallback(fallback, stored), selector=selector)

    # ---- parsing ------------------------------------------------------------------------------
    def parse(self, text: str | Sequence[str]) -> dict[str, Any] | list[dict[str, Any]]:
        """One Rasa parse result for a string, a list of them for a list of strings."""
        if isinstance(text, str):
            return self.parse_messages([Message(text)])[0]
        return self.parse_messages([Message(t) for t in text])

    def parse_messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        dense = "seq_dense" in self.input_names
        features = self.pipeline.transform_many(list(messages), dense_vectors=dense)
        results: list[dict[str, Any]] = [{} for _ in messages]
        for indices in length_sorted_runs([f.num_tokens for f in features], self.batch_size):
            chunk = [features[i] for i in indices]
            feeds = batch_inputs(chunk, self.input_names)
            raw = self.run(feeds)
            responses = self.select_responses(feeds)
            answers = self._results([messages[i] for i in indices], chunk, raw, responses)
            for i, answer in zip(indices, answers):
                results[i] = answer
        return apply_fallback(results, self.fallback)

    def select_responses(self, feeds: dict[str, np.ndarray]) -> np.ndarray | None:
        """The response selector's ranked confidences ``(B, keys)``; None without one."""
        if self.selector is None:
            return None
        session, meta = self.selector
        confidences, = session.run(["intent_confidences"],
                                   {n: feeds[n] for n in meta["inputs"]})
        return rank_intents(confidences, int(meta["ranking_length"]))

    def predict(self, features: Sequence[MessageFeatures]) -> dict[str, np.ndarray]:
        """One batch through the graph and the Viterbi: ``intent_confidences (B, L)`` and per
        head ``{head}_tags`` / ``{head}_confidences (B, T)`` (as ``DIETModel.predict``)."""
        return self.run(batch_inputs(features, self.input_names))

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`predict` from the graph's inputs (:func:`batch_inputs`)."""
        outputs = dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
        mask = feeds["mask"]
        raw: dict[str, np.ndarray] = {}
        if "intent_confidences" in outputs:
            raw["intent_confidences"] = outputs["intent_confidences"]
        entity_tags = None
        for head in self.meta["heads"]:
            emissions = outputs[f"{head}_emissions"]
            if head in self.tag_terms:  # role/group: add the decoded entity tags' term
                emissions = emissions + self.tag_terms[head][entity_tags]
            tags, confidences = viterbi_decode(emissions, self.transitions[head], mask)
            raw[f"{head}_tags"], raw[f"{head}_confidences"] = tags, confidences
            if head == "entity":
                entity_tags = tags
        return raw

    def _results(self, messages: Sequence[Message], features: Sequence[MessageFeatures],
                 raw: dict[str, np.ndarray], responses: np.ndarray | None = None
                 ) -> list[dict[str, Any]]:
        ranked = None
        if "intent_confidences" in raw:
            ranked = rank_intents(raw["intent_confidences"], self.ranking_length)
        heads = list(self.meta["heads"])
        tags = {h: raw[f"{h}_tags"].tolist() for h in heads}
        confs = {h: raw[f"{h}_confidences"].tolist() for h in heads}
        out = []
        for b, (message, feats) in enumerate(zip(messages, features)):
            out.append(self.labels.parse_result(
                message.text, feats.tokens, None if ranked is None else ranked[b].tolist(),
                {h: t[b] for h, t in tags.items()}, {h: c[b] for h, c in confs.items()},
                None if responses is None else responses[b].tolist(),
                self.multi_label_threshold))
        return out


# ---- batching ----------------------------------------------------------------------------------
def length_sorted_runs(lengths: Sequence[int], size: int = RUN_SIZE) -> list[list[int]]:
    """The indices of messages with these token counts in model runs of at most ``size``,
    shortest first. Each run pads only to its own longest message, so a batch of mixed lengths
    costs little more than its real tokens (64 demo-bot test texts: 244 real tokens, 640 padded
    in one run, ~330 in runs of 16 sorted); padding never changes a prediction."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[first:first + size] for first in range(0, len(order), size)]


def batch_inputs(features: Sequence[MessageFeatures], names: Sequence[str]
                 ) -> dict[str, np.ndarray]:
    """The graph's inputs for a batch (only those in ``names``): the token mask, the sparse
    bags back to back with each entry's bag index (``b·T + t`` / ``b``), dense vectors padded."""
    lengths = [len(f.tokens) for f in features]
    b, t = len(features), max(max(lengths, default=0), 1)
    mask = np.arange(t)[None, :] < np.asarray(lengths)[:, None]                   # (B, T)
    feeds: dict[str, np.ndarray] = {"mask": mask}
    if "seq_ids" in names:
        feeds["seq_ids"] = _concat([f.seq_ids for f in features], np.int64)
        feeds["seq_values"] = _concat([f.seq_values for f in features], np.float32)
        feeds["seq_bags"] = _concat(
            [row * t + np.repeat(np.arange(len(f.seq_indptr) - 1), np.diff(f.seq_indptr))
             for row, f in enumerate(features)], np.int64)
    if "sent_ids" in names:
        feeds["sent_ids"] = _concat([f.sent_ids for f in features], np.int64)
        feeds["sent_values"] = _concat([f.sent_values for f in features], np.float32)
        feeds["sent_bags"] = _concat([np.full(len(f.sent_ids), row)
                                      for row, f in enumerate(features)], np.int64)
    if "seq_dense" in names:
        dim = features[0].sent_dense.shape[-1]
        seq_dense = np.zeros((b, t, dim), dtype=np.float32)
        for row, f in enumerate(features):
            seq_dense[row, :lengths[row]] = f.seq_dense[:lengths[row]]
        feeds["seq_dense"] = seq_dense
        feeds["sent_dense"] = np.stack([f.sent_dense for f in features]).astype(np.float32)
    return feeds


def _concat(arrays: Sequence[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate([np.zeros(0, dtype), *arrays]).astype(dtype, copy=False)


# ---- decoding ----------------------------------------------------------------------------------
def viterbi_decode(emissions: np.ndarray, transitions: np.ndarray, mask: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`nlu_models.modules.crf.CRF.decode` in numpy: the Viterbi path and Rasa's
    per-token confidences, both ``(B, T)``, padding tag 0 and confidence 0.

    ``emissions (B, T, L)``, ``transitions (L, L)`` indexed ``[from, to]``, ``mask (B, T)``
    True on each row's first ``length`` tokens. Ties resolve to the lowest tag, as torch's
    ``max``/``argmax`` do. Confidence: the softmax over tags of the Viterbi scores at each
    step (the max-product forward scores, emission included), read at the decoded tag.
    """
    emissions = np.asarray(emissions, dtype=np.float32)
    transitions = np.asarray(transitions, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    b, t, num_tags = emissions.shape
    if t == 0:
        return np.zeros((b, 0), dtype=np.int64), np.zeros((b, 0), dtype=np.float32)
    stay = np.broadcast_to(np.arange(num_tags), (b, num_tags))                   # (B, L)
    rows = np.arange(b)
    scores = np.empty((b, t, num_tags), dtype=np.float32)       # the Viterbi scores per step
    backpointers = np.empty((b, t, num_tags), dtype=np.int64)
    scores[:, 0] = alpha = emissions[:, 0]                                      # (B, L)
    for step in range(1, t):
        candidates = alpha[:, :, None] + transitions                             # (B, L, L)
        previous = candidates.argmax(axis=1)                                     # (B, L)
        active = mask[:, step, None]                                             # (B, 1)
        alpha = np.where(active, candidates.max(axis=1) + emissions[:, step], alpha)
        backpointers[:, step] = np.where(active, previous, stay)
        scores[:, step] = alpha
    tags = np.empty((b, t), dtype=np.int64)
    tags[:, -1] = current = alpha.argmax(axis=-1)                                # (B,)
    for step in range(t - 1, 0, -1):
        tags[:, step - 1] = current = backpointers[rows, step, current]
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    confidences = np.take_along_axis(probs, tags[..., None], axis=-1)[..., 0]    # (B, T)
    return np.where(mask, tags, 0), np.where(mask, confidences, 0.0).astype(np.float32)


def rank_intents(confidences: np.ndarray, ranking_length: int) -> np.ndarray:
    """:func:`nlu_models.diet.model.rank_intents` in numpy: zero all but the top
    ``ranking_length`` confidences per row (0 = keep all), without renormalising."""
    if ranking_length <= 0 or ranking_length >= confidences.shape[-1]:
        return confidences
    top = np.argsort(-confidences, axis=-1, kind="stable")[:, :ranking_length]
    ranked = np.zeros_like(confidences)
    np.put_along_axis(ranked, top, np.take_along_axis(confidences, top, axis=-1), axis=-1)
    return ranked


# ---- choosing a backend ------------------------------------------------------------------------
def has_onnx(path: str | Path, int8: bool = False) -> bool:
    """Whether ``path`` is a bundle whose manifest lists the (int8) ONNX graph."""
    import json

    manifest = Path(path) / "manifest.json"
    if not manifest.is_file():
        return False
    listed = {e["name"] for e in json.loads(manifest.read_text(encoding="utf-8"))["files"]}
    return {INT8_FILE if int8 else ONNX_FILE, META_FILE} <= listed


def load_interpreter(path: str | Path, backend: str = "auto", **options: Any) -> Any:
    """An NLU interpreter for a bundle (or, with ``torch``/``auto``, a ``.ckpt``):

    - ``"auto"``: :class:`OnnxNLUInterpreter` when the bundle has ``model.onnx``, else the torch
      :class:`~nlu_models.inference.NLUInterpreter` (which imports torch);
    - ``"torch"``: always :class:`~nlu_models.inference.NLUInterpreter`;
    - ``"onnx"`` / ``"onnx-int8"``: :class:`OnnxNLUInterpreter` on ``model.onnx`` /
      ``model.int8.onnx`` (a :class:`~nlu_models.export.BundleError` when missing).

    ``options`` go to the chosen class's ``load``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "auto":
        backend = "onnx" if has_onnx(path) else "torch"
    if backend == "torch":
        from nlu_models.inference import NLUInterpreter

        return NLUInterpreter.load(path, **options)
    return OnnxNLUInterpreter.load(path, int8=backend == "onnx-int8", **options)


__all__ = ["BACKENDS", "OnnxNLUInterpreter", "batch_inputs", "has_onnx", "load_interpreter",
           "length_sorted_runs", "rank_intents", "viterbi_decode"]
