"""Lightning callbacks of dialab's own (the config group ``callbacks`` lists them)."""
from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint

from nlu_models.memory import ReleaseFreedMemory

__all__ = ["ModelCheckpoint", "ReleaseFreedMemory"]


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` with ``last.ckpt`` always the last validated epoch.

    Lightning (2.5 on) writes ``last.ckpt`` after a validation only when a top-k checkpoint was
    written at that step: when the monitored score did not improve, ``last.ckpt`` stayed at the
    best epoch, so resuming (``ckpt_path=...last.ckpt``), fine-tuning from it and the demo's
    "latest run" would silently take an older model. This writes it after every validation
    (once: not again when the top-k save already did)."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_anyway(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_anyway(trainer)

    def _save_last_anyway(self, trainer: L.Trainer) -> None:
        """``last.ckpt`` at a checkpointing epoch whose top-k save did not happen (skipped
        when one did: the step was saved already)."""
        due = self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0
        if self.save_last and due and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
