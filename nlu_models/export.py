"""Export bundles: a folder that describes itself, loads without pickle and without Lightning.

```
bundle/
  manifest.json      format_version, kind (nlu | policy), model_class, created, dialab_version,
                     torch_version, files [{name, sha256, bytes}], metrics (when given)
  config.json        the model config dataclass (DIETConfig / TEDConfig) as JSON
  labels.json        nlu: DIETLabels.to_dict(); policy: actions, max_history, ted_priority
  featurizers.json   nlu: the FeaturizerPipeline; policy: the state featurizer
  policies.json      policy only: the rule/memoization policies (PolicyEnsemble.to_dict())
  model.safetensors  the model's weights only
  domain.yml         policy only, when the checkpoint carries its domain
  model.onnx         nlu, optional (``onnx=True``): DIET's inference graph for onnxruntime
  model.int8.onnx    nlu, optional (``int8=True``): its dynamic-int8 quantization
  onnx.json          nlu, with model.onnx: graph inputs/outputs, CRF transitions
  fallback.json      nlu, when the training pipeline listed a FallbackClassifier: its options
  response_selector.json      nlu with retrieval intents: the response selector's DIETConfig
                              (its weights sit in model.safetensors under "response_selector.")
  response_selector.model.onnx, response_selector.onnx.json (+ .model.int8.onnx): its graph
```

This module holds the format (:func:`write_bundle`, :func:`open_bundle`, which checks every
file's sha256 against the manifest) and the DIET exporter (:func:`export_nlu_bundle`); the
policy exporter and the checkpoint-sniffing :func:`~dialogue_models.export.export_bundle` live
in :mod:`dialogue_models.export`. Loading is ``NLUInterpreter.load(bundle)`` /
``DialoguePolicy.load(bundle)``, or for the torch-free ONNX path
:func:`nlu_models.onnx_runtime.load_interpreter`.

Reading a bundle (:func:`open_bundle`) imports no torch: torch and safetensors are imported
where weights are written or read, so the ONNX path stays torch-free.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
KINDS = {"nlu": "NLUInterpreter.load", "policy": "DialoguePolicy.load"}
SELECTOR_CONFIG = "response_selector.json"   # nlu: the response selector's DIETConfig
SELECTOR_PREFIX = "response_selector."       # its weights' key prefix, its ONNX files' prefix


class BundleError(ValueError):
    """A folder that is not a loadable bundle: no manifest, wrong kind, edited or missing files."""


@dataclass
class Bundle:
    """An opened, verified bundle folder; read its files by name."""

    path: Path
    manifest: dict[str, Any]

    def has(self, name: str) -> bool:
        return any(entry["name"] == name for entry in self.manifest["files"])

    def json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text(encoding="utf-8"))

    def text(self, name: str) -> str:
        return (self.path / name).read_text(encoding="utf-8")

    def weights(self, device: str = "cpu") -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(self.path / WEIGHTS, device=device)


# ---- writing -------------------------------------------------------------------------------------
def write_bundle(out_dir: str | Path, kind: str, model_class: str, files: Mapping[str, Any],
                 weights: Mapping[str, torch.Tensor], metrics: Mapping[str, Any] | None = None
                 ) -> Path:
    """Write ``files`` (name → JSON data, ``str`` for text files, ``bytes`` for binary ones),
    the weights as safetensors, and a manifest listing every file with its sha256."""
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _remove_old_bundle(out)
    names = []
    for name, data in files.items():
        names.append(name)
        if isinstance(data, bytes):
            (out / name).write_bytes(data)
            continue
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, indent=1)
        (out / name).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    tensors = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
               for k, v in weights.items()}  # clone: safetensors refuses shared storage
    save_file(tensors, out / WEIGHTS, metadata={"format": "pt"})
    names.append(WEIGHTS)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "kind": kind, "model_class": model_class,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dialab_version": _dialab_version(), "torch_version": torch.__version__,
        "files": [{"name": n, "sha256": sha256(out / n), "bytes": (out / n).stat().st_size}
                  for n in names]}
    if metrics is not None:
        manifest["metrics"] = dict(metrics)
    (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n",
                                encoding="utf-8")
    return out


def _remove_old_bundle(out: Path) -> None:
    """Exporting over an earlier bundle: drop its files first (the manifest before the rest,
    so an export that fails half-way leaves no bundle that looks complete)."""
    if not is_bundle(out):
        return
    old = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    (out / MANIFEST).unlink()
    for entry in old.get("files", []):
        (out / Path(entry["name"]).name).unlink(missing_ok=True)


def sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dialab_version() -> str:
    try:
        return version("dialab")
    except PackageNotFoundError:
        return "dev"


# ---- reading -------------------------------------------------------------------------------------
def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def open_bundle(path: str | Path, kind: str) -> Bundle:
    """Read ``path/manifest.json``, check the kind and format version, and verify every listed
    file's sha256; raises :class:`BundleError` naming the problem."""
    path = Path(path)
    if not is_bundle(path):
        raise BundleError(f"{path} is not an export bundle (no {MANIFEST}); export one with "
                          "`dialab export ckpt_path=... out=...` or pass a checkpoint (.ckpt)")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    found = manifest.get("kind")
    if found != kind:
        use = f"; use {KINDS[found]}" if found in KINDS else ""
        raise BundleError(f"{path} is a {found} bundle, not a {kind} bundle{use}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format_version {manifest.get('format_version')!r}; "
                          f"this dialab reads version {FORMAT_VERSION}")
    for entry in manifest["files"]:
        file = path / entry["name"]
        if not file.is_file():
            raise BundleError(f"{path}: {entry['name']} is listed in {MANIFEST} but missing")
        if sha256(file) != entry["sha256"]:
            raise BundleError(f"{file} does not match its sha256 in {MANIFEST}: the bundle was "
                              "edited or corrupted; export it again")
    return Bundle(path, manifest)


