"""``DIETLitModule``: the training system around :class:`DIETModel` — optimiser, Rasa's L2
regularisation, metrics and logging, and checkpoints that carry everything needed to parse
(label spaces in the hyper-parameters, fitted featurizers as JSON). It defines no layers.

Metrics are named ``split/name``: ``train/loss``, ``train/intent_acc``, ``val/intent_acc``,
``val/entity_f1`` (exact-span micro F1, seqeval strict with the training tag scheme) and
``val/score`` (their mean; what checkpointing and early stopping watch by default). With
retrieval intents a response selector trains beside DIET (:mod:`nlu_models.diet.response_selector`)
and adds ``train/response_loss``, ``train/response_acc`` and ``val/response_acc`` (in the score).
For multi-label intents (``intent_loss: sigmoid``) ``intent_acc`` is exact-set accuracy: the
predicted set (at ``multi_label_threshold``, never empty) equals the gold one.
"""
from __future__ import annotations

from typing import Any

import lightning as L
import torch

from nlu_models.diet.labels import DIETLabels
from nlu_models.diet.model import DIETConfig, DIETInputs, DIETModel
from nlu_models.diet.response_selector import selector_config, selector_inputs
from nlu_models.fallback import FallbackConfig
from nlu_models.featurize import FeaturizerPipeline
from nlu_models.memory import trim_unless_configured
from nlu_models.inference import CHECKPOINT_FEATURIZERS_KEY, NLUInterpreter
from nlu_models.modules.optim import adam
from nlu_models.modules.regularization import add_l2_gradient, check_l2_mode
from nlu_models.modules.similarity import predicted_label_sets



