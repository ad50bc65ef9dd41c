"""``DialogueDataModule``: a bot's stories → trackers → TED examples → padded batches.

It loads the bot (``load_bot``), builds the :class:`DialogueSpace` from the domain, replays the
stories into trackers (checkpoints, ``or`` steps, augmentation), makes examples in max-history or
full-dialogue mode, and serves Rasa-style batches (balanced over the next action, batch size
growing from 64 to 256). Rules are kept as trackers for the rule policy; TED trains on stories,
as Rasa's ML policies do.

End-to-end: with ``featurizers`` (NLU featurizer entries, as DIET's configs list them, e.g.
``[{name: CountVectorsFeaturizer, analyzer: word}]``) an NLU :class:`FeaturizerPipeline` is
fitted on the user texts TED sees in the training examples, and each turn's text gets its
sentence features (:class:`~dialogue_models.featurize.StateFeaturizer`). Without them, stories
with intent-less user texts are refused with an error naming the option. With ``label_texts``
the pipeline is fitted on the actions' strings too (end-to-end bot utterances), and TED's
labels read them (``TEDConfig.label_action_text``); with ``action_texts`` each turn also reads
its previous action's string (``StateFeaturizer(action_text=True)``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from dialogue_models.featurize import (DialogueExample, StateFeaturizer, make_examples,
                                       user_texts)
from dialogue_models.domain import read_domain
from dialogue_models.domain_inference import infer_domain
from dialogue_models.generation import generate_trackers
from dialogue_models.project import BotData, load_bot
from dialogue_models.states import DialogueSpace
from dialogue_models.ted.encoding import EncodedDialogue, collate, encode_examples
from dialogue_models.ted.model import TEDInputs
from dialogue_models.tracker import Tracker
from nlu_models.data.errors import DataError
from nlu_models.diet.batching import batch_size_for_epoch, epoch_batches, shard_batches
from nlu_models.featurize import FeaturizerPipeline

log = logging.getLogger(__name__)


class DialogueDataModule(L.LightningDataModule):
    """``train``: a bot folder (domain + stories + rules) or a loaded :class:`BotData`.
    ``val_fraction`` of the training examples is held out for ``val/action_acc`` (0 = none,
    Rasa's default ``evaluate_on_number_of_examples: 0``). ``featurizers`` (empty: none) turn
    on the user-text features (end-to-end stories). ``action_map`` (a JSON file ``{utterance:
    [act, ...]}``; None: none) is not used for training: the story evaluation then scores
    dialogue acts (:mod:`dialogue_models.evaluation.action_map`). ``label_texts``: TED's action
    labels also read their strings' text features; ``action_texts``: each turn reads its previous
    action's string's text features (both need ``featurizers``)."""

    def __init__(self, train: str | Path | BotData, test: str | Path | None = None,
                 domain: str | Path | None = None, mode: str = "max_history",
                 max_history: int | None = 5, augmentation_factor: int = 50,
                 batch_size: int | Sequence[int] = (64, 256), batch_strategy: str = "balanced",
                 val_fraction: float = 0.0, seed: int = 42, num_workers: int = 0,
                 featurizers: Sequence[dict[str, Any]] | None = None,
                 action_map: str | Path | None = None, label_texts: bool = False,
                 action_texts: bool = False, **metadata: Any) -> None:
        super().__init__()
        self.source, self.test_source, self.domain_source = train, test, domain
        self.mode, self.max_history = mode, max_history
        self.augmentation_factor, self.seed = augmentation_factor, seed
        self.batch_size = list(batch_size) if not isinstance(batch_size, int) else batch_size
        self.batch_strategy, self.val_fraction = batch_strategy, val_fraction
        self.num_workers = num_workers
        self.featurizer_spec = list(featurizers or [])
        for name, on in (("label_texts", label_texts), ("action_texts", action_texts)):
            if on and not self.featurizer_spec:
                raise ValueError(f"{name} (the actions' text features) needs the text "
                                 "featurizers: set model.featurizers too")
        self.label_texts, self.action_texts = label_texts, action_texts
        self.action_map = action_map
        self.metadata = metadata
        self.bot: BotData | None = None
        self.space: DialogueSpace | None = None
        self.featurizer: StateFeaturizer | None = None
        self.trackers: list[Tracker] = []
        self.examples: list[DialogueExample] = []
        self._train: list[EncodedDialogue] = []
        self._val: list[EncodedDialogue] = []

    def prepare(self, extend: DialogueSpace | StateFeaturizer | None = None
                ) -> "DialogueDataModule":
        """Load, replay and encode once (idempotent; ``setup`` calls it too). ``extend`` (a
        trained model's state featurizer, or its space) is extended by the domain's and the
        stories' instead of replaced: fine-tuning."""
        if self.featurizer is not None:
            return self
        bot = self.load_bot()
        if not bot.stories.stories:
            raise DataError("no training stories found: TED learns from stories (rules alone "
                            "train only the rule policy)", str(self.source))
        old = extend if isinstance(extend, StateFeaturizer) else None
        self.space = DialogueSpace.from_domain(bot.domain)
        if extend is not None:
            self.space = (old.space if old else extend).extended(self.space)
        self.trackers = generate_trackers(bot.stories, bot.domain,
                                          augmentation_factor=self.augmentation_factor,
                                          seed=self.seed)
        with_text = bool(self.featurizer_spec)
        self.examples = make_examples(self.trackers, self.space, self.mode, self.max_history,
                                      with_text=with_text)
        if not with_text:
            _refuse_user_texts(self.examples)
        text = self._text_pipeline(old.text if old else None) if with_text else None
        self.featurizer = StateFeaturizer(self.space, text,
                                          self.action_texts and text is not None)
        encoded = encode_examples(self.examples, self.featurizer)
        order = np.random.default_rng(self.seed).permutation(len(encoded))
        n_val = int(round(self.val_fraction * len(encoded)))
        self._val = [encoded[i] for i in order[:n_val]]
        self._train = [encoded[i] for i in order[n_val:]]
        log.info("%d trackers (%d augmented) → %d %s examples", len(self.trackers),
                 sum(t.is_augmented for t in self.trackers), len(self.examples), self.mode)
        return self

    def _text_pipeline(self, old: FeaturizerPipeline | None) -> FeaturizerPipeline | None:
        """The NLU pipeline fitted on the user texts of the examples (extending ``old``'s
        vocabulary when fine-tuning); ``old`` as it is (None when training afresh), with a
        warning, when no story has user text."""
        texts = sorted(user_texts(s for e in self.examples for s in e.states))
        if self.label_texts or self.action_texts:
            texts = sorted(set(texts) | set(self.space.actions))
        if not texts:
            log.warning("model.featurizers is set but no training story has user text: TED "
                        "gets no text features")
            return old
        pipeline = FeaturizerPipeline.from_config(self.featurizer_spec)
        if pipeline.dense is not None:
            raise ValueError("TED's text features are sparse only: remove the dense "
                             "featurizer from model.featurizers")
        fitted = pipeline.fit(texts)
        return old.extended(fitted) if old is not None else fitted

    def load_bot(self) -> BotData:
        """The bot with the configured domain and test stories (read once), without replaying
        or encoding anything: what evaluation needs."""
        if self.bot is not None:
            return self.bot
        bot = self.source if isinstance(self.source, BotData) else load_bot(self.source)
        if self.domain_source is not None:
            bot.domain = read_domain(self.domain_source)
        if self.test_source is not None:
            test = load_bot(self.test_source)
            bot.test_stories = test.stories.merge(test.test_stories)
        if not bot.domain.intent_names and not bot.domain.actions:
            log.warning("no domain.yml: the domain is read off the stories")
            bot.domain = infer_domain(bot.stories, bot.test_stories)
        self.bot = bot
        return bot

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    # ---- loaders -------------------------------------------------------------------------------
    def _labels_for_balance(self) -> list[int]:
        return [int(e.label_ids[-1]) for e in self._train]

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        epoch = trainer.current_epoch if trainer else 0
        max_epochs = trainer.max_epochs if trainer and trainer.max_epochs else 1
        size = batch_size_for_epoch(self.batch_size, epoch, max_epochs)
        strategy = self.batch_strategy if self.mode == "max_history" else "sequence"
        rng = np.random.default_rng(self.seed + epoch)
        batches = epoch_batches(self._labels_for_balance(), size, strategy, rng)
        if trainer is not None:
            batches = shard_batches(batches, trainer.global_rank, trainer.world_size)
        return DataLoader(self._train, batch_sampler=batches, collate_fn=self._collate,
                          num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if not self._val:
            return []
        return DataLoader(self._val, batch_size=256, collate_fn=self._collate)

    def _collate(self, batch: Sequence[EncodedDialogue]) -> TEDInputs:
        return collate(batch, self.mode)

    # ---- what the model and the other policies need ----------------------------------------
    def model_config(self) -> dict[str, Any]:
        self.prepare()
        return {"feature_sizes": dict(self.featurizer.feature_sizes),
                "num_actions": len(self.space.actions), "mode": self.mode,
                "label_action_text": self.label_texts}

    @property
    def val_examples(self) -> list[EncodedDialogue]:
        return self._val

    @property
    def name(self) -> str:
        return str(self.metadata.get("name") or Path(str(self.source)).name)

    def story_trackers(self, augmented: bool = True) -> list[Tracker]:
        return [t for t in self.trackers if augmented or not t.is_augmented]


def _refuse_user_texts(examples: Sequence[DialogueExample]) -> None:
    """End-to-end stories (user text without an intent) need TED's text features: say so
    instead of training on empty user turns."""
    for example in examples:
        for state in example.states:
            if "text" in state.get("user", {}):
                raise ValueError(
                    f"story '{example.tracker}' has a user turn with text but no intent "
                    f"('{state['user']['text'][:60]}'): end-to-end stories need TED's text "
                    "features; turn them on with model.featurizers (e.g. [{name: "
                    "CountVectorsFeaturizer, analyzer: word}], or experiment="
                    "ted_multiwoz_e2e), or annotate the intent")
