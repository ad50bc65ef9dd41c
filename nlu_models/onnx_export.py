"""DIET's inference graph as ONNX: ``model.onnx`` (+ ``model.int8.onnx``) and ``onnx.json`` in an
``nlu`` bundle, run by :class:`~nlu_models.onnx_runtime.OnnxNLUInterpreter` without torch.

Graph boundary — what runs inside ONNX and what outside:

- **Outside, before** (numpy): tokenizing and the sparse featurizers (``featurizers.json``), and
  batching. Sparse bags go in flat, as :func:`~nlu_models.diet.encoding.collate` builds them,
  but each entry carries the index of its bag (``seq_bags``: ``b·T + t``; ``sent_bags``: ``b``)
  instead of per-bag offsets: the sparse → dense projection (``EmbeddingBag`` with per-sample
  weights, ``mode="sum"``) becomes ``Gather`` of the kernel rows, times the values, then a
  segment sum (``index_add`` → ``ScatterND`` with ``add``). ``EmbeddingBag`` itself exports, but
  as an ONNX ``Loop`` over every bag; the gather + segment sum is one vectorised op per step.
- **Inside**: everything from the projection to the heads' scores — feature combining with the
  sentence slot, the transformer, the intent similarities (softmax ``intent_confidences``; for
  a multi-label model the independent sigmoid ones) and every CRF head's emission scores.
- **Outside, after** (numpy): Viterbi decoding with the CRF transitions, stored in ``onnx.json``
  (:func:`~nlu_models.onnx_runtime.viterbi_decode`), intent ranking, a multi-label model's
  thresholding (``multi_label_threshold`` in ``onnx.json``), and entity decoding.

Role and group heads score ``[token state; embed(entity tag)]`` with one linear layer, so they
depend on the *decoded* entity tags. The graph outputs their emissions without the tag term
(``role_emissions``: ``tokens @ W_tokens + b``) and ``onnx.json`` stores the tag term as a table
``entity_tag_emissions (entity tags, role tags)`` = ``embed(one_hot(e)) @ W_tag``: after the
entity Viterbi, ``emissions = role_emissions + table[entity_tags]`` — the same linear algebra,
split in two sums (differences of float rounding only).

Dynamic axes: ``batch`` and ``tokens`` on every batch input and output, and the number of
stored sparse entries (``seq_nnz``, ``sent_nnz``). Exported with ``torch.onnx.export(...,
dynamo=True)``; the fixed random connectivity masks are multiplied into the weights first so
the int8 quantizer sees plain weight matrices.

Not exported: a DIET that fine-tunes its Hugging Face encoder (``finetune_encoder``) — its
bundle keeps the torch path only. A DIET with *frozen* dense features exports (the dense
vectors are graph inputs), but its featurizer runs the HF encoder, so that path imports torch.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nlu_models.diet.model import DIETModel
from nlu_models.modules.dense import RandomlyConnectedDense
from nlu_models.onnx_runtime import INT8_FILE, META_FILE, META_FORMAT, META_VERSION, ONNX_FILE

OPSET = 18
log = logging.getLogger(__name__)


class UnsupportedForOnnx(ValueError):
    """The model cannot be exported to ONNX (e.g. it fine-tunes its encoder)."""


def can_export(model: DIETModel) -> str | None:
    """``None`` when the model exports, else the reason it does not."""
    if model.config.finetune_encoder:
        return ("it fine-tunes its Hugging Face encoder (finetune_encoder=true); the bundle "
                "keeps the torch path only")
    return None


class DIETInferenceGraph(nn.Module):
    """DIET's ``predict`` up to the CRF emission scores, as a function of plain tensors.

    Inputs (only those the model uses, in this order): ``mask (B, T) bool``; ``seq_ids,
    seq_values, seq_bags (seq_nnz,)``; ``sent_ids, sent_values, sent_bags (sent_nnz,)``;
    ``seq_dense (B, T, Ed)``, ``sent_dense (B, Ed)``. Outputs: ``intent_confidences (B, L)``
    when the model classifies intents, then ``{head}_emissions (B, T, tags)`` per CRF head.
    """

    def __init__(self, model: DIETModel) -> None:
        super().__init__()
        reason = can_export(model)
        if reason:
            raise UnsupportedForOnnx(f"cannot export this DIET to ONNX: {reason}")
        model = copy.deepcopy(model).eval()
        _bake_connection_masks(model)
        self.model = model
        c = model.config
        self.heads = model.active_heads
        self.input_names = ["mask"]
        if c.seq_sparse_dim:
            self.input_names += ["seq_ids", "seq_values", "seq_bags"]
        if c.sent_sparse_dim:
            self.input_names += ["sent_ids", "sent_values", "sent_bags"]
        if c.dense_dim:
            self.input_names += ["seq_dense", "sent_dense"]
        self.output_names = (["intent_confidences"] if c.intent_classification else []) + \
            [f"{head}_emissions" for head in self.heads]

    def forward(self, mask: Tensor, seq_ids: Tensor | None = None,
                seq_values: Tensor | None = None, seq_bags: Tensor | None = None,
                sent_ids: Tensor | None = None, sent_values: Tensor | None = None,
                sent_bags: Tensor | None = None, seq_dense: Tensor | None = None,
                sent_dense: Tensor | None = None) -> tuple[Tensor, ...]:
        m = self.model
        b, t = mask.shape
        seq = _combine(m.seq_input, seq_ids, seq_values, seq_bags, seq_dense, (b, t))
        sent = _combine(m.sent_input, sent_ids, sent_values, sent_bags, sent_dense, (b,))
        if sent is None:
            sent = seq.new_zeros(b, seq.shape[-1])
        if seq is None:
            seq = sent.new_zeros(b, t, sent.shape[-1])
        if not m.same_width:
            seq, sent = m.seq_to_concat(seq), m.sent_to_concat(sent)
        # DIETModel.combine_features, with the sentence slot written by a mask, not index_put
        seq = seq * mask.unsqueeze(-1).to(seq.dtype)                            # (B, T, E)
        lengths = mask.sum(dim=1)                                                # (B,)
        combined = torch.cat([seq, seq.new_zeros(b, 1, seq.shape[-1])], dim=1)   # (B, T+1, E)
        slot = torch.arange(t + 1, device=mask.device)[None, :] == lengths[:, None]  # (B, T+1)
        combined = torch.where(slot.unsqueeze(-1), sent.unsqueeze(1), combined)
        full_mask = torch.cat([mask, mask.new_zeros(b, 1)], dim=1) | slot        # (B, T+1)
        hidden = m.transformer(m.text_ffnn(combined), full_mask)                 # (B, T+1, U)
        if m.config.number_of_transformer_layers > 0:
            hidden = torch.nn.functional.gelu(hidden)
        outputs = []
        if m.config.intent_classification:
            text = m.sentence_embedding(hidden, lengths)                         # (B, 20)
            outputs.append(m.intent_loss.confidences(text, m.label_embeddings()))  # (B, L)
        for head in self.heads:
            if head == "entity":
                outputs.append(m.tag_emissions(hidden, head, None))              # (B, T, tags)
            else:  # the token part of the linear layer; the entity-tag part is in onnx.json
                linear = m.tag_logits[head]
                width = hidden.shape[-1]
                outputs.append(torch.nn.functional.linear(
                    hidden[:, :-1], linear.weight[:, :width], linear.bias))
        return tuple(outputs)

    def dynamic_shapes(self) -> dict[str, dict[int, Any]]:
        batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
        seq_nnz, sent_nnz = torch.export.Dim("seq_nnz"), torch.export.Dim("sent_nnz")
        shapes: dict[str, dict[int, Any]] = {
            "mask": {0: batch, 1: tokens},
            "seq_ids": {0: seq_nnz}, "seq_values": {0: seq_nnz}, "seq_bags": {0: seq_nnz},
            "sent_ids": {0: sent_nnz}, "sent_values": {0: sent_nnz}, "sent_bags": {0: sent_nnz},
            "seq_dense": {0: batch, 1: tokens}, "sent_dense": {0: batch}}
        return {name: shapes[name] for name in self.input_names}

    def example_inputs(self) -> dict[str, Tensor]:
        """A batch of 3 rows of up to 5 tokens (sizes > 1, so no axis is specialised)."""
        c = self.model.config
        generator = torch.Generator().manual_seed(0)
        lengths = torch.tensor([5, 2, 4])
        b, t = len(lengths), int(lengths.max())
        mask = torch.arange(t)[None, :] < lengths[:, None]
        inputs: dict[str, Tensor] = {"mask": mask}
        if c.seq_sparse_dim:
            tokens = torch.nonzero(mask.reshape(-1)).squeeze(1)                   # flat b·T + t
            bags = tokens.repeat_interleave(3)
            inputs.update(seq_ids=torch.randint(1, c.seq_sparse_dim + 1, bags.shape,
                                                generator=generator),
                          seq_values=torch.rand(bags.shape, generator=generator), seq_bags=bags)
        if c.sent_sparse_dim:
            bags = torch.arange(b).repeat_interleave(6)
            inputs.update(sent_ids=torch.randint(1, c.sent_sparse_dim + 1, bags.shape,
                                                 generator=generator),
                          sent_values=torch.rand(bags.shape, generator=generator),
                          sent_bags=bags)
        if c.dense_dim:
            inputs.update(seq_dense=torch.randn(b, t, c.dense_dim, generator=generator),
                          sent_dense=torch.randn(b, c.dense_dim, generator=generator))
        return inputs

    def metadata(self) -> dict[str, Any]:
        """``onnx.json``: inputs, outputs and what decoding needs (CRF transitions per head,
        the entity-tag term of the role/group heads)."""
        m = self.model
        heads: dict[str, Any] = {}
        with torch.no_grad():
            for head in self.heads:
                entry: dict[str, Any] = {"transitions": _plain(m.crfs[head].transitions)}
                if head != "entity":
                    width = m.transformer.out_features
                    one_hot = torch.eye(m.config.num_entity_tags)
                    tag_term = m.entity_tag_embed(one_hot) @ m.tag_logits[head].weight[:, width:].T
                    entry["entity_tag_emissions"] = _plain(tag_term)
                heads[head] = entry
        return {"format": META_FORMAT, "version": META_VERSION, "opset": OPSET,
                "inputs": self.input_names, "outputs": self.output_names,
                "intent_classification": m.config.intent_classification,
                "ranking_length": m.config.ranking_length,
                "multi_label_threshold": m.config.multi_label_threshold, "heads": heads}


def _combine(combiner: nn.Module, ids: Tensor | None, values: Tensor | None,
             bags: Tensor | None, dense: Tensor | None, shape: tuple) -> Tensor | None:
    """``_FeatureCombiner`` in eval mode, the sparse bags summed by bag index."""
    parts = []
    if combiner.sparse_dim and ids is not None:
        projection = combiner.dense_for_sparse
        # embedding → ONNX Gather (which the int8 quantizer handles; weight[ids] → GatherND)
        rows = torch.nn.functional.embedding(ids, projection.weight) * values.unsqueeze(-1)
        count = shape[0] * shape[1] if len(shape) == 2 else shape[0]
        summed = rows.new_zeros(count, rows.shape[-1]).index_add(0, bags, rows)   # (N, E)
        if projection.bias is not None:
            summed = summed + projection.bias
        parts.append(summed.reshape(*shape, -1))
    if combiner.dense_dim and dense is not None:
        parts.append(dense)
    if not parts:
        return None
    return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


def _bake_connection_masks(model: nn.Module) -> None:
    """Multiply each fixed connectivity mask into its weight (exact: the mask is 0/1), so the
    exported graph holds plain weight matrices."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, RandomlyConnectedDense) and module.mask is not None:
                module.weight.mul_(module.mask)
                module.mask = None