class DIETLitModule(L.LightningModule):
    """``encoder_learning_rate`` is the Adam learning rate of a fine-tuned encoder
    (``finetune_encoder``): small, as ``learning_rate`` would wreck its pretrained weights.
    ``fallback`` (Rasa's ``FallbackClassifier`` options, :mod:`nlu_models.fallback`) is not
    trained: the checkpoint carries it so that the interpreters and bundles apply it.
    ``response_selector`` is the selector's full :class:`DIETConfig` (as a dict) when the labels
    have retrieval response keys; :meth:`for_data` builds it."""

    def __init__(self, config: dict[str, Any], labels: dict[str, Any],
                 learning_rate: float = 1e-3, regularization_constant: float = 0.002,
                 l2_mode: str = "rasa", pipeline: FeaturizerPipeline | None = None,
                 encoder_learning_rate: float = 2e-5,
                 fallback: dict[str, float] | None = None,
                 response_selector: dict[str, Any] | None = None) -> None:
        super().__init__()
        check_l2_mode(l2_mode)
        if fallback is not None:  # validated, stored as a plain dict
            fallback = FallbackConfig.from_dict(dict(fallback)).to_dict()
        self.save_hyperparameters(ignore=["pipeline"])
        self.model = DIETModel(DIETConfig.from_dict(dict(config)))
        self.labels = DIETLabels.from_dict(dict(labels))
        check_multi_label(self.model.config, self.labels)
        self.response_selector = None
        if response_selector is not None:
            self.response_selector = DIETModel(DIETConfig.from_dict(dict(response_selector)))
        self.pipeline = pipeline
        self.fallback = FallbackConfig.from_dict(fallback) if fallback is not None else None
        self._eval_outputs: list[tuple[int, int, list, list, int, int]] = []

    @classmethod
    def for_data(cls, datamodule, model: dict[str, Any] | None = None,
                 response_selector: dict[str, Any] | bool | None = None,
                 **training: Any) -> "DIETLitModule":
        """A module sized for a prepared :class:`NLUDataModule` (fitted featurizers + labels).
        A model that fine-tunes its encoder (``finetune_encoder``) takes it from the pipeline's
        dense featurizer, and needs a data module built with ``finetune_encoder=True``.
        A ``FallbackClassifier`` entry in the data module's pipeline spec becomes ``fallback``
        (unless ``training`` sets it). A multi-label model (``intent_loss: sigmoid``) needs a
        data module built with ``multi_label=True``, and the other way round. Training data
        with retrieval intents gets a response selector: Rasa's ResponseSelector defaults
        updated by ``response_selector`` (a dict of :class:`DIETConfig` keys); ``False`` trains
        none."""
        datamodule.prepare()
        pipeline, labels = datamodule.pipeline, datamodule.labels
        config = dict(model or {})
        finetune = bool(config.get("finetune_encoder", False))
        if finetune != bool(getattr(datamodule, "finetune_encoder", False)):
            raise ValueError(f"the model has finetune_encoder={finetune} but the data module "
                             f"finetune_encoder={not finetune}; set both the same")
        if finetune:
            dense = pipeline.dense
            config.update(encoder_name_or_path=dense.model_name_or_path,
                          encoder_word_pooling=dense.word_pooling,
                          encoder_sentence_pooling=dense.sentence_pooling)
        config.update(seq_sparse_dim=pipeline.seq_vocab_size,
                      sent_sparse_dim=pipeline.sent_vocab_size, dense_dim=pipeline.dense_dim,
                      num_intents=len(labels.intents),
                      num_entity_tags=labels.num_tags("entity"),
                      num_role_tags=labels.num_tags("role"),
                      num_group_tags=labels.num_tags("group"))
        if not labels.intents:
            config["intent_classification"] = False
        if training.get("fallback") is None:
            listed = FallbackConfig.from_pipeline(datamodule.featurizer_spec)
            training["fallback"] = listed.to_dict() if listed is not None else None
        selector = None
        if labels.response_keys and response_selector is not False:
            overrides = response_selector if isinstance(response_selector, dict) else None
            selector = selector_config(DIETConfig.from_dict(config), len(labels.response_keys),
                                       overrides).to_dict()
        return cls(config=config, labels=labels.to_dict(), pipeline=pipeline,
                   response_selector=selector, **training)

    def interpreter(self) -> NLUInterpreter:
        if self.pipeline is None:
            raise ValueError("no fitted featurizers attached to this module")
        return NLUInterpreter(self.model, self.pipeline, self.labels, fallback=self.fallback,
                              response_selector=self.response_selector)

    # ---- training ------------------------------------------------------------------------------
    def training_step(self, batch: DIETInputs, batch_idx: int) -> torch.Tensor:
        output = self.model(batch)
        losses, metrics = dict(output.losses), dict(output.metrics)
        loss = output.loss
        if self._has_responses(batch):  # the selector learns from the retrieval examples
            selected = self.response_selector(selector_inputs(self.model, batch, labelled=True))
            loss = loss + selected.loss
            losses["response"] = selected.loss
            metrics["response_acc"] = selected.metrics["intent_acc"]
        size = batch.mask.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        for name, value in losses.items():
            self.log(f"train/{name}_loss", value, batch_size=size)
        for name, value in metrics.items():
            self.log(f"train/{name}", value, prog_bar=name == "intent_acc", batch_size=size)
        return loss

    def _has_responses(self, batch: DIETInputs) -> bool:
        return (self.response_selector is not None and batch.response_ids is not None
                and bool((batch.response_ids >= 0).any()))

    def models(self) -> list[DIETModel]:
        return [self.model] + ([self.response_selector] if self.response_selector else [])

    def configure_callbacks(self) -> list[L.Callback]:
        """Trim the freed heap also under a trainer built without dialab's callbacks config."""
        return trim_unless_configured(self.trainer)

    def on_after_backward(self) -> None:
        """Rasa's L2: gradient 2·c·w of ``c·Σw²`` on the kernels. In ``rasa`` mode it is added
        only where the prediction-loss gradient is positive (RasaModel.train_step's quirk)."""
        add_l2_gradient([p for m in self.models() for p in m.regularized_parameters()],
                        self.hparams.regularization_constant, self.hparams.l2_mode)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        encoder = self.model.encoder_parameters()
        if not encoder:
            return adam(self.parameters(), lr=self.hparams.learning_rate)
        in_encoder = {id(p) for p in encoder}
        rest = [p for p in self.parameters() if id(p) not in in_encoder]
        return adam([{"params": rest},
                     {"params": encoder, "lr": self.hparams.encoder_learning_rate}],
                    lr=self.hparams.learning_rate)

    # ---- evaluation ----------------------------------------------------------------------------
    def validation_step(self, batch: DIETInputs, batch_idx: int) -> None:
        self._eval_outputs.append(self._score_batch(batch))

    def test_step(self, batch: DIETInputs, batch_idx: int) -> None:
        self._eval_outputs.append(self._score_batch(batch))

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    def _score_batch(self, batch: DIETInputs) -> tuple[int, int, list, list, int, int]:
        prediction = self.model.predict(batch)
        if self.model.config.multi_label:
            correct, total = _set_hits(prediction.intent_confidences, batch.intent_targets,
                                       self.model.config.multi_label_threshold)
        else:
            correct, total = _hits(prediction.intent_confidences, batch.intent_ids)
        response_correct = response_total = 0
        if self._has_responses(batch):
            selected = self.response_selector.predict(selector_inputs(self.model, batch))
            response_correct, response_total = _hits(selected.intent_confidences,
                                                     batch.response_ids)
        gold_tags, pred_tags = [], []
        if "entity" in prediction.tags and batch.entity_tags is not None:
            names = self.labels.tags("entity")
            for b, n in enumerate(batch.lengths.tolist()):
                gold_tags.append([names[i] for i in batch.entity_tags[b, :n].tolist()])
                pred_tags.append([names[i] for i in prediction.tags["entity"][b, :n].tolist()])
        return correct, total, gold_tags, pred_tags, response_correct, response_total

    def _log_eval(self, split: str) -> None:
        outputs, self._eval_outputs = self._eval_outputs, []
        if not outputs:
            return
        scores = []
        total = sum(o[1] for o in outputs)
        if total:
            accuracy = sum(o[0] for o in outputs) / total
            self.log(f"{split}/intent_acc", accuracy, prog_bar=True)
            scores.append(accuracy)
        gold = [t for o in outputs for t in o[2]]
        if gold:
            pred = [t for o in outputs for t in o[3]]
            entity_f1 = strict_entity_f1(gold, pred, self.labels.scheme)
            self.log(f"{split}/entity_f1", entity_f1, prog_bar=True)
            scores.append(entity_f1)
        responses = sum(o[5] for o in outputs)
        if responses:
            accuracy = sum(o[4] for o in outputs) / responses
            self.log(f"{split}/response_acc", accuracy)
            scores.append(accuracy)
        self.log(f"{split}/score", sum(scores) / len(scores) if scores else 0.0)

    # ---- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.pipeline is not None:
            checkpoint[CHECKPOINT_FEATURIZERS_KEY] = self.pipeline.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if CHECKPOINT_FEATURIZERS_KEY in checkpoint:
            self.pipeline = FeaturizerPipeline.from_dict(checkpoint[CHECKPOINT_FEATURIZERS_KEY])


