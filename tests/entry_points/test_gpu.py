"""The GPU path (`trainer=gpu`: one CUDA device, bf16 mixed precision). Deselected by default
(`-m gpu` runs it) and skipped without a CUDA device."""
from __future__ import annotations

import json

import pytest
import torch

from experiments.train import train
from nlu_models.inference import NLUInterpreter
from tests.entry_points.conftest import compose_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_train_on_gpu_with_bf16_and_parse_on_cpu(tmp_path):
    cfg = compose_config("train", ["experiment=diet_tiny", "trainer=gpu"], tmp_path)
    train(cfg)
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert 0.0 <= summary["intent_accuracy"] <= 1.0
    interpreter = NLUInterpreter.load(tmp_path / "checkpoints" / "last.ckpt", device="cpu")
    assert interpreter.parse("hello")["intent"]["name"] in interpreter.labels.intents
