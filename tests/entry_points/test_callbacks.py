"""dialab's own Lightning callbacks."""
from __future__ import annotations

import ctypes.util

import pytest

from experiments.callbacks import ReleaseFreedMemory


def test_release_freed_memory_trims_every_n_batches_and_each_epoch(monkeypatch):
    callback = ReleaseFreedMemory(every_n_batches=3)
    calls = []
    monkeypatch.setattr(callback, "_trim", lambda pad: calls.append(pad) or 1)
    for batch_idx in range(7):
        callback.on_train_batch_end(None, None, None, None, batch_idx)
    assert calls == [0, 0]  # after batches 3 and 6
    callback.on_train_epoch_end(None, None)
    assert calls == [0, 0, 0]


@pytest.mark.skipif(not ctypes.util.find_library("c"), reason="no C library found")
def test_malloc_trim_is_found_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is a glibc function")
    callback = ReleaseFreedMemory()
    assert callback._trim is not None
    callback.release()  # really calls it


def test_a_fixed_mmap_threshold_goes_to_glibcs_mallopt(monkeypatch, caplog):
    """``mmap_threshold_kb`` sets M_MMAP_THRESHOLD (-3) in bytes; a refusal is reported."""
    import nlu_models.memory as memory

    calls = []

    class FakeLibc:
        def __init__(self, answer: int) -> None:
            self.answer = answer

        def malloc_trim(self, pad: int) -> int:
            return 1

        def mallopt(self, parameter: int, value: int) -> int:
            calls.append((parameter, value))
            return self.answer

    monkeypatch.setattr(memory.ctypes.util, "find_library", lambda name: "libc.so.6")
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: FakeLibc(1))
    ReleaseFreedMemory()
    assert calls == []  # glibc's dynamic threshold by default
    with caplog.at_level("WARNING"):
        ReleaseFreedMemory(mmap_threshold_kb=128)
    assert calls == [(-3, 128 * 1024)] and "could not set" not in caplog.text
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: FakeLibc(0))
    with caplog.at_level("WARNING"):
        ReleaseFreedMemory(mmap_threshold_kb=128)
    assert "could not set the mmap threshold to 128 KiB" in caplog.text


class _Scored:
    """A tiny LightningModule whose validation score only falls: epoch 0 stays the best."""

    @staticmethod
    def make():
        import lightning as L
        import torch

        class Module(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.weight = torch.nn.Parameter(torch.zeros(1))

            def training_step(self, batch, batch_idx):
                return (self.weight - 1.0).pow(2).sum()

            def validation_step(self, batch, batch_idx):
                self.log("val/score", -float(self.current_epoch))

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

            def train_dataloader(self):
                return [torch.zeros(1)] * 2

            def val_dataloader(self):
                return [torch.zeros(1)]

        return Module()


@pytest.mark.parametrize("every_n_val_epochs", [1, 2])
def test_last_checkpoint_is_the_last_validated_epoch_even_without_improvement(
        tmp_path, every_n_val_epochs):
    import lightning as L
    import torch

    from experiments.callbacks import ModelCheckpoint

    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val/score", mode="max",
                                 save_top_k=1, save_last=True, filename="best")
    trainer = L.Trainer(max_epochs=4, callbacks=[checkpoint], logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        check_val_every_n_epoch=every_n_val_epochs, num_sanity_val_steps=0)
    trainer.fit(_Scored.make())
    best = torch.load(tmp_path / "best.ckpt", weights_only=False)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert best["epoch"] == every_n_val_epochs - 1   # the first validated epoch scored best
    # Lightning's own ModelCheckpoint leaves last.ckpt at the best epoch
    assert last["epoch"] == 3 and last["global_step"] == trainer.global_step