def _plain(tensor: Tensor) -> list:
    return tensor.detach().float().cpu().tolist()  # float32 values: JSON floats round-trip


# ---- export ------------------------------------------------------------------------------------
def export_onnx(model: DIETModel, int8: bool = False) -> dict[str, bytes | dict[str, Any]]:
    """The bundle files of the ONNX path: ``{"model.onnx": bytes, "onnx.json": metadata}``
    (+ ``"model.int8.onnx"`` with ``int8``). Raises :class:`UnsupportedForOnnx` for a model
    that does not export."""
    import onnx

    graph = DIETInferenceGraph(model).eval()
    with torch.no_grad(), _quiet_exporters():
        program = torch.onnx.export(graph, (), None, kwargs=graph.example_inputs(), dynamo=True,
                                    input_names=graph.input_names,
                                    output_names=graph.output_names,
                                    dynamic_shapes=graph.dynamic_shapes(), opset_version=OPSET,
                                    external_data=False, verbose=False)
    proto = program.model_proto
    for node in proto.graph.node:  # the exporter's per-node stack traces: local paths, bulk
        del node.metadata_props[:]
    files: dict[str, Any] = {ONNX_FILE: proto.SerializeToString()}
    meta = graph.metadata()
    meta["files"] = {"fp32": ONNX_FILE}
    if int8:
        with tempfile.TemporaryDirectory(prefix="dialab-onnx-") as tmp:
            fp32, quantized = Path(tmp) / ONNX_FILE, Path(tmp) / INT8_FILE
            onnx.save(proto, str(fp32))
            with _quiet_exporters():
                files[INT8_FILE] = quantize_int8(fp32, quantized).read_bytes()
        meta["files"]["int8"] = INT8_FILE
    files[META_FILE] = meta
    return files


