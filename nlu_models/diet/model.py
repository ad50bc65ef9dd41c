"""DIET: Dual Intent and Entity Transformer (Bunk et al. 2020), in plain PyTorch.

Reads top to bottom: :class:`DIETConfig` (every default equals Rasa 3.x's ``DIETClassifier`` as
the default ``config.yml`` sets it up), the :class:`DIETInputs` a batch carries, then
:class:`DIETModel` — feature combining, the sentence slot after the last token, the transformer,
the intent head (dot-product similarity against embedded labels; with ``intent_loss: sigmoid``
an independent sigmoid per label, for multi-label intents), CRF heads for entity, role and group,
and the optional masked-LM auxiliary loss.

Dense features are normally precomputed by a frozen encoder and carried in the batch. With
``finetune_encoder`` the model owns the encoder (:class:`HFWordEncoder`) and computes them from
the batch's sub-token ids, so the encoder trains with the task.

Shape legend: ``B`` batch, ``T`` tokens, ``S`` sub-tokens, ``K`` features per bag, ``E`` hidden
size, ``L`` labels.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlu_models.featurize.dense import HFWordEncoder
from nlu_models.modules import (
    CRF,
    DenseForSparse,
    DotProductLoss,
    Dropout,
    Ffnn,
    SigmoidLabelLoss,
    SoftmaxLabelLoss,
    SparseDropout,
    TransformerEncoder,
    kernel_parameters,
    rows_rounded,
    time_major,
)

TAG_HEADS = ("entity", "role", "group")
INTENT_LOSSES = ("dot_product", "softmax", "sigmoid")


@dataclass
class DIETConfig:
    """Architecture and loss settings. Input sizes are filled in from the fitted featurizers."""

    # inputs and label spaces (set from the data)
    seq_sparse_dim: int = 0            # sequence-feature vocabulary size (0 = no sparse features)
    sent_sparse_dim: int = 0           # sentence-feature vocabulary size
    dense_dim: int = 0                 # width of dense (pretrained encoder) features
    # fine-tuning: the model owns the dense encoder and trains it (batches carry sub-token ids)
    finetune_encoder: bool = False
    encoder_name_or_path: str | None = None  # the dense featurizer's model, to rebuild it
    encoder_word_pooling: str = "mean"       # as the featurizer pools: "mean" | "first"
    encoder_sentence_pooling: str = "cls"    # "cls" | "mean"
    num_intents: int = 0
    num_entity_tags: int = 0           # including "O"; 0 or 1 = no entity head
    num_role_tags: int = 0
    num_group_tags: int = 0
    # architecture (Rasa 3.x DIETClassifier defaults)
    hidden_layers_text: list[int] = field(default_factory=list)
    hidden_layers_label: list[int] = field(default_factory=list)
    transformer_size: int = 256
    number_of_transformer_layers: int = 2
    number_of_attention_heads: int = 4
    use_key_relative_attention: bool = False
    use_value_relative_attention: bool = False
    max_relative_position: int = 5
    unidirectional_encoder: bool = False
    embedding_dimension: int = 20
    dense_dimension_text: int = 128
    dense_dimension_label: int = 20
    concat_dimension_text: int = 128
    drop_rate: float = 0.2
    drop_rate_attention: float = 0.0
    connection_density: float = 0.2
    use_sparse_input_dropout: bool = True
    use_dense_input_dropout: bool = True
    # tasks
    intent_classification: bool = True
    entity_recognition: bool = True
    use_masked_language_model: bool = False
    # intent loss: Rasa's sampled dot-product loss, a full softmax over all intents, or
    # multi-label: an independent sigmoid per (atomic) intent, predicted at or above the threshold
    intent_loss: str = "dot_product"   # "dot_product" | "softmax" | "sigmoid"
    multi_label_threshold: float = 0.5
    number_of_negative_examples: int = 20
    similarity_type: str = "auto"
    loss_type: str = "cross_entropy"
    constrain_similarities: bool = True
    scale_loss: bool = False
    maximum_positive_similarity: float = 0.8
    maximum_negative_similarity: float = -0.4
    use_maximum_negative_similarity: bool = True
    negative_margin_scale: float = 0.8
    ranking_length: int = 10

    def __post_init__(self) -> None:
        if self.intent_loss not in INTENT_LOSSES:
            raise ValueError(f"intent_loss must be one of {INTENT_LOSSES}, not "
                             f"{self.intent_loss!r}")
        if not 0.0 < self.multi_label_threshold < 1.0:
            raise ValueError(f"multi_label_threshold must be in (0, 1), not "
                             f"{self.multi_label_threshold}")
        if not (self.seq_sparse_dim or self.sent_sparse_dim or self.dense_dim):
            raise ValueError("DIET needs input features: seq_sparse_dim, sent_sparse_dim or "
                             "dense_dim must be > 0 (fit a featurizer pipeline first)")
        if self.finetune_encoder and not (self.encoder_name_or_path and self.dense_dim):
            raise ValueError("finetune_encoder needs encoder_name_or_path and dense_dim (a "
                             "dense featurizer in the pipeline)")
        if self.use_masked_language_model and self.number_of_transformer_layers == 0:
            raise ValueError("use_masked_language_model needs number_of_transformer_layers > 0")

    @property
    def multi_label(self) -> bool:
        """Whether the intent head is multi-label (``intent_loss: sigmoid``)."""
        return self.intent_loss == "sigmoid"

    @property
    def has_entities(self) -> bool:
        return self.entity_recognition and self.num_entity_tags > 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "DIETConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DIETConfig keys: {', '.join(unknown)}")
        return cls(**values)


@dataclass
class DIETInputs:
    """One padded batch. Sparse bags use 1-based feature ids with 0 as padding.

    Sparse bags come padded — ids/values (B, T, K) and (B, K) — or flat without padding: then
    ids/values are (nnz,) and ``seq_offsets`` (B·T,) / ``sent_offsets`` (B,) give where each
    token's / sentence's bag starts (what :func:`~nlu_models.diet.encoding.collate` builds).
    """

    mask: Tensor                           # (B, T) bool, True on real tokens
    seq_ids: Tensor | None = None          # (B, T, K) long, or (nnz,) with seq_offsets
    seq_values: Tensor | None = None       # (B, T, K) float, or (nnz,)
    sent_ids: Tensor | None = None         # (B, K) long, or (nnz,) with sent_offsets
    sent_values: Tensor | None = None      # (B, K) float, or (nnz,)
    seq_offsets: Tensor | None = None      # (B·T,) long: start of each token's bag
    sent_offsets: Tensor | None = None     # (B,) long: start of each sentence's bag
    seq_dense: Tensor | None = None        # (B, T, Ed) float
    sent_dense: Tensor | None = None       # (B, Ed) float
    encoder_input_ids: Tensor | None = None       # (B, S) long: sub-tokens, for finetune_encoder
    encoder_attention_mask: Tensor | None = None  # (B, S) long
    encoder_word_index: Tensor | None = None      # (B, S) long: each sub-token's word (-1: none)
    intent_ids: Tensor | None = None       # (B,) long; -1: no intent (left out of the loss)
    intent_targets: Tensor | None = None   # (B, L) float multi-hot (multi-label); 0-rows: none
    response_ids: Tensor | None = None     # (B,) long: response-selector labels, -1: none
    entity_tags: Tensor | None = None      # (B, T) long
    role_tags: Tensor | None = None        # (B, T) long
    group_tags: Tensor | None = None       # (B, T) long

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(dim=1)        # (B,)

    def tags(self, head: str) -> Tensor | None:
        return getattr(self, f"{head}_tags")


@dataclass
class DIETOutput:
    loss: Tensor
    losses: dict[str, Tensor]              # per term: intent, entity, role, group, mask
    metrics: dict[str, Tensor]             # training-batch metrics: intent_acc, mask_acc


@dataclass
class DIETPrediction:
    intent_confidences: Tensor | None      # (B, L) softmax over all intents (sigmoid: each)
    tags: dict[str, Tensor]                # head → (B, T) decoded tag ids
    tag_confidences: dict[str, Tensor]     # head → (B, T)


class DIETModel(nn.Module):
    def __init__(self, config: DIETConfig) -> None:
        super().__init__()
        self.config = c = config
        # -- dense features from a fine-tuned encoder (else they come precomputed in the batch)
        self.word_encoder = _fine_tuned_encoder(c) if c.finetune_encoder else None
        # -- input features → one (B, T+1, E) sequence with the sentence slot after the tokens
        self.seq_input = _FeatureCombiner(c.seq_sparse_dim, c.dense_dim, c.dense_dimension_text,
                                          c.drop_rate, c.use_sparse_input_dropout,
                                          c.use_dense_input_dropout)
        self.sent_input = _FeatureCombiner(c.sent_sparse_dim, c.dense_dim,
                                           c.dense_dimension_text, c.drop_rate,
                                           c.use_sparse_input_dropout, c.use_dense_input_dropout)
        width = max(self.seq_input.out_features, self.sent_input.out_features)
        self.same_width = self.seq_input.out_features == self.sent_input.out_features
        if not self.same_width:  # Rasa projects both to concat_dimension when widths differ
            width = c.concat_dimension_text
            self.seq_to_concat = Ffnn(self.seq_input.out_features, [width], c.drop_rate,
                                      c.connection_density)
            self.sent_to_concat = Ffnn(self.sent_input.out_features, [width], c.drop_rate,
                                       c.connection_density)
        self.text_ffnn = Ffnn(width, c.hidden_layers_text, c.drop_rate, c.connection_density)
        # -- transformer over tokens + sentence slot
        self.transformer = TransformerEncoder(
            input_features=self.text_ffnn.out_features,
            num_layers=c.number_of_transformer_layers, units=c.transformer_size,
            num_heads=c.number_of_attention_heads, dropout=c.drop_rate,
            attention_dropout=c.drop_rate_attention, density=c.connection_density,
            unidirectional=c.unidirectional_encoder,
            use_key_relative_position=c.use_key_relative_attention,
            use_value_relative_position=c.use_value_relative_attention,
            max_relative_position=c.max_relative_position)
        hidden = self.transformer.out_features
        # -- intent head: text embedding vs. bag-of-words label embedding
        if c.intent_classification:
            self.embed_text = nn.Linear(hidden, c.embedding_dimension)
            self.label_features = nn.Linear(c.num_intents, c.dense_dimension_label)  # one-hot in
            self.label_ffnn = Ffnn(c.dense_dimension_label, c.hidden_layers_label, c.drop_rate,
                                   c.connection_density)
            self.embed_label = nn.Linear(self.label_ffnn.out_features, c.embedding_dimension)
            self.intent_loss = self._label_loss(c.scale_loss, c.maximum_negative_similarity)
        # -- CRF heads: entity on the transformer output; role/group also see entity tags
        self.tag_sizes = {"entity": c.num_entity_tags, "role": c.num_role_tags,
                          "group": c.num_group_tags}
        self.tag_logits = nn.ModuleDict()
        self.crfs = nn.ModuleDict()
        if c.has_entities:
            if any(head != "entity" for head in self.active_heads):  # only role/group use it
                self.entity_tag_embed = nn.Linear(c.num_entity_tags, c.embedding_dimension)
            for head in self.active_heads:
                width_in = hidden + (c.embedding_dimension if head != "entity" else 0)
                self.tag_logits[head] = nn.Linear(width_in, self.tag_sizes[head])
                self.crfs[head] = CRF(self.tag_sizes[head])
        # -- masked language model auxiliary task
        if c.use_masked_language_model:
            self.mask_vector = nn.Parameter(torch.zeros(self.text_ffnn.out_features))
            nn.init.normal_(self.mask_vector, std=0.02)
            self.embed_lm_mask = nn.Linear(hidden, c.embedding_dimension)
            self.embed_golden_token = nn.Linear(self.text_ffnn.out_features,
                                                c.embedding_dimension)
            self.mask_loss = DotProductLoss.from_config(c, scale_loss=False)
            # frozen random projection that gives identical tokens identical ids
            self.register_buffer("token_id_projection",
                                 torch.randn(self.text_ffnn.out_features, 2), persistent=False)

    def _label_loss(self, scale_loss: bool, max_neg_sim: float) -> nn.Module:
        c = self.config
        if c.intent_loss == "softmax":
            return SoftmaxLabelLoss()
        if c.intent_loss == "sigmoid":
            return SigmoidLabelLoss(c.multi_label_threshold)
        return DotProductLoss.from_config(c, scale_loss=scale_loss, max_neg_sim=max_neg_sim)

    @property
    def active_heads(self) -> list[str]:
        return [h for h in TAG_HEADS if self.tag_sizes[h] > 1] if self.config.has_entities else []

    # ---- encoding ------------------------------------------------------------------------------
    def dense_features(self, x: DIETInputs) -> tuple[Tensor | None, Tensor | None]:
        """Word and sentence vectors: precomputed in the batch, or from the fine-tuned encoder."""
        if self.word_encoder is None:
            return x.seq_dense, x.sent_dense
        if x.encoder_input_ids is None:
            raise ValueError("this DIET fine-tunes its encoder: batches need encoder_input_ids "
                             "(collate with the dense featurizer's tokenizer)")
        return self.word_encoder(x.encoder_input_ids, x.encoder_attention_mask,
                                 x.encoder_word_index, num_words=x.mask.shape[1])

    def combine_features(self, x: DIETInputs) -> tuple[Tensor, Tensor]:
        """Token features with the sentence vector written at index ``len(tokens)``.

        Returns the (B, T+1, E) sequence and its (B, T+1) mask of real positions.
        """
        mask = x.mask
        seq_dense, sent_dense = self.dense_features(x)                       # (B, T, Ed), (B, Ed)
        seq = self.seq_input(x.seq_ids, x.seq_values, seq_dense, x.seq_offsets,
                             mask.shape)                                     # (B, T, E)
        sent = self.sent_input(x.sent_ids, x.sent_values, sent_dense, x.sent_offsets,
                               mask.shape[:1])                               # (B, E)
        if sent is None:
            sent = torch.zeros(seq.shape[0], seq.shape[-1], device=seq.device, dtype=seq.dtype)
        if not self.same_width:
            seq, sent = self.seq_to_concat(seq), self.sent_to_concat(sent)
        seq = seq * mask.unsqueeze(-1)
        combined = torch.cat([seq, torch.zeros_like(seq[:, :1])], dim=1)     # (B, T+1, E)
        lengths = mask.sum(dim=1)
        batch = torch.arange(combined.shape[0], device=combined.device)
        combined = combined.index_put((batch, lengths), sent)
        full_mask = torch.cat([mask, torch.zeros_like(mask[:, :1])], dim=1)
        real = torch.ones_like(lengths, dtype=torch.bool)
        full_mask = full_mask.index_put((batch, lengths), real)
        return self.text_ffnn(combined), full_mask

    def encode(self, x: DIETInputs, mlm: bool = False) -> dict[str, Tensor]:
        """Run the text side. With ``mlm`` (training), mask tokens first and keep what the MLM
        loss needs."""
        features, full_mask = self.combine_features(x)                       # (B, T+1, E)
        out: dict[str, Tensor] = {"mask": full_mask}
        if mlm:
            features, out["lm_positions"], out["lm_golden"] = self._mask_tokens(features, x.mask)
        hidden = self.transformer(features, full_mask)                       # (B, T+1, U)
        if self.config.number_of_transformer_layers > 0:
            hidden = F.gelu(hidden)
        out["hidden"] = hidden
        return out

    def _mask_tokens(self, features: Tensor, token_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rasa's InputMask: 15% of real tokens; 70% → mask vector, 10% → a random token's
        features, 20% unchanged. Returns the new features, the (B, T+1) bool positions and
        the pre-mask features at those positions."""
        full_token_mask = torch.cat([token_mask, torch.zeros_like(token_mask[:, :1])], dim=1)
        draw = torch.rand(full_token_mask.shape, device=features.device)
        positions = (draw >= 0.85) & full_token_mask                           # (B, T+1)
        golden = features[positions]                                            # (M, E)
        choice = torch.rand(full_token_mask.shape, device=features.device)
        shuffled = features.reshape(-1, features.shape[-1])
        shuffled = shuffled[torch.randperm(shuffled.shape[0], device=features.device)]
        shuffled = shuffled.reshape(features.shape)
        to_mask = (positions & (choice < 0.7)).unsqueeze(-1)
        to_random = (positions & (choice >= 0.7) & (choice < 0.8)).unsqueeze(-1)
        features = torch.where(to_mask, self.mask_vector.to(features.dtype), features)
        features = torch.where(to_random, shuffled, features)
        return features, positions, golden

    # ---- intent head ---------------------------------------------------------------------------
    def sentence_embedding(self, hidden: Tensor, lengths: Tensor) -> Tensor:
        batch = torch.arange(hidden.shape[0], device=hidden.device)
        return self.embed_text(hidden[batch, lengths])                        # (B, 20)

    def label_embeddings(self) -> Tensor:
        """Embeddings of all intents, from their one-hot features (Rasa's bag of words)."""
        one_hot = self.label_features.weight.t() + self.label_features.bias   # (L, 20)
        return self.embed_label(self.label_ffnn(one_hot))                      # (L, 20)

    # ---- entity heads --------------------------------------------------------------------------
    def tag_emissions(self, hidden: Tensor, head: str, entity_tags: Tensor | None) -> Tensor:
        """CRF emissions ``(..., tags)`` of ``hidden``'s tokens: ``(B, T+1, U)`` (the sentence
        slot is dropped) or already packed ``(N, U)`` with ``entity_tags`` alike."""
        tokens = hidden[:, :-1] if hidden.dim() == 3 else hidden               # (..., U)
        if head != "entity":
            one_hot = F.one_hot(entity_tags, self.config.num_entity_tags).to(tokens.dtype)
            tokens = torch.cat([tokens, self.entity_tag_embed(one_hot)], dim=-1)
        return rows_rounded(self.tag_logits[head], tokens)                     # (..., tags)

    def _tag_losses(self, hidden: Tensor, x: DIETInputs) -> dict[str, Tensor]:
        """Each CRF head's mean negative log-likelihood over the batch. The heads see only the
        real tokens, packed time-major (:func:`time_major`): no padded emissions, and the
        forward algorithm advances only the rows still running."""
        heads = [head for head in self.active_heads if x.tags(head) is not None]
        if not heads:
            return {}
        if not bool(x.mask.any()):  # no tokens at all: zero, still attached to the graph
            return {head: hidden.sum() * 0.0 for head in heads}
        rows, steps, batch_sizes = time_major(x.lengths)
        tokens = hidden[rows, steps]                                           # (N, U)
        entity_tags = x.entity_tags[rows, steps] if x.entity_tags is not None else None
        losses = {}
        for head in heads:
            emissions = self.tag_emissions(tokens, head, entity_tags)         # (N, tags)
            log_likelihood = self.crfs[head].packed_log_likelihood(
                emissions, x.tags(head)[rows, steps], batch_sizes)            # (rows with tokens,)
            losses[head] = -log_likelihood.sum() / x.mask.shape[0]  # empty rows count as 0
        return losses

    # ---- training ------------------------------------------------------------------------------
    def forward(self, x: DIETInputs) -> DIETOutput:
        """Losses on a labelled batch (the sum is Rasa's total loss without L2)."""
        c = self.config
        encoded = self.encode(x, mlm=c.use_masked_language_model and self.training)
        hidden, lengths = encoded["hidden"], x.lengths
        losses: dict[str, Tensor] = {}
        metrics: dict[str, Tensor] = {}
        known = self.labelled_rows(x)
        if c.intent_classification and known is not None and known.any():
            text = self.sentence_embedding(hidden[known], lengths[known])
            labels = self.label_embeddings()
            if c.multi_label:
                losses["intent"], metrics["intent_acc"] = self.intent_loss(
                    text, x.intent_targets[known], labels)
            else:
                ids = torch.arange(labels.shape[0], device=labels.device)
                intent_ids = x.intent_ids[known]
                losses["intent"], metrics["intent_acc"] = self.intent_loss(
                    text, labels[intent_ids], intent_ids, labels, ids)
        losses.update(self._tag_losses(hidden, x))
        if "lm_positions" in encoded and encoded["lm_positions"].any():
            losses["mask"], metrics["mask_acc"] = self._mlm_loss(encoded)
        if not losses:
            raise ValueError("the batch has no labels for any enabled task")
        return DIETOutput(loss=sum(losses.values()), losses=losses, metrics=metrics)

    def labelled_rows(self, x: DIETInputs) -> Tensor | None:
        """(B,) bool: the rows with a gold intent (the others stay out of the intent loss):
        an id ≥ 0, or for a multi-label head at least one target; None without labels."""
        if self.config.multi_label:
            return x.intent_targets.any(dim=-1) if x.intent_targets is not None else None
        return x.intent_ids >= 0 if x.intent_ids is not None else None

    def _mlm_loss(self, encoded: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        positions, golden = encoded["lm_positions"], encoded["lm_golden"]
        predicted = self.embed_lm_mask(encoded["hidden"][positions])          # (M, 20)
        targets = self.embed_golden_token(golden)                             # (M, 20)
        keys = (golden.detach() @ self.token_id_projection).round(decimals=4)  # (M, 2)
        _, token_ids = torch.unique(keys, dim=0, return_inverse=True)          # (M,)
        return self.mask_loss(predicted, targets, token_ids, targets, token_ids)

    # ---- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: DIETInputs) -> DIETPrediction:
        hidden, lengths = self.encode(x)["hidden"], x.lengths
        confidences = None
        if self.config.intent_classification:
            text = self.sentence_embedding(hidden, lengths)
            confidences = self.intent_loss.confidences(text, self.label_embeddings())
        tags: dict[str, Tensor] = {}
        tag_conf: dict[str, Tensor] = {}
        for head in self.active_heads:
            emissions = self.tag_emissions(hidden, head, tags.get("entity"))
            tags[head], tag_conf[head] = self.crfs[head].decode(emissions, lengths)
        return DIETPrediction(confidences, tags, tag_conf)

    # ---- regularisation and parameter groups ----------------------------------------------------
    def encoder_parameters(self) -> list[nn.Parameter]:
        """The fine-tuned encoder's weights (none when features are precomputed)."""
        return list(self.word_encoder.parameters()) if self.word_encoder is not None else []

    def regularized_parameters(self) -> list[nn.Parameter]:
        """Kernels that carry Rasa's L2 term: every weight matrix and the CRF transitions
        (not biases, LayerNorms, the mask vector, position tables or a fine-tuned encoder)."""
        return kernel_parameters(self, exclude=self.encoder_parameters())


def _fine_tuned_encoder(c: DIETConfig) -> HFWordEncoder:
    """The dense featurizer's encoder, pretrained weights loaded, as a trainable sub-module."""
    encoder = HFWordEncoder(c.encoder_name_or_path, c.encoder_word_pooling,
                            c.encoder_sentence_pooling)
    if encoder.dim != c.dense_dim:
        raise ValueError(f"encoder {c.encoder_name_or_path!r} has width {encoder.dim}, but "
                         f"dense_dim is {c.dense_dim}")
    return encoder


class _FeatureCombiner(nn.Module):
    """Rasa's ConcatenateSparseDenseFeatures for one feature type (sequence or sentence):
    sparse → SparseDropout → DenseForSparse → Dropout, concatenated with dense features."""

    def __init__(self, sparse_dim: int, dense_dim: int, units: int, drop_rate: float,
                 sparse_dropout: bool, dense_dropout: bool) -> None:
        super().__init__()
        self.sparse_dim, self.dense_dim = sparse_dim, dense_dim
        if sparse_dim:
            self.sparse_dropout = SparseDropout(drop_rate if sparse_dropout else 0.0)
            self.dense_for_sparse = DenseForSparse(sparse_dim, units)
            self.dropout = Dropout(drop_rate if dense_dropout else 0.0)
        self.out_features = (units if sparse_dim else 0) + dense_dim

    def forward(self, ids: Tensor | None, values: Tensor | None, dense: Tensor | None,
                offsets: Tensor | None = None, shape: tuple[int, ...] = ()) -> Tensor | None:
        """Padded bags, or flat bags with ``offsets`` reshaped to ``shape`` (B, T) or (B,)."""
        parts = []
        if self.sparse_dim and ids is not None:
            projected = self.dense_for_sparse(ids, self.sparse_dropout(values), offsets)
            if offsets is not None:
                projected = projected.reshape(*shape, -1)                     # (B, [T,] E)
            parts.append(self.dropout(projected))
        if self.dense_dim and dense is not None:
            parts.append(dense)
        if not parts:
            return None
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


def rank_intents(confidences: Tensor, ranking_length: int) -> Tensor:
    """Zero all but the top ``ranking_length`` confidences per row (Rasa's ranking; 0 = keep
    all), without renormalising."""
    if ranking_length <= 0 or ranking_length >= confidences.shape[-1]:
        return confidences
    top = confidences.topk(ranking_length, dim=-1)
    return torch.zeros_like(confidences).scatter(-1, top.indices, top.values)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["INTENT_LOSSES", "DIETConfig", "DIETInputs", "DIETModel", "DIETOutput", "DIETPrediction",
           "TAG_HEADS", "count_parameters", "rank_intents"]
