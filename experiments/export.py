"""Export a trained checkpoint to a bundle:
``python -m experiments.export ckpt_path=outputs/.../checkpoints/last.ckpt out=bundles/demo``
(or ``dialab export ...``). DIET checkpoints give an ``nlu`` bundle, TED ones a ``policy``
bundle (see :mod:`nlu_models.export`); load them with ``NLUInterpreter.load(out)`` /
``DialoguePolicy.load(out)``.

With ``metrics=auto`` the manifest records the training run's ``reports/summary.json`` when the
checkpoint sits in a run folder (``<run>/checkpoints/*.ckpt`` beside ``<run>/reports/``).

``onnx=true`` (default) adds DIET's inference graph as ``model.onnx`` for the torch-free
onnxruntime path, ``int8=true`` (default) also its dynamic-int8 ``model.int8.onnx``; policy
bundles ignore both.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import experiments  # noqa: F401  (registers the config resolvers)
import hydra
from omegaconf import DictConfig, OmegaConf

from dialogue_models.export import export_bundle


def export(cfg: DictConfig) -> Path:
    """Write the bundle, print its path and files, and return the path."""
    checkpoint = Path(cfg.ckpt_path)
    bundle = export_bundle(checkpoint, cfg.out, run_metrics(checkpoint, cfg.get("metrics")),
                           onnx=bool(cfg.get("onnx", False)), int8=bool(cfg.get("int8", False)))
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    print(f"{manifest['kind']} bundle ({manifest['model_class']}) written to {bundle}")
    for entry in manifest["files"]:
        print(f"  {entry['name']:<20} {entry['bytes']:>12,d} bytes  sha256 {entry['sha256'][:12]}")
    return bundle


def run_metrics(checkpoint: Path, setting: Any) -> dict[str, Any] | None:
    """``auto``: the run's summary.json if there is one; a mapping: itself; ``None``: none."""
    if setting is None:
        return None
    if isinstance(setting, DictConfig):
        return OmegaConf.to_container(setting, resolve=True)
    if setting != "auto":
        raise ValueError(f"metrics={setting!r}: use auto, null or a mapping of values")
    summary = checkpoint.resolve().parent.parent / "reports" / "summary.json"
    return json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else None


@hydra.main(version_base="1.3", config_path="../configs", config_name="export")
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