@contextlib.contextmanager
def _quiet_exporters():
    """The exporter, its optimiser and the quantizer log every pass at INFO (the quantizer on
    the root logger, which Hydra sets to INFO) and warn about torchvision ops: keep the
    export's output to errors."""
    levels = {"torch.onnx": logging.ERROR, "onnxscript": logging.ERROR,
              "onnx_ir": logging.ERROR, "onnxruntime": logging.ERROR, "": logging.WARNING}
    saved = {}
    for name, level in levels.items():
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """Dynamic int8 quantization (``onnxruntime.quantization.quantize_dynamic``, after its
    recommended pre-processing: shape inference and basic graph optimisation): int8 weights
    for the MatMuls and the sparse projection's Gathers, activations quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = Path(target).with_suffix(".prepared.onnx")
    quant_pre_process(str(source), str(prepared))
    quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
    prepared.unlink()
    return Path(target)


def onnx_bundle_files(model: DIETModel, int8: bool) -> dict[str, Any]:
    """:func:`export_onnx`, or ``{}`` with a warning for a model that does not export."""
    reason = can_export(model)
    if reason:
        log.warning("no ONNX graph in this bundle: %s", reason)
        return {}
    return export_onnx(model, int8=int8)


__all__ = ["DIETInferenceGraph", "INT8_FILE", "META_FILE", "ONNX_FILE", "UnsupportedForOnnx",
           "can_export", "export_onnx", "onnx_bundle_files", "quantize_int8"]
