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
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from nlu_models.data.schema import Message
from nlu_models.diet.encoding import EncodedExample, collate_fn
from nlu_models.diet.labels import DIETLabels
from nlu_models.diet.model import DIETConfig, DIETModel, rank_intents
from nlu_models.export import open_bundle
from nlu_models.fallback import FILENAME as FALLBACK_FILE
from nlu_models.fallback import (FallbackConfig, FallbackOption, apply_fallback,
                                 chosen_fallback)
from nlu_models.featurize import FeaturizerPipeline
from nlu_models.onnx_runtime import load_interpreter  # noqa: F401  (re-exported)

CHECKPOINT_FEATURIZERS_KEY = "dialab_featurizers"


class NLUInterpreter:
    def __init__(self, model: DIETModel, pipeline: FeaturizerPipeline, labels: DIETLabels,
                 batch_size: int = 64, fallback: FallbackConfig | None = None) -> None:
        self.model = model.eval()
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
        model = DIETModel(DIETConfig.from_dict(bundle.json("config.json")))
        model.load_state_dict(bundle.weights())
        pipeline = FeaturizerPipeline.from_dict(bundle.json("featurizers.json"))
        stored = bundle.json(FALLBACK_FILE) if bundle.has(FALLBACK_FILE) else None
        return cls(model.to(device), pipeline, DIETLabels.from_dict(bundle.json("labels.json")),
                   fallback=chosen_fallback(fallback, stored))

    @classmethod
    def from_checkpoint_dict(cls, checkpoint: dict[str, Any], fallback: FallbackOption = None
                             ) -> "NLUInterpreter":
        if CHECKPOINT_FEATURIZERS_KEY not in checkpoint:
            raise ValueError("this checkpoint was not written by dialab's DIETLitModule "
                             f"(no '{CHECKPOINT_FEATURIZERS_KEY}' entry)")
        hparams = checkpoint["hyper_parameters"]
        model = DIETModel(DIETConfig.from_dict(dict(hparams["config"])))
        state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()
                 if k.startswith("model.")}
        model.load_state_dict(state)
        pipeline = FeaturizerPipeline.from_dict(checkpoint[CHECKPOINT_FEATURIZERS_KEY])
        return cls(model, pipeline, DIETLabels.from_dict(dict(hparams["labels"])),
                   fallback=chosen_fallback(fallback, hparams.get("fallback")))

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
        results: list[dict[str, Any]] = []
        device = next(self.model.parameters()).device
        for start in range(0, len(examples), self.batch_size):
            chunk = examples[start:start + self.batch_size]
            inputs = _to_device(collate(chunk), device)
            prediction = self.model.predict(inputs)
            results.extend(self._results(chunk, prediction))
        return apply_fallback(results, self.fallback)

    def _results(self, chunk: Sequence[EncodedExample], prediction) -> list[dict[str, Any]]:
        out = []
        ranked = None
        if prediction.intent_confidences is not None:
            ranked = rank_intents(prediction.intent_confidences.float().cpu(),
                                  self.model.config.ranking_length)
        tags = {h: t.cpu().tolist() for h, t in prediction.tags.items()}
        confs = {h: c.float().cpu().tolist() for h, c in prediction.tag_confidences.items()}
        for b, example in enumerate(chunk):
            out.append(self.labels.parse_result(
                example.message.text, example.features.tokens,
                None if ranked is None else ranked[b].tolist(),
                {h: t[b] for h, t in tags.items()}, {h: c[b] for h, c in confs.items()}))
        return out


def _to_device(inputs, device):
    if device.type == "cpu":
        return inputs
    for name, value in vars(inputs).items():
        if isinstance(value, torch.Tensor):
            setattr(inputs, name, value.to(device))
    return inputs
