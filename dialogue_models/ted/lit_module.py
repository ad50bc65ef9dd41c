"""``TEDLitModule``: the training system around :class:`TEDModel` — Adam, Rasa's L2
regularisation, metrics and logging, and checkpoints that carry everything needed to predict
(the action names and the fitted state featurizer in the hyper-parameters). It defines no layers.

Metrics are named ``split/name``: ``train/loss``, ``train/action_acc`` (the loss's accuracy
against its sampled negatives, as Rasa's ``acc``), ``val/loss`` and ``val/action_acc``: the
argmax over *all* actions against the gold action, over every real labelled position of the
split (one per example in ``max_history`` mode, one per labelled turn in ``full_dialogue``).
"""
from __future__ import annotations

from typing import Any

import lightning as L
import torch

from dialogue_models.featurize import StateFeaturizer
from dialogue_models.ted.encoding import set_label_texts
from dialogue_models.ted.model import IGNORE_INDEX, TEDConfig, TEDInputs, TEDModel, TEDPrediction
from nlu_models.memory import trim_unless_configured
from nlu_models.modules.optim import adam
from nlu_models.modules.regularization import add_l2_gradient, check_l2_mode


class TEDLitModule(L.LightningModule):
    """``config`` is a :class:`TEDConfig` as a dict; ``labels`` holds ``{"actions": [...]}`` (the
    label space, index = action id) plus any JSON the data module stores; ``featurizer`` is the
    fitted state featurizer's ``to_dict()``, kept as-is so a checkpoint can featurize trackers.

    Defaults are Rasa 3.6 TEDPolicy's: learning rate 0.001, ``regularization_constant`` 0.001.
    """

    def __init__(self, config: dict[str, Any], labels: dict[str, Any],
                 learning_rate: float = 1e-3, regularization_constant: float = 0.001,
                 l2_mode: str = "rasa", featurizer: dict[str, Any] | None = None) -> None:
        super().__init__()
        check_l2_mode(l2_mode)
        self.save_hyperparameters()
        self.model = TEDModel(TEDConfig.from_dict(dict(config)))
        if self.model.config.label_action_text:
            if not featurizer:
                raise ValueError("a label_action_text TED needs its state featurizer (the "
                                 "featurizer argument) for the actions' texts")
            set_label_texts(self.model, StateFeaturizer.from_dict(featurizer))
        self.actions = _action_names(labels, self.model.config.num_actions)
        self.featurizer = featurizer
        self._eval_counts = [0, 0]   # correct, total over the current evaluation epoch

    # ---- training ------------------------------------------------------------------------------
    def training_step(self, batch: TEDInputs, batch_idx: int) -> torch.Tensor:
        output = self.model(batch)
        size = batch.dialogue_mask.shape[0]
        self.log("train/loss", output.loss, prog_bar=True, batch_size=size)
        for name, value in output.metrics.items():
            self.log(f"train/{name}", value, prog_bar=name == "action_acc", batch_size=size)
        return output.loss

    def configure_callbacks(self) -> list[L.Callback]:
        """Trim the freed heap also under a trainer built without dialab's callbacks config
        (:func:`~nlu_models.memory.trim_unless_configured`)."""
        return trim_unless_configured(self.trainer)

    def on_after_backward(self) -> None:
        """Rasa's L2: gradient 2·c·w of ``c·Σw²`` on the kernels. In ``rasa`` mode it is added
        only where the prediction-loss gradient is positive (RasaModel.train_step's quirk)."""
        add_l2_gradient(self.model.regularized_parameters(),
                        self.hparams.regularization_constant, self.hparams.l2_mode)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.parameters(), lr=self.hparams.learning_rate)

    # ---- evaluation ----------------------------------------------------------------------------
    def validation_step(self, batch: TEDInputs, batch_idx: int) -> None:
        self._evaluate_batch(batch, "val")

    def test_step(self, batch: TEDInputs, batch_idx: int) -> None:
        self._evaluate_batch(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_accuracy("val")

    def on_test_epoch_end(self) -> None:
        self._log_accuracy("test")

    def _evaluate_batch(self, batch: TEDInputs, split: str) -> None:
        if batch.label_ids is None:
            raise ValueError(f"{split} batches need label_ids")
        size = batch.dialogue_mask.shape[0]
        self.log(f"{split}/loss", self.model(batch).loss, batch_size=size)
        correct, total = action_hits(self.model.predict(batch), batch)
        self._eval_counts[0] += correct
        self._eval_counts[1] += total

    def _log_accuracy(self, split: str) -> None:
        (correct, total), self._eval_counts = self._eval_counts, [0, 0]
        if total:
            self.log(f"{split}/action_acc", correct / total, prog_bar=True)


def action_hits(prediction: TEDPrediction, batch: TEDInputs) -> tuple[int, int]:
    """(correct, total) of argmax-over-all-actions against the gold action, counted over the
    real labelled positions (label ``-100`` and padded turns are skipped)."""
    gold = batch.label_ids                                          # (B,) or (B, D)
    predicted = prediction.confidences.argmax(dim=-1)               # (B,) or (B, D)
    labelled = gold != IGNORE_INDEX
    if gold.dim() == 2:
        labelled = labelled & batch.dialogue_mask
    return int((predicted == gold)[labelled].sum()), int(labelled.sum())


def _action_names(labels: dict[str, Any], num_actions: int) -> list[str]:
    actions = labels.get("actions")
    if not isinstance(actions, (list, tuple)):
        raise ValueError("labels must hold the action names under 'actions'")
    if len(actions) != num_actions:
        raise ValueError(f"labels has {len(actions)} actions but the model config has "
                         f"num_actions={num_actions}")
    return [str(a) for a in actions]


__all__ = ["TEDLitModule", "action_hits"]