# ---- the DIET exporter ---------------------------------------------------------------------------
def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning training checkpoint (a pickle: only exporting reads one, never loading)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


def model_weights(checkpoint: Mapping[str, Any], prefix: str = "model."
                  ) -> dict[str, torch.Tensor]:
    """A sub-module's weights of a LightningModule checkpoint (by default ``model.``), prefix
    removed."""
    return {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items()
            if k.startswith(prefix)}


def export_nlu_bundle(checkpoint_path: str | Path, out_dir: str | Path,
                      metrics: Mapping[str, Any] | None = None, onnx: bool = False,
                      int8: bool = False) -> Path:
    """A DIET training checkpoint (``DIETLitModule``) → an ``nlu`` bundle in ``out_dir``.

    ``onnx`` adds ``model.onnx`` + ``onnx.json`` (see :mod:`nlu_models.onnx_export`), ``int8``
    (needs ``onnx``) also ``model.int8.onnx``. A DIET that cannot be exported (one that
    fine-tunes its encoder) gets a warning and a bundle without them."""
    return write_nlu_bundle(read_checkpoint(checkpoint_path), out_dir, metrics, onnx=onnx,
                            int8=int8)


def write_nlu_bundle(checkpoint: Mapping[str, Any], out_dir: str | Path,
                     metrics: Mapping[str, Any] | None = None, onnx: bool = False,
                     int8: bool = False) -> Path:
    from nlu_models.diet.labels import DIETLabels
    from nlu_models.diet.model import DIETConfig, DIETModel
    from nlu_models.inference import CHECKPOINT_FEATURIZERS_KEY

    if CHECKPOINT_FEATURIZERS_KEY not in checkpoint:
        raise ValueError("not a DIET checkpoint written by dialab's DIETLitModule "
                         f"(no '{CHECKPOINT_FEATURIZERS_KEY}' entry)")
    hparams = checkpoint["hyper_parameters"]
    config = DIETConfig.from_dict(dict(hparams["config"]))   # validates the stored keys
    files = {"config.json": config.to_dict(),
             "labels.json": DIETLabels.from_dict(dict(hparams["labels"])).to_dict(),
             "featurizers.json": checkpoint[CHECKPOINT_FEATURIZERS_KEY]}
    if hparams.get("fallback") is not None:
        from nlu_models.fallback import FILENAME, FallbackConfig

        files[FILENAME] = FallbackConfig.from_dict(dict(hparams["fallback"])).to_dict()
    weights = model_weights(checkpoint)
    selector_weights = model_weights(checkpoint, SELECTOR_PREFIX)
    if hparams.get("response_selector") is not None:
        files[SELECTOR_CONFIG] = DIETConfig.from_dict(dict(hparams["response_selector"])).to_dict()
    if int8 and not onnx:
        raise ValueError("int8=True quantizes the ONNX graph: it needs onnx=True")
    if onnx:
        from nlu_models.onnx_export import META_FILE, onnx_bundle_files

        model = DIETModel(config)
        model.load_state_dict(weights)
        files.update(onnx_bundle_files(model, int8=int8))
        if SELECTOR_CONFIG in files and META_FILE in files:  # DIET exported, so does its selector
            selector = DIETModel(DIETConfig.from_dict(files[SELECTOR_CONFIG]))
            selector.load_state_dict(selector_weights)
            files.update({SELECTOR_PREFIX + name: data
                          for name, data in onnx_bundle_files(selector, int8=int8).items()})
    weights.update({SELECTOR_PREFIX + k: v for k, v in selector_weights.items()})
    return write_bundle(out_dir, "nlu", DIETModel.__name__, files, weights, metrics)
