"""TED: Transformer Embedding Dialogue policy (Vlasov et al. 2019), in plain PyTorch.

Reads top to bottom: :class:`TEDConfig` (defaults equal Rasa 3.6's ``TEDPolicy``, reference
§3.3), the :class:`TEDInputs` a batch carries, the output dataclasses, then :class:`TEDModel` —
per-turn features, the dialogue transformer, the action embeddings and the label loss.

Two modes, as Rasa's two tracker featurizers:

- ``max_history``: each example is the history before one action. Its real turns are reversed
  (``tf.reverse_sequence``) so the current turn sits at position 0, attention is bidirectional,
  and only position 0 is embedded: one prediction per example.
- ``full_dialogue``: causal attention; every turn predicts the action after it, the loss is
  masked to labelled turns. Unlike Rasa, which reads only the last turn at inference,
  :meth:`TEDModel.predict` returns every position (the caller reads ``length - 1``).

End-to-end user text (``text``, on when the state featurizer carries a fitted NLU pipeline:
``featurizers`` in the TED model config): a user turn's text enters as its *sentence* features,
a sparse bag of (id, value) pairs, through its own sparse input dropout → ``DenseForSparse``
(``dense_dimension_text``) → ``Ffnn([encoding_dimension])``, concatenated to the turn beside the
intent. Which turns carry text and which carry the intent is decided by the featurizer's
versions (:func:`dialogue_models.featurize.state_versions`): a turn is its intent when it has
one, else its text; a current turn with both also trains (and is predicted) as its text alone,
and :class:`~dialogue_models.policies.ted.TEDPolicy` keeps the text prediction when it beats
the intent one (``e2e_confidence_threshold``).

What differs from Rasa, beyond the above: the other inputs are small dense multi-hot tensors, so
their ``DenseForSparse`` is an ``nn.Linear`` (same maths, bias included). Not built: Rasa's text
sequence transformer (``RasaSequenceLayer`` over the text's tokens; only sentence features are
used here), user intent + text *summed* into one 50-wide user vector (here they are two
concatenated parts), and TED's entity recognition on the text. Bot texts as turn features
(``action_text``, when the state featurizer has ``action_text``: ``model.prev_action_text``, on
in ``model=ted_e2e``): the previous action is read by its string's sentence features, encoded as
the user text is, instead of its one-hot ``action_name`` (which the featurizer then leaves out).
As a label, an utterance is one-hot and, with ``label_action_text`` (on in ``model=ted_e2e``),
also its words: the sentence features of the action's string in the user text's vocabulary (no
sequence layer), encoded and summed with the one-hot encoding as Rasa sums label_action_name
and label_action_text. In ``full_dialogue`` the sampled negatives come from labelled turns only
(Rasa also samples padded ones before masking the loss), and a turn with both an intent and a
text is its intent only (no text version).

Shape legend: ``B`` batch, ``D`` dialogue turns, ``F`` features of one attribute, ``E`` hidden
size, ``L`` labels (actions), ``N`` labelled positions in the batch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlu_models.modules import (
    DenseForSparse,
    DotProductLoss,
    Dropout,
    Ffnn,
    SoftmaxLabelLoss,
    SparseDropout,
    TransformerEncoder,
    kernel_parameters,
)
from nlu_models.modules.transformer import Packing, row_multiple

# Turn attributes in the order their vectors are concatenated (Rasa: user, action, the rest).
ATTRIBUTES = ("intent", "text", "action_name", "action_text", "entities", "slots",
              "active_loop")
TEXT = "text"                                   # the user text: a bag of sentence features
SPARSE_ATTRIBUTES = (TEXT, "action_text")       # bags of sentence features (user, bot texts)
ENCODED_ATTRIBUTES = ("intent", "text", "action_name", "action_text")  # + Ffnn([encoding])
MODES = ("max_history", "full_dialogue")
IGNORE_INDEX = -100


@dataclass
class TEDConfig:
    """Architecture and loss settings. ``feature_sizes`` and ``num_actions`` come from the data."""

    feature_sizes: dict[str, int] = field(default_factory=dict)  # attribute → F (0 = unused)
    num_actions: int = 0
    mode: str = "max_history"          # "max_history" | "full_dialogue"
    # architecture (Rasa 3.6 TEDPolicy defaults)
    dense_dimension: int = 20          # per attribute and for label_action_name
    dense_dimension_text: int = 128    # the texts' sparse → dense projection
    encoding_dimension: int = 50       # intent, action_name, label_action_name
    transformer_size: int = 128
    number_of_transformer_layers: int = 1
    number_of_attention_heads: int = 4
    use_key_relative_attention: bool = False
    use_value_relative_attention: bool = False
    max_relative_position: int = 5
    embedding_dimension: int = 20
    drop_rate: float = 0.0             # input dropout (Rasa's sparse + dense input dropout)
    drop_rate_dialogue: float = 0.1
    drop_rate_label: float = 0.0       # sparse input dropout of the actions' text features
    drop_rate_attention: float = 0.0
    connection_density: float = 0.2
    # label_action_text: each action's label also reads the sparse sentence features of its
    # string (an end-to-end bot utterance's words; a name's one token) through the user text's
    # vocabulary, so an utterance never seen in training still gets a meaningful embedding
    label_action_text: bool = False
    # loss: Rasa's sampled dot-product loss, or a full softmax over all actions
    label_loss: str = "dot_product"    # "dot_product" | "softmax"
    number_of_negative_examples: int = 20
    similarity_type: str = "auto"
    loss_type: str = "cross_entropy"
    constrain_similarities: bool = False
    scale_loss: bool = True
    maximum_positive_similarity: float = 0.8
    maximum_negative_similarity: float = -0.2
    use_maximum_negative_similarity: bool = True
    negative_margin_scale: float = 0.8
    # prediction (read by TEDPolicy): the text version of the current turn wins when its top
    # confidence is above this and its top similarity above the intent version's
    e2e_confidence_threshold: float = 0.5

    def __post_init__(self) -> None:
        unknown = sorted(set(self.feature_sizes) - set(ATTRIBUTES))
        if unknown:
            raise ValueError(f"unknown TED feature attributes {unknown}; expected some of "
                             f"{list(ATTRIBUTES)}")
        if any(not isinstance(n, int) or n < 0 for n in self.feature_sizes.values()):
            raise ValueError(f"feature_sizes must be non-negative ints, got {self.feature_sizes}")
        if not self.attributes:
            raise ValueError("TED needs input features: feature_sizes must give some attribute "
                             f"of {list(ATTRIBUTES)} a size > 0 (fit the state featurizer first)")
        if self.num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {self.num_actions}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.label_loss not in ("dot_product", "softmax"):
            raise ValueError(f"label_loss must be 'dot_product' or 'softmax', not "
                             f"{self.label_loss!r}")
        if not 0.0 <= self.e2e_confidence_threshold <= 1.0:
            raise ValueError("e2e_confidence_threshold must be in [0, 1], got "
                             f"{self.e2e_confidence_threshold}")
        if self.label_action_text and self.feature_sizes.get(TEXT, 0) == 0:
            raise ValueError("label_action_text needs the text features (feature_sizes['text']"
                             " > 0: model.featurizers)")
        for name in ("drop_rate", "drop_rate_dialogue", "drop_rate_label", "drop_rate_attention"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def attributes(self) -> list[str]:
        """The attributes that are part of the model, in concatenation order."""
        return [a for a in ATTRIBUTES if self.feature_sizes.get(a, 0) > 0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TEDConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TEDConfig keys: {', '.join(unknown)}")
        values = dict(values)
        values["feature_sizes"] = dict(values.get("feature_sizes", {}))
        return cls(**values)


@dataclass
class SparseBags:
    """One sparse attribute of a batch: every turn's bag of sentence features back to back
    (padded turns and turns without it: empty bags)."""

    ids: Tensor                        # (nnz,) 1-based pipeline ids
    values: Tensor                     # (nnz,)
    offsets: Tensor                    # (B·D,) where each turn's bag starts

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "SparseBags":
        return SparseBags(*(t.to(device, non_blocking=non_blocking)
                            for t in (self.ids, self.values, self.offsets)))


@dataclass
class TEDInputs:
    """One padded batch. Turns are chronological and left-aligned (padding at the end).

    An attribute's all-zero row (or empty bag) at a turn means "absent at that turn" (as in
    Rasa, where such a sub-state has no features): its encoded vector there is zeros.
    """

    features: dict[str, Tensor]        # attribute → (B, D, F) float multi-hot / slot values
    dialogue_mask: Tensor              # (B, D) bool, True on real turns
    label_ids: Tensor | None = None    # (B,) max_history or (B, D) full_dialogue; -100 = none
    bags: dict[str, SparseBags] = field(default_factory=dict)  # SPARSE_ATTRIBUTES present

    @property
    def lengths(self) -> Tensor:
        return self.dialogue_mask.sum(dim=1)   # (B,)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "TEDInputs":
        def move(t: Tensor) -> Tensor:
            return t.to(device, non_blocking=non_blocking)
        return TEDInputs({k: move(v) for k, v in self.features.items()},
                         move(self.dialogue_mask),
                         None if self.label_ids is None else move(self.label_ids),
                         {k: b.to(device, non_blocking) for k, b in self.bags.items()})


@dataclass
class TEDOutput:
    loss: Tensor
    metrics: dict[str, Tensor]         # action_acc: the loss's accuracy on this batch


@dataclass
class TEDPrediction:
    confidences: Tensor                # (B, L) max_history or (B, D, L) full_dialogue; softmax
    similarities: Tensor               # same shape: dialogue · action embedding similarities


class TEDModel(nn.Module):
    def __init__(self, config: TEDConfig) -> None:
        super().__init__()
        self.config = c = config
        # -- per turn: each attribute → Linear (Rasa's DenseForSparse) [→ Ffnn encoding layer];
        #    the user and bot texts → DenseForSparse on their bags → Ffnn encoding layer
        self.turn_inputs = nn.ModuleDict({
            a: (_TextAttribute(c.feature_sizes[a], c.dense_dimension_text, c.encoding_dimension,
                               c.drop_rate, c.drop_rate_dialogue, c.connection_density)
                if a in SPARSE_ATTRIBUTES else
                _TurnAttribute(c.feature_sizes[a], c.dense_dimension,
                               c.encoding_dimension if a in ENCODED_ATTRIBUTES else None,
                               c.drop_rate, c.drop_rate_dialogue, c.connection_density))
            for a in c.attributes})
        turn_width = sum(m.out_features for m in self.turn_inputs.values())
        # -- dialogue transformer over turns, then Embed
        self.dialogue_transformer = TransformerEncoder(
            input_features=turn_width, num_layers=c.number_of_transformer_layers,
            units=c.transformer_size, num_heads=c.number_of_attention_heads,
            dropout=c.drop_rate_dialogue, attention_dropout=c.drop_rate_attention,
            density=c.connection_density, unidirectional=c.mode == "full_dialogue",
            use_key_relative_position=c.use_key_relative_attention,
            use_value_relative_position=c.use_value_relative_attention,
            max_relative_position=c.max_relative_position)
        self.embed_dialogue = nn.Linear(self.dialogue_transformer.out_features,
                                        c.embedding_dimension)
        # -- actions: one-hot → Linear (DenseForSparse) → Ffnn encoding layer [+ the action
        #    text's encoding] → Embed
        self.label_input = nn.Linear(c.num_actions, c.dense_dimension)
        self.label_encoder = Ffnn(c.dense_dimension, [c.encoding_dimension],
                                  c.drop_rate_dialogue, c.connection_density)
        self.label_text = (_TextAttribute(c.feature_sizes[TEXT], c.dense_dimension_text,
                                          c.encoding_dimension, c.drop_rate_label,
                                          c.drop_rate_dialogue, c.connection_density)
                           if c.label_action_text else None)
        # the actions' text bags (set_label_texts): data, not weights, so not in state_dict;
        # whoever builds the model from a state featurizer sets them
        for name, dtype in (("ids", torch.long), ("values", torch.float32),
                            ("offsets", torch.long)):
            self.register_buffer(f"label_text_{name}", torch.zeros(0, dtype=dtype),
                                 persistent=False)
        self.embed_label = nn.Linear(c.encoding_dimension, c.embedding_dimension)
        self.action_loss = self._label_loss()

    def _label_loss(self) -> nn.Module:
        c = self.config
        if c.label_loss == "softmax":
            return SoftmaxLabelLoss()
        return DotProductLoss.from_config(c)

    # ---- dialogue side --------------------------------------------------------------------------
    def encode_turns(self, x: TEDInputs, packing: Packing | None = None) -> Tensor:
        """concat[intent, text, action_name, action_text, entities, slots, active_loop] per
        turn → (B, D, E_turn); with ``packing`` the real turns only, ``(N, E_turn)``."""
        self._check_features(x)
        parts = []
        for a in self.config.attributes:
            if a in SPARSE_ATTRIBUTES:
                bags = x.bags[a]
                part = self.turn_inputs[a](bags.ids, bags.values, bags.offsets,
                                           x.dialogue_mask.shape)           # (B, D, E)
                parts.append(packing.pack(part) if packing is not None else part)
            else:
                features = x.features[a]
                parts.append(self.turn_inputs[a](
                    packing.pack(features) if packing is not None else features))
        turns = torch.cat(parts, dim=-1)                                    # (B, D | N, E_turn)
        return turns if packing is not None else turns * x.dialogue_mask.unsqueeze(-1)

    def dialogue_embedding(self, x: TEDInputs) -> Tensor:
        """(B, E) in max_history mode (the current turn), (B, D, E) in full_dialogue mode.

        In training the turn encoders and the transformer's position-wise steps see the real
        turns only, packed (unbounded histories pad most of a batch: financial-demo's batches
        are ~2/3 padding); the results equal the padded computation's."""
        mask = x.dialogue_mask
        max_history = self.config.mode == "max_history"
        packing = Packing(mask, row_multiple(mask.device.type)) if self.training else None
        turns = self.encode_turns(x, packing)                               # (B, D | N, E_turn)
        if max_history:  # current turn at 0
            turns = turns[_reversed_rows(packing, x.lengths)] if packing is not None \
                else reverse_turns(turns, x.lengths)
        # max-history reads only the current turn: the last layer computes just that row
        hidden = F.gelu(self.dialogue_transformer(turns, mask, first_only=max_history,
                                                  packed=packing))
        if max_history:
            hidden = hidden[:, 0]                                           # (B, E)
        return self.embed_dialogue(hidden)                                  # (B, [D,] E)

    # ---- label side -----------------------------------------------------------------------------
    def set_label_texts(self, ids: Tensor, values: Tensor, counts: Tensor) -> None:
        """Each action's text features (``label_action_text``): action ``a`` owns the next
        ``counts[a]`` of ``ids`` (1-based pipeline ids) and ``values``, in action order."""
        if self.label_text is None:
            raise ValueError("this TED has no label_action_text")
        if counts.numel() != self.config.num_actions or int(counts.sum()) != ids.numel():
            raise ValueError(f"label texts for {counts.numel()} actions with "
                             f"{int(counts.sum())} entries; expected {self.config.num_actions} "
                             f"actions and {ids.numel()} entries")
        device = self.label_input.weight.device
        self.label_text_ids = ids.to(device, torch.long)
        self.label_text_values = values.to(device, torch.float32)
        self.label_text_offsets = (counts.cumsum(0) - counts).to(device, torch.long)

    def action_embeddings(self, ids: Tensor | None = None) -> Tensor:
        """Embeddings of all actions, (L, E), or of the actions ``ids`` (K,), (K, E): their
        one-hot features, plus their texts' with ``label_action_text`` (Rasa: label_action_name
        and label_action_text encoded, then summed)."""
        one_hot = self.label_input.weight.t() + self.label_input.bias       # = Linear(identity)
        encoded = self.label_encoder(one_hot if ids is None else one_hot[ids])  # (L | K, E_enc)
        if self.label_text is not None:
            encoded = encoded + self._label_text_encoding(ids)
        return self.embed_label(encoded)                                    # (L | K, E)

    def _label_text_encoding(self, ids: Tensor | None) -> Tensor:
        """The text part of the actions' (or of ``ids``') label encodings, (L | K, E_enc)."""
        offsets = self.label_text_offsets                                   # (L,)
        if offsets.numel() != self.config.num_actions:
            raise RuntimeError("label_action_text is on but the actions' texts are not set: "
                               "call set_label_texts (StateFeaturizer.encode_labels)")
        bag_ids, bag_values = self.label_text_ids, self.label_text_values   # (nnz,)
        if ids is not None:  # the chosen actions' bags, back to back
            ends = torch.cat([offsets[1:], offsets.new_tensor([bag_ids.numel()])])
            counts = (ends - offsets)[ids]                                  # (K,)
            offsets = counts.cumsum(0) - counts                             # (K,) in the subset
            entries = (torch.repeat_interleave(self.label_text_offsets[ids] - offsets, counts)
                       + torch.arange(int(counts.sum()), device=counts.device))
            bag_ids, bag_values = bag_ids[entries], bag_values[entries]
        rows = offsets.numel()
        return self.label_text(bag_ids, bag_values, offsets, torch.Size([rows, 1]))[:, 0]

    def similarities(self, dialogue: Tensor, actions: Tensor) -> Tensor:
        """``(..., E)`` × ``(L, E)`` → ``(..., L)``; cosine when the loss uses cosine."""
        if getattr(self.action_loss, "similarity_type", "inner") == "cosine":
            dialogue, actions = F.normalize(dialogue, dim=-1), F.normalize(actions, dim=-1)
        return dialogue @ actions.T                                         # (..., L)

    # ---- training and inference -----------------------------------------------------------------
    def forward(self, x: TEDInputs) -> TEDOutput:
        """Rasa's action loss (without L2) over every labelled position of the batch."""
        if x.label_ids is None:
            raise ValueError("TEDModel.forward needs label_ids (use predict for inference)")
        dialogue = self.dialogue_embedding(x)                               # (B, [D,] E)
        labelled = self._labelled_positions(x)                              # (B,) or (B, D)
        dialogue, ids = dialogue[labelled], x.label_ids[labelled]           # (N, E), (N,)
        if self.label_text is not None and isinstance(self.action_loss, DotProductLoss):
            loss, accuracy = self._sampled_label_loss(dialogue, ids)
        else:
            actions = self.action_embeddings()                              # (L, E)
            all_ids = torch.arange(actions.shape[0], device=actions.device)  # (L,)
            loss, accuracy = self.action_loss(dialogue, actions[ids], ids, actions, all_ids)
        return TEDOutput(loss=loss, metrics={"action_acc": accuracy})

    def _sampled_label_loss(self, dialogue: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
        """The same loss, with only the actions it reads embedded: the positives and the
        negatives drawn here (uniformly over all actions, as the loss would draw them). With
        text labels an action's embedding is costly (MultiWOZ e2e: 6,541 utterances, 1.3 M
        text features), and a batch of N reads at most N·(1 + negatives) of them."""
        n, negatives = ids.shape[0], self.action_loss.num_negatives
        pick = torch.randint(self.config.num_actions, (n, negatives), device=ids.device)
        needed, where = torch.unique(torch.cat([ids, pick.flatten()]), return_inverse=True)
        actions = self.action_embeddings(needed)                            # (K, E)
        return self.action_loss(dialogue, actions[where[:n]], ids, actions, needed,
                                label_pick=where[n:].view(n, negatives))

    @torch.no_grad()
    def predict(self, x: TEDInputs, actions: Tensor | None = None) -> TEDPrediction:
        """Softmax over the similarities to all actions (Rasa's ``model_confidence=softmax``);
        ``actions``: :meth:`action_embeddings`, when the caller keeps them (a frozen model)."""
        actions = self.action_embeddings() if actions is None else actions
        sims = self.similarities(self.dialogue_embedding(x), actions)
        return TEDPrediction(confidences=sims.softmax(dim=-1), similarities=sims)

    def _labelled_positions(self, x: TEDInputs) -> Tensor:
        ids = x.label_ids
        expected = x.dialogue_mask.shape[:1] if self.config.mode == "max_history" \
            else x.dialogue_mask.shape
        if ids.shape != expected:
            raise ValueError(f"{self.config.mode} mode needs label_ids of shape "
                             f"{tuple(expected)}, got {tuple(ids.shape)}")
        labelled = ids != IGNORE_INDEX
        if ids.dim() == 2:
            labelled = labelled & x.dialogue_mask
        if not bool(labelled.any()):
            raise ValueError("the batch has no labelled positions (every label_id is -100)")
        bad = ids[labelled]
        if bool(((bad < 0) | (bad >= self.config.num_actions)).any()):
            raise ValueError(f"label_ids must be in [0, {self.config.num_actions}) or -100")
        return labelled

    def _check_features(self, x: TEDInputs) -> None:
        expected = {a: self.config.feature_sizes[a] for a in self.config.attributes
                    if a not in SPARSE_ATTRIBUTES}
        given = {a: t.shape[-1] for a, t in x.features.items() if t.shape[-1] > 0}
        if given != expected:
            raise ValueError(f"TED was built for features {expected} (attribute: width), "
                             f"the batch has {given}")
        sparse = [a for a in self.config.attributes if a in SPARSE_ATTRIBUTES]
        if sorted(x.bags) != sorted(sparse):
            raise ValueError(f"TED was built for the text features {sparse or 'none'}, the "
                             f"batch has {sorted(x.bags) or 'none'}")

    # ---- regularisation -------------------------------------------------------------------------
    def regularized_parameters(self) -> list[nn.Parameter]:
        """Kernels that carry Rasa's L2 term: every weight matrix (not biases or LayerNorms)."""
        return kernel_parameters(self)


class _TurnAttribute(nn.Module):
    """One attribute of each turn, as Rasa's ConcatenateSparseDenseFeatures (input dropout →
    DenseForSparse → dropout) plus, for intent and action_name, the ``Ffnn([encoding_dimension])``
    encoding layer. Turns where the attribute is absent (all-zero row) give zeros."""

    def __init__(self, in_features: int, dense_dimension: int, encoding_dimension: int | None,
                 drop_rate: float, drop_rate_encoding: float, density: float) -> None:
        super().__init__()
        self.input_dropout = Dropout(drop_rate)
        self.dense = nn.Linear(in_features, dense_dimension)
        self.dense_dropout = Dropout(drop_rate)
        sizes = [encoding_dimension] if encoding_dimension else []
        self.encoder = Ffnn(dense_dimension, sizes, drop_rate_encoding, density)
        self.out_features = self.encoder.out_features

    def forward(self, features: Tensor) -> Tensor:
        present = features.ne(0).any(dim=-1, keepdim=True)                  # (B, D, 1)
        x = self.dense_dropout(self.dense(self.input_dropout(features)))    # (B, D, E)
        return self.encoder(x) * present                                    # (B, D, E)


class _TextAttribute(nn.Module):
    """A text's sentence features (the user's, the previous action's, an action label's), as
    Rasa's ConcatenateSparseDenseFeatures for ``text`` (sparse input dropout → DenseForSparse →
    dropout) plus the ``Ffnn([encoding_dimension])`` encoding layer, on flat bags (no dense
    one-hot matrix). Turns without text give zeros."""

    def __init__(self, vocab_size: int, dense_dimension: int, encoding_dimension: int,
                 drop_rate: float, drop_rate_encoding: float, density: float) -> None:
        super().__init__()
        self.input_dropout = SparseDropout(drop_rate)
        self.dense = DenseForSparse(vocab_size, dense_dimension)
        self.dense_dropout = Dropout(drop_rate)
        self.encoder = Ffnn(dense_dimension, [encoding_dimension], drop_rate_encoding, density)
        self.out_features = self.encoder.out_features

    def forward(self, ids: Tensor, values: Tensor, offsets: Tensor, turns: torch.Size) -> Tensor:
        """``ids, values (nnz,)``, ``offsets (B·D,)``, ``turns`` = (B, D) → (B, D, E)."""
        ends = torch.cat([offsets[1:], offsets.new_tensor([ids.numel()])])  # (B·D,)
        present = (ends > offsets).reshape(*turns, 1)                        # (B, D, 1)
        x = self.dense(ids, self.input_dropout(values), offsets)            # (B·D, E)
        x = self.dense_dropout(x).reshape(*turns, -1)                        # (B, D, E)
        return self.encoder(x) * present                                    # (B, D, E)


def _reversed_rows(packing: Packing, lengths: Tensor) -> Tensor:
    """For the packed rows of a prefix mask, ``(N',)``: which packed row holds each row's turn
    after :func:`reverse_turns` (turn ``t`` of ``b`` ← turn ``lengths[b] − 1 − t``); the rows
    that only round the count up (:class:`Packing`'s ``multiple``) stay where they are."""
    rows, turns = packing.index // packing.shape[1], packing.index % packing.shape[1]  # (N,)
    starts = lengths.cumsum(0) - lengths                                     # (B,)
    reversed_rows = starts[rows] + lengths[rows] - 1 - turns                 # (N,)
    extra = torch.arange(packing.count, packing.rows.numel(), device=lengths.device)
    return torch.cat([reversed_rows, extra])                                 # (N',)


def reverse_turns(x: Tensor, lengths: Tensor) -> Tensor:
    """``tf.reverse_sequence`` on axis 1: each example's first ``lengths[b]`` turns reversed,
    padding left where it is. ``x (B, D, E)``, ``lengths (B,)`` → ``(B, D, E)``."""
    positions = torch.arange(x.shape[1], device=x.device)[None]              # (1, D)
    last = lengths[:, None] - 1                                              # (B, 1)
    index = torch.where(positions <= last, last - positions, positions)     # (B, D)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))                     # (B, D, E)


__all__ = ["ATTRIBUTES", "MODES", "SPARSE_ATTRIBUTES", "SparseBags", "TEDConfig", "TEDInputs",
           "TEDModel", "TEDOutput", "TEDPrediction", "reverse_turns"]