def _hits(confidences: torch.Tensor | None, gold: torch.Tensor | None) -> tuple[int, int]:
    """Correct and scored rows (those with a gold label, id ≥ 0)."""
    if confidences is None or gold is None:
        return 0, 0
    known = gold >= 0
    predicted = confidences.argmax(dim=-1)
    return int((predicted == gold)[known].sum()), int(known.sum())


def _set_hits(confidences: torch.Tensor | None, targets: torch.Tensor | None,
              threshold: float) -> tuple[int, int]:
    """Rows whose predicted intent set equals the gold one, and rows with a gold set."""
    if confidences is None or targets is None:
        return 0, 0
    known = targets.any(dim=-1)
    exact = (predicted_label_sets(confidences, threshold) == (targets > 0.5)).all(dim=-1)
    return int(exact[known].sum()), int(known.sum())


def strict_entity_f1(gold: list[list[str]], pred: list[list[str]], scheme: str) -> float:
    """Exact-span micro F1 of tag sequences (seqeval strict with ``scheme``). seqeval is
    imported here, not with the module: it imports scikit-learn (~70 MB resident), which a
    training run needs only from its first validation on."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import BILOU, IOB2

    return float(f1_score(gold, pred, mode="strict", scheme=BILOU if scheme == "BILOU" else IOB2,
                          zero_division=0))


def check_multi_label(config: DIETConfig, labels: DIETLabels) -> None:
    """A multi-label intent head (``intent_loss: sigmoid``) goes with multi-label labels (a data
    module built with ``multi_label=True``) and a single-label one with single-label labels."""
    if not config.intent_classification or config.multi_label == labels.multi_label:
        return
    if config.multi_label:
        raise ValueError("the model has intent_loss='sigmoid' (multi-label intents) but the data "
                         "module is not multi-label; build it with multi_label=True "
                         "(data.multi_label=true)")
    raise ValueError(f"the data module is multi-label (multi_label=True) but the model has "
                     f"intent_loss={config.intent_loss!r}; use intent_loss='sigmoid' "
                     "(model=diet_multilabel) or multi_label=False")
