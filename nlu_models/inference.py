"""``NLUInterpreter``: text in, Rasa's parse result out. Needs torch and the package's own code —
no Lightning, no Hydra.

```python
nlu = NLUInterpreter.load("outputs/.../bundle")   # or a training checkpoint (.ckpt)
nlu.parse("two large margheritas to Berlin")
# {"text": ..., "intent": {"name": "order_pizza", "confidence": 0.97},
#  "intent_ranking": [...], "entities": [{"entity": "size", "start": 4, ...}]}
```

A bundle exported with ``onnx=True`` also runs without torch:
:class:`~nlu_models.onnx_runtime.OnnxNLUInterpreter` gives the same results, and
``load_interpreter(path, backend="auto" | "torch" | "onnx" | "onnx-int8")`` picks one
(import it from :mod:`nlu_models.onnx_runtime` to keep torch out of the process).

``fallback`` applies Rasa's ``FallbackClassifier`` (:mod:`nlu_models.fallback`) to every
result: by default the one the checkpoint / bundle carries (none unless the training pipeline
listed it); ``fallback=False`` turns it off, ``True`` uses Rasa's defaults (0.3, 0.1), a
mapping or :class:`~nlu_models.fallback.FallbackConfig` sets the thresholds.

A model trained on retrieval intents (``faq/ask_name``) carries a response selector
(:mod:`nlu_models.diet.response_selector`): every result then has Rasa's ``response_selector``
entry with the selected response key, its confidence, ranking and responses.

A multi-label model (``intent_loss: sigmoid``) names the predicted set of intents (those at or
above ``multi_label_threshold``) as ``intent`` (``{"name": "a+b", "confidence": lowest}``),
ranks the atomic intents by their independent confidences, and lists the set under ``intents``
(:meth:`~nlu_models.diet.labels.DIETLabels.multi_label_intents`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from nlu_models.data.schema import Message
from nlu_models.diet.encoding import EncodedExample, collate_fn
from nlu_models.diet.labels import DIETLabels
from nlu_models.diet.model import DIETConfig, DIETModel, rank_intents
from nlu_models.diet.response_selector import selector_inputs
from nlu_models.export import SELECTOR_CONFIG, SELECTOR_PREFIX, open_bundle
from nlu_models.fallback import FILENAME as FALLBACK_FILE
from nlu_models.fallback import (FallbackConfig, FallbackOption, apply_fallback,
                                 chosen_fallback)
from nlu_models.featurize import FeaturizerPipeline
from nlu_models.onnx_runtime import RUN_SIZE, length_sorted_runs
from nlu_models.onnx_runtime import load_interpreter  # noqa: F401  (re-exported)

CHECKPOINT_FEATURIZERS_KEY = "dialab_featurizers"


class NLUInterpreter:
    def __init__(self, model: DIETModel, pipeline: FeaturizerPipeline, labels: DIETLabels,
                 batch_size: int = RUN_SIZE, fallback: FallbackConfig | None = None,
                 response_selector: DIETModel | None = None) -> None:
        self.model = model.eval()
        self.response_selector = response_selector.eval() if response_selector else None
        self.pipeline = pipeline
        self.labels = labels
        self.batch_size = batch_size
        self.fallback = fallback

    # ---- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", fallback: FallbackOption = None
             ) -> "NLUInterpreter":
        """From an export bundle folder (``dialab export``: JSON + safetensors, no pickle) or a
        training checkpoint (``*.ckpt``) written by :class:`DIETLitModule`; ``fallback`` as in
        the module doc (None: the stored one)."""
        path = Path(path)
        if path.is_dir():
            return cls.from_bundle(path, device, fallback)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        checkpoint = torch.load(path, map_location=device, weights_only=False)
        return cls.from_checkpoint_dict(checkpoint, fallback)

    @classmethod
    def from_bundle(cls, path: str | Path, device: str = "cpu", fallback: FallbackOption = None
                    ) -> "NLUInterpreter":
        """From an ``nlu`` export bundle; every file is checked against the manifest's sha256."""
        bundle = open_bundle(path, "nlu")
        weights = bundle.weights()
        model = _loaded(bundle.json("config.json"), weights, "")
        selector = None
        if bundle.has(SELECTOR_CONFIG):
            selector = _loaded(bundle.json(SELECTOR_CONFIG), weights, SELECTOR_PREFIX).to(device)
        pipeline = FeaturizerPipeline.from_dict(bundle.json("featurizers.json"))
        stored = bundle.json(FALLBACK_FILE) if bundle.has(FALLBACK_FILE) else None
        return cls(model.to(device), pipeline, DIETLabels.from_dict(bundle.json("labels.json")),
                   fallback=chosen_fallback(fallback, stored), response_selector=selector)

    @classmethod
    def from_checkpoint_dict(cls, checkpoint: dict[str, Any], fallback: FallbackOption = None
                             ) -> "NLUInterpreter":
        if CHECKPOINT_FEATURIZERS_KEY not in checkpoint:
            raise ValueError("this checkpoint was not written by dialab's DIETLitModule "
                             f"(no '{CHECKPOINT_FEATURIZERS_KEY}' entry)")
        hparams = checkpoint["hyper_parameters"]
        state = checkpoint["state_dict"]
        model = _loaded(hparams["config"], state, "model.")
        selector = None
        if hparams.get("response_selector") is not None:
            selector = _loaded(hparams["response_selector"], state, SELECTOR_PREFIX)
        pipeline = FeaturizerPipeline.from_dict(checkpoint[CHECKPOINT_FEATURIZERS_KEY])
        return cls(model, pipeline, DIETLabels.from_dict(dict(hparams["labels"])),
                   fallback=chosen_fallback(fallback, hparams.get("fallback")),
                   response_selector=selector)

    # ---- parsing ------------------------------------------------------------------------------
    def parse(self, text: str | Sequence[str]) -> dict[str, Any] | list[dict[str, Any]]:
        """One Rasa parse result for a string, a list of them for a list of strings."""
        if isinstance(text, str):
            return self.parse_messages([Message(text)])[0]
        return self.parse_messages([Message(t) for t in text])

    def parse_messages(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        finetune = self.model.config.finetune_encoder  # the model runs the encoder itself
        features = self.pipeline.transform_many(list(messages), dense_vectors=not finetune)
        examples = [EncodedExample(m, f, -1, {}) for m, f in zip(messages, features)]
        collate = collate_fn(self.pipeline, finetune)
        results: list[dict[str, Any]] = [{} for _ in messages]
        device = next(self.model.parameters()).device
        for indices in length_sorted_runs([f.num_tokens for f in features], self.batch_size):
            chunk = [examples[i] for i in indices]
            inputs = _to_device(collate(chunk), device)
            prediction = self.model.predict(inputs)
            responses = None
            if self.response_selector is not None:
                selected = self.response_selector.predict(selector_inputs(self.model, inputs))
                responses = self._ranked(self.response_selector, selected)
            for i, answer in zip(indices, self._results(chunk, prediction, responses)):
                results[i] = answer
        return apply_fallback(results, self.fallback)

    @staticmethod
    def _ranked(model: DIETModel, prediction) -> list[list[float]] | None:
        if prediction.intent_confidences is None:
            return None
        return rank_intents(prediction.intent_confidences.float().cpu(),
                            model.config.ranking_length).tolist()

    def _results(self, chunk: Sequence[EncodedExample], prediction,
                 responses: list[list[float]] | None = None) -> list[dict[str, Any]]:
        out = []
        ranked = self._ranked(self.model, prediction)
        tags = {h: t.cpu().tolist() for h, t in prediction.tags.items()}
        confs = {h: c.float().cpu().tolist() for h, c in prediction.tag_confidences.items()}
        for b, example in enumerate(chunk):
            out.append(self.labels.parse_result(
                example.message.text, example.features.tokens,
                None if ranked is None else ranked[b],
                {h: t[b] for h, t in tags.items()}, {h: c[b] for h, c in confs.items()},
                None if responses is None else responses[b],
                self.model.config.multi_label_threshold))
        return out


def _loaded(config: dict[str, Any], state: dict[str, torch.Tensor], prefix: str) -> DIETModel:
    """A DIETModel from its config and the weights under ``prefix`` ("" = those under no
    other model's prefix: a bundle keeps the selector's beside DIET's)."""
    model = DIETModel(DIETConfig.from_dict(dict(config)))
    if prefix:
        weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    else:
        weights = {k: v for k, v in state.items() if not k.startswith(SELECTOR_PREFIX)}
    model.load_state_dict(weights)
    return model


def _to_device(inputs, device):
    if device.type == "cpu":
        return inputs
    for name, value in vars(inputs).items():
        if isinstance(value, torch.Tensor):
            setattr(inputs, name, value.to(device))
    return inputs
