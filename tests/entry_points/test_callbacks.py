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
