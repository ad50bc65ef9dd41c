"""``NLUDataModule``: loads the splits, fits the featurizers and label spaces on the training
split, turns every example into padded tensors, and serves Rasa-style batches (balanced,
growing batch size). The dataloaders are rebuilt every epoch (the trainer is configured with
``reload_dataloaders_every_n_epochs=1``) so the batch size can grow.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from nlu_models.data.errors import DataError
from nlu_models.data.loading import load_nlu
from nlu_models.data.schema import Message, NLUData
from nlu_models.diet.batching import batch_size_for_epoch, epoch_batches, shard_batches
from nlu_models.diet.encoding import EncodedExample, collate, collate_fn, encode_examples
from nlu_models.diet.labels import DIETLabels
from nlu_models.featurize import FeaturizerPipeline

log = logging.getLogger(__name__)


# ---- where the data comes from -------------------------------------------------------------------
@dataclass
class DataSpec:
    """A split of a data set on disk: a Rasa bot folder / NLU file, or a benchmark layout."""

    path: str
    format: str = "auto"
    split: str = "train"

    def load(self) -> NLUData:
        path = Path(self.path)
        if self.format in ("rasa", "auto") and path.is_dir() and _is_bot(path):
            from dialogue_models.project import load_bot

            bot = load_bot(path)
            data = bot.test_nlu if self.split == "test" else bot.nlu
            if self.split == "test" and data.is_empty():
                raise DataError("this bot has no test NLU data (tests/*.yml)", path)
            # the domain's retrieval responses (utter_faq/ask_name), for the response selector
            retrieval = {k: v for k, v in bot.domain.responses.items() if "/" in k}
            if retrieval:
                data = data.with_examples(data.examples)
                data.responses = {**retrieval, **data.responses}
            return data
        return load_nlu(path, format=self.format, split=self.split)


def _is_bot(path: Path) -> bool:
    return (path / "domain.yml").exists() or (path / "data").is_dir()


def as_data(source: NLUData | DataSpec | dict | str | None) -> NLUData | None:
    if source is None or isinstance(source, NLUData):
        return source
    if isinstance(source, str):
        source = DataSpec(source)
    elif not isinstance(source, DataSpec):
        source = DataSpec(**dict(source))
    return source.load()


# ---- the Lightning data module -------------------------------------------------------------
class NLUDataModule(L.LightningDataModule):
    """Splits → fitted featurizers and labels → encoded examples → Rasa-style batches.

    ``train``/``val``/``test`` take an :class:`NLUData`, a :class:`DataSpec` (or its dict), or a
    path. Without ``val``, ``val_fraction`` > 0 holds out a stratified part of ``train``.
    ``max_examples`` cuts every split short (tiny twins for tests). ``train_fraction`` < 1 trains
    on a seeded, stratified-by-intent part of ``train`` (after any validation hold-out; every
    intent keeps at least one example; val and test unchanged): learning curves.
    ``out_of_scope_intent`` names the intent that marks out-of-scope messages (CLINC150's
    ``oos``, Rasa's ``out_of_scope``): the reports then add out-of-scope recall and AUROC.
    ``finetune_encoder`` (for a DIET that fine-tunes its encoder) skips the frozen dense vectors
    and gives batches the dense featurizer's sub-token ids instead.
    ``multi_label`` (for a DIET with ``intent_loss: sigmoid``) reads an intent ``a+b`` as the
    set of its atomic intents (split at ``intent_split_symbol``: ``+`` as Rasa, ``#`` for ATIS):
    the labels are the atomic intents and examples carry multi-hot targets; balanced batches
    still balance the combined labels. Without it ``a+b`` is one label of its own (Rasa's way);
    the symbol then only tells the reports how to split gold labels into sets.
    Call :meth:`prepare` (or let the trainer call ``setup``) before building the model: the
    model's input sizes come from the fitted featurizers.
    """

    def __init__(self, train: Any, val: Any = None, test: Any = None, *,
                 featurizers: FeaturizerPipeline | Sequence[dict] | None = None,
                 name: str = "data", batch_size: int | Sequence[int] = (64, 256),
                 batch_strategy: str = "balanced", eval_batch_size: int = 256,
                 val_fraction: float = 0.0, train_fraction: float = 1.0,
                 scheme: str = "BILOU", seed: int = 42,
                 max_examples: int | None = None, show_progress: bool = True,
                 finetune_encoder: bool = False, out_of_scope_intent: str | None = None,
                 multi_label: bool = False, intent_split_symbol: str = "+",
                 **metadata: Any) -> None:
        super().__init__()
        self.metadata = metadata  # extra config keys (fold, path, ...) kept for the reports
        self.sources = {"train": train, "val": val, "test": test}
        self.featurizer_spec = featurizers
        self.name = name
        self.batch_size = batch_size
        self.batch_strategy = batch_strategy
        self.eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        if not 0.0 < train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], not {train_fraction}")
        self.train_fraction = train_fraction
        self.scheme = scheme
        self.seed = seed
        self.max_examples = max_examples
        self.show_progress = show_progress
        self.finetune_encoder = finetune_encoder
        self.out_of_scope_intent = out_of_scope_intent
        if not intent_split_symbol:
            raise ValueError("intent_split_symbol must be a non-empty string")
        self.multi_label = multi_label
        self.intent_split_symbol = intent_split_symbol
        self.collate = collate
        self.pipeline: FeaturizerPipeline | None = None
        self.labels: DIETLabels | None = None
        self.data: dict[str, NLUData] = {}
        self.encoded: dict[str, list[EncodedExample]] = {}

    # -- preparation
    def prepare(self, pipeline: FeaturizerPipeline | None = None,
                labels: DIETLabels | None = None, extend: bool = False) -> "NLUDataModule":
        """Load, fit (unless a fitted ``pipeline``/``labels`` is given) and encode. Idempotent.
        With ``extend``, the given ones (a trained model's) are extended by those fitted on the
        training split, old ids kept and new ones appended: fine-tuning with new labels."""
        if self.encoded:
            return self
        for split, source in self.sources.items():
            data = as_data(source)
            if data is not None:
                self.data[split] = self._limited(data)
        if "train" not in self.data:
            raise ValueError("NLUDataModule needs training data")
        if "val" not in self.data and self.val_fraction > 0:
            from nlu_models.data.hf import train_test_split  # imports `datasets`: only when needed

            self.data["train"], self.data["val"] = train_test_split(
                self.data["train"], test_size=self.val_fraction, seed=self.seed)
        if self.train_fraction < 1.0:
            from nlu_models.data.hf import train_test_split

            self.data["train"], _ = train_test_split(
                self.data["train"], test_size=1.0 - self.train_fraction, seed=self.seed)
        train = self.data["train"]
        self.labels, self.pipeline = labels, pipeline
        if labels is None or extend:
            fitted_labels = DIETLabels.from_data(train, self.scheme, self.multi_label,
                                                 self.intent_split_symbol)
            self.labels = labels.extended(fitted_labels) if labels is not None else fitted_labels
        if pipeline is None or extend:
            fitted = self._pipeline().fit(train.examples, train)
            self.pipeline = pipeline.extended(fitted) if pipeline is not None else fitted
        self.collate = collate_fn(self.pipeline, self.finetune_encoder)
        for split, data in self.data.items():
            self.encoded[split] = encode_examples(data.examples, self.pipeline, self.labels,
                                                  self.show_progress, self.finetune_encoder)
        log.info("data %s: %s", self.name,
                 ", ".join(f"{k} {len(v)}" for k, v in self.encoded.items()))
        return self

    def _pipeline(self) -> FeaturizerPipeline:
        spec = self.featurizer_spec
        if isinstance(spec, FeaturizerPipeline):
            return spec
        if spec is None:
            from nlu_models.featurize import default_pipeline

            return default_pipeline()
        return FeaturizerPipeline.from_config([dict(s) for s in spec])

    def _limited(self, data: NLUData) -> NLUData:
        if self.max_examples is None or len(data.examples) <= self.max_examples:
            return data
        return data.with_examples(data.examples[:self.max_examples])

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    # -- loaders
    def train_dataloader(self) -> DataLoader:
        epoch, max_epochs, rank, world = 0, 1, 0, 1
        if self.trainer is not None:
            epoch, max_epochs = self.trainer.current_epoch, self.trainer.max_epochs or 1
            rank, world = self.trainer.global_rank, self.trainer.world_size
        examples = self.encoded["train"]
        size = batch_size_for_epoch(self.batch_size, epoch, max_epochs)
        rng = np.random.default_rng([self.seed, epoch])
        batches = epoch_batches(self._batch_labels(examples), size, self.batch_strategy, rng)
        batches = shard_batches(batches, rank, world)
        return DataLoader(examples, batch_sampler=batches, collate_fn=self.collate)

    def _batch_labels(self, examples: Sequence[EncodedExample]) -> list[int]:
        """What balanced batches balance: the intent ids, or for multi-label intents the ids of
        the combined labels (``a+b`` and ``b+a`` alike; no intent: -1)."""
        if not self.labels.multi_label:
            return [e.intent_id for e in examples]
        combined = [self.labels.canonical_intent(e.message.retrieval_intent) for e in examples]
        ids = {name: i for i, name in enumerate(sorted({c for c in combined if c is not None}))}
        return [ids.get(c, -1) for c in combined]

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self.encoded[split], batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self.collate)

    def val_dataloader(self) -> DataLoader | list:
        return self._eval_loader("val") if "val" in self.encoded else []

    def test_dataloader(self) -> DataLoader:
        if "test" not in self.encoded:
            raise ValueError(f"data '{self.name}' has no test split")
        return self._eval_loader("test")

    def split_messages(self, split: str) -> list[Message]:
        return self.data[split].examples
