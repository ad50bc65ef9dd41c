"""Shared pure-torch blocks: masked dense, sparse projection, transformer, CRF, label losses."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from nlu_models.modules.transformer import Packing, rows_rounded
from nlu_models.modules import (
    CRF,
    DenseForSparse,
    DotProductLoss,
    Ffnn,
    MultiHeadAttention,
    RandomlyConnectedDense,
    SoftmaxLabelLoss,
    SparseDropout,
    TransformerEncoder,
    sinusoidal_positions,
    time_major,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------- dense


def test_mask_density_is_close_to_the_requested_one():
    layer = RandomlyConnectedDense(400, 300, density=0.2)
    assert layer.mask.shape == (300, 400)
    assert set(layer.mask.unique().tolist()) <= {0.0, 1.0}
    assert abs(layer.mask.mean().item() - 0.2) < 0.02


@pytest.mark.parametrize("in_features, out_features", [(50, 7), (7, 50), (13, 13)])
def test_mask_connects_every_input_and_every_output(in_features, out_features):
    layer = RandomlyConnectedDense(in_features, out_features, density=0.01)
    assert (layer.mask.sum(dim=0) >= 1).all()  # every input column
    assert (layer.mask.sum(dim=1) >= 1).all()  # every output row


def test_masked_weights_are_zero_and_get_zero_gradient():
    layer = RandomlyConnectedDense(30, 20, density=0.3)
    layer(torch.randn(8, 30)).pow(2).sum().backward()
    masked = layer.mask == 0
    assert masked.float().mean() > 0.5
    assert (layer.weight[masked] == 0).all()
    assert (layer.weight.grad[masked] == 0).all()
    assert (layer.weight.grad[~masked] != 0).float().mean() > 0.9


def test_full_density_is_a_plain_linear_without_mask():
    layer = RandomlyConnectedDense(5, 4, density=1.0)
    assert layer.mask is None and "mask" not in layer.state_dict()
    x = torch.randn(3, 5)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))


def test_mask_is_reproducible_and_saved_in_the_state_dict():
    def make(seed: int) -> RandomlyConnectedDense:
        generator = torch.Generator().manual_seed(seed)
        return RandomlyConnectedDense(16, 8, density=0.3, generator=generator)

    a, b, c = make(1), make(1), make(2)
    assert torch.equal(a.mask, b.mask) and not torch.equal(a.mask, c.mask)
    assert "mask" in a.state_dict()
    c.load_state_dict(a.state_dict())
    x = torch.randn(4, 16)
    torch.testing.assert_close(c(x), a(x))


@pytest.mark.parametrize("density", [0.0, -0.5, 1.5])
def test_density_out_of_range_is_rejected(density):
    with pytest.raises(ValueError, match="density"):
        RandomlyConnectedDense(4, 4, density=density)


def test_ffnn_layers_and_identity():
    ffnn = Ffnn(10, [16, 6], dropout=0.1, density=0.5).eval()
    x = torch.randn(2, 3, 10)
    assert ffnn.out_features == 6 and ffnn(x).shape == (2, 3, 6)
    first, second = ffnn.layers[0], ffnn.layers[3]
    torch.testing.assert_close(ffnn(x), F.gelu(second(F.gelu(first(x)))))
    identity = Ffnn(10, [])
    assert identity.out_features == 10 and torch.equal(identity(x), x)


# --------------------------------------------------------------------------- sparse


def _dense_one_hot(ids: torch.Tensor, values: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """The featurizer's dense matrix (..., vocab): column c holds the summed values of id c + 1."""
    rows = ids.reshape(-1, ids.shape[-1])
    dense = torch.zeros(rows.shape[0], vocab_size + 1)
    dense.scatter_add_(1, rows, values.reshape(rows.shape))
    return dense[:, 1:].reshape(*ids.shape[:-1], vocab_size)


def test_dense_for_sparse_equals_the_dense_matmul():
    vocab_size = 12
    layer = DenseForSparse(vocab_size, 5)
    with torch.no_grad():
        layer.bias.normal_()
    ids = torch.randint(0, vocab_size + 1, (2, 3, 6))  # padding (0) and repeated ids
    values = torch.rand(2, 3, 6)  # non-zero even at padding: id 0 must still add nothing
    expected = _dense_one_hot(ids, values, vocab_size) @ layer.weight[1:] + layer.bias
    torch.testing.assert_close(layer(ids, values), expected)


def test_dense_for_sparse_empty_bags_give_the_bias_and_padding_gets_no_gradient():
    layer = DenseForSparse(7, 4)
    with torch.no_grad():
        layer.bias.normal_()
    empty = layer(torch.zeros(3, 0, dtype=torch.long), torch.zeros(3, 0))
    all_padding = layer(torch.zeros(2, 5, dtype=torch.long), torch.rand(2, 5))
    torch.testing.assert_close(empty, layer.bias.expand(3, 4))
    torch.testing.assert_close(all_padding, layer.bias.expand(2, 4))

    ids = torch.tensor([[1, 3, 0], [7, 0, 0]])
    layer(ids, torch.rand(2, 3)).sum().backward()
    assert (layer.weight.grad[0] == 0).all() and (layer.weight.grad[[1, 3, 7]] != 0).all()
    assert (layer.weight[0] == 0).all()
    assert layer.weight.abs().max() <= math.sqrt(6 / (7 + 4))  # Glorot-uniform bound


def test_sparse_dropout_drops_entries_without_rescaling():
    dropout = SparseDropout(0.3)
    values = torch.rand(200, 50) + 0.5
    out = dropout(values)
    dropped = out == 0
    assert abs(dropped.float().mean().item() - 0.3) < 0.02
    assert torch.equal(out[~dropped], values[~dropped])
    assert torch.equal(dropout.eval()(values), values)
    assert torch.equal(SparseDropout(0.0)(values), values)
    with pytest.raises(ValueError, match="rate"):
        SparseDropout(1.0)


# --------------------------------------------------------------------------- transformer

FEATURES = 10


def _encoder(relative: bool, unidirectional: bool, **overrides) -> TransformerEncoder:
    settings = dict(
        num_layers=2,
        units=16,
        num_heads=4,
        dropout=0.1,
        density=0.5,
        unidirectional=unidirectional,
        use_key_relative_position=relative,
        use_value_relative_position=relative,
        max_relative_position=2,
    )
    return TransformerEncoder(FEATURES, **{**settings, **overrides})


def test_sinusoidal_positions():
    table = sinusoidal_positions(6, 8)
    assert table.shape == (6, 8)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 4))
    angle = 3 / 10000 ** (4 / 8)  # position 3, pair 2 → features 4 (sin) and 5 (cos)
    torch.testing.assert_close(table[3, 4:6], torch.tensor([math.sin(angle), math.cos(angle)]))
    assert sinusoidal_positions(4, 5).shape == (4, 5)


def _reference_attention(mha: MultiHeadAttention, x: torch.Tensor, pad_mask: torch.Tensor):
    """Shaw et al. attention written per (i, j) pair with explicit (H, T, T, D) embeddings."""
    b, t, e = x.shape
    h, d, m = mha.num_heads, mha.head_size, mha.max_relative_position

    def heads(y: torch.Tensor) -> torch.Tensor:
        return y.view(b, t, h, d).transpose(1, 2)

    q, k, v = heads(mha.query(x)), heads(mha.key(x)), heads(mha.value(x))
    pos = torch.arange(t)
    distance = (pos[None, :] - pos[:, None]).clamp(-m, 0 if mha.unidirectional else m) + m
    key_emb, value_emb = mha.key_relative[:, distance], mha.value_relative[:, distance]
    logits = torch.einsum("bhid,bhjd->bhij", q, k) + torch.einsum("bhid,hijd->bhij", q, key_emb)
    allowed = pad_mask[:, None, None, :].expand(b, h, t, t)
    if mha.unidirectional:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool).tril()
    probs = (logits / math.sqrt(d)).masked_fill(~allowed, float("-inf")).softmax(-1)
    out = probs @ v + torch.einsum("bhij,hijd->bhid", probs, value_emb)
    return mha.output(out.transpose(1, 2).reshape(b, t, e)), probs


@pytest.mark.parametrize("unidirectional", [False, True])
def test_relative_attention_matches_the_pairwise_definition(unidirectional):
    mha = MultiHeadAttention(
        16, 4, density=0.5, unidirectional=unidirectional,
        use_key_relative_position=True, use_value_relative_position=True, max_relative_position=2,
    )
    expected_rows = 3 if unidirectional else 5
    assert mha.key_relative.shape == mha.value_relative.shape == (4, expected_rows, 4)
    x = torch.randn(2, 7, 16)
    pad_mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7])
    out, weights = mha(x, pad_mask)
    expected_out, expected_weights = _reference_attention(mha, x, pad_mask)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    assert weights[0, :, :, 5:].abs().max() < 1e-6  # padded keys get no weight
    if unidirectional:
        assert weights.triu(1).abs().max() < 1e-6


def test_attention_rejects_units_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)


@pytest.mark.parametrize(
    "relative, unidirectional", [(False, False), (True, False), (False, True), (True, True)]
)
def test_padding_does_not_change_real_positions(relative, unidirectional):
    encoder = _encoder(relative, unidirectional).eval()
    short, full = torch.randn(1, 4, FEATURES), torch.randn(1, 7, FEATURES)
    batch = torch.randn(2, 7, FEATURES) * 5  # the padding holds garbage
    batch[0, :4], batch[1] = short[0], full[0]
    pad_mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    together = encoder(batch, pad_mask)
    torch.testing.assert_close(together[0, :4], encoder(short)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(together[1], encoder(full, torch.ones(1, 7, dtype=torch.bool))[0],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "relative, unidirectional", [(False, False), (True, False), (False, True), (True, True)]
)
def test_training_on_packed_real_positions_equals_the_padded_computation(relative,
                                                                          unidirectional):
    """In training the position-wise steps run on the real positions only: without dropout,
    the same outputs (and gradients) at real positions as the padded path, zeros on padding."""
    encoder = _encoder(relative, unidirectional)
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = torch.randn(3, 7, FEATURES, requires_grad=True)
    pad_mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7, [True] * 2 + [False] * 5])
    packed = encoder.train()(batch, pad_mask)
    packed[pad_mask].sum().backward()
    packed_grads = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    padded = encoder.eval()(batch, pad_mask)
    padded[pad_mask].sum().backward()
    torch.testing.assert_close(packed[pad_mask], padded[pad_mask], atol=1e-5, rtol=1e-5)
    assert not packed[~pad_mask].any()
    for got, want in zip(packed_grads, (p.grad for p in encoder.parameters())):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("relative, unidirectional", [(False, False), (True, True)])
def test_packed_training_with_first_only_and_packed_inputs(relative, unidirectional):
    """TED's max-history training: the packed layers with only the first position computed in
    the last one, and inputs handed over already packed, equal the padded path (no dropout)."""
    encoder = _encoder(relative, unidirectional)
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = torch.randn(3, 7, FEATURES)
    pad_mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7, [True] * 2 + [False] * 5])
    packing = Packing(pad_mask)
    padded = encoder.eval()(batch, pad_mask, first_only=True)
    padded.sum().backward()
    want_grads = [p.grad.clone() for p in encoder.parameters()]
    encoder.zero_grad()
    first = encoder.train()(packing.pack(batch), pad_mask, first_only=True, packed=packing)
    assert first.shape == (3, 1, encoder.units)
    torch.testing.assert_close(first, padded, atol=1e-5, rtol=1e-5)
    first.sum().backward()
    for got, want in zip((p.grad for p in encoder.parameters()), want_grads):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    full = encoder.train()(packing.pack(batch), pad_mask, packed=packing)
    torch.testing.assert_close(full, encoder.train()(batch, pad_mask))
    evaluated = encoder.eval()(packing.pack(batch), pad_mask, packed=packing)  # unpacked first
    torch.testing.assert_close(evaluated[pad_mask], encoder(batch, pad_mask)[pad_mask])


def test_packing_rounds_the_rows_up_and_the_extra_rows_change_nothing():
    """``Packing(mask, multiple)`` adds rows up to the multiple (bfloat16 autocast's row
    rounding); unpack drops them, and a packed training pass gives the same outputs and
    gradients as without them."""
    pad_mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7, [True] * 2 + [False] * 5])
    batch = torch.randn(3, 7, FEATURES)
    plain, rounded = Packing(pad_mask), Packing(pad_mask, multiple=8)
    assert plain.pack(batch).shape == (13, FEATURES)
    assert rounded.pack(batch).shape == (16, FEATURES) and rounded.count == 13
    assert rounded.positions.tolist()[:13] == plain.positions.tolist()
    torch.testing.assert_close(rounded.unpack(rounded.pack(batch)), batch * pad_mask[..., None])
    encoder = _encoder(relative=False, unidirectional=False)
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    results = []
    for packing in (plain, rounded):
        encoder.zero_grad()
        out = encoder.train()(packing.pack(batch), pad_mask, packed=packing)
        out.sum().backward()
        results.append((out, [p.grad.clone() for p in encoder.parameters()]))
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w)


def test_rows_rounded_pads_packed_rows_under_cpu_autocast_only():
    seen = []
    layer = torch.nn.Linear(FEATURES, 3)
    recording = torch.nn.Sequential(torch.nn.Identity(), layer)
    recording[0].register_forward_hook(lambda module, args, out: seen.append(out.shape[0]))
    x = torch.randn(13, FEATURES)
    torch.testing.assert_close(rows_rounded(recording, x), layer(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rows_rounded(recording, x)
        want = layer(x)
    assert out.shape == (13, 3)
    torch.testing.assert_close(out, want, atol=2e-2, rtol=2e-2)  # bfloat16 products
    assert seen == [13, 32]
    assert rows_rounded(recording, torch.randn(2, 13, FEATURES)).shape == (2, 13, 3)


@pytest.mark.parametrize("unidirectional", [False, True])
def test_training_attention_weights_come_only_when_asked_for(unidirectional):
    """Training attends with the fused kernel unless the weights are wanted; both give the
    same outputs."""
    encoder = _encoder(relative=False, unidirectional=unidirectional).train()
    for module in encoder.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    batch = torch.randn(3, 7, FEATURES)
    pad_mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7, [True] * 2 + [False] * 5])
    fused = encoder(batch, pad_mask)
    out, weights = encoder(batch, pad_mask, return_attention=True)
    assert len(weights) == encoder.num_layers and weights[0].shape == (3, 4, 7, 7)
    torch.testing.assert_close(fused, out, atol=1e-5, rtol=1e-5)


def test_unidirectional_encoder_is_causal():
    x = torch.randn(1, 6, FEATURES)
    changed = x.clone()
    changed[0, 3] += 1.0
    causal = _encoder(relative=True, unidirectional=True).eval()
    before, after = causal(x), causal(changed)
    torch.testing.assert_close(before[0, :3], after[0, :3], atol=1e-6, rtol=0)
    assert not torch.allclose(before[0, 3:], after[0, 3:], atol=1e-4)
    bidirectional = _encoder(relative=True, unidirectional=False).eval()
    assert not torch.allclose(bidirectional(x)[0, :3], bidirectional(changed)[0, :3], atol=1e-4)


def test_gradients_reach_every_encoder_parameter():
    encoder = _encoder(relative=True, unidirectional=False)
    pad_mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7])
    out = encoder(torch.randn(2, 7, FEATURES), pad_mask)
    (out * torch.randn_like(out)).sum().backward()  # a plain sum is constant after LayerNorm
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_encoder_shapes_order_and_identity():
    encoder = _encoder(relative=False, unidirectional=False, num_layers=3, ffn_units=24).eval()
    x = torch.randn(2, 7, FEATURES)
    pad_mask = torch.tensor([[True] * 5 + [False] * 2, [True] * 7])
    out, attention = encoder(x, pad_mask, return_attention=True)
    assert encoder.out_features == 16 and out.shape == (2, 7, 16)
    assert len(attention) == 3 and all(a.shape == (2, 4, 7, 7) for a in attention)
    assert encoder.layers[0].feed_forward[1].out_features == 24

    # Rasa's order: project → × sqrt(units) → + positions → layers → final LayerNorm
    h = encoder.input_projection(x) * 4.0 + sinusoidal_positions(7, 16)
    for layer in encoder.layers:
        h, _ = layer(h, pad_mask)
    torch.testing.assert_close(out, encoder.final_norm(h))

    identity = TransformerEncoder(FEATURES, num_layers=0)
    assert identity.out_features == FEATURES and not list(identity.parameters())
    assert torch.equal(identity(x, pad_mask), x)


# --------------------------------------------------------------------------- CRF


def _all_paths(num_tags: int, length: int) -> torch.Tensor:
    """Every tag sequence of the given length, ``(num_tags ** length, length)``."""
    paths = list(itertools.product(range(num_tags), repeat=length))
    return torch.tensor(paths).reshape(-1, length)


def _path_scores(emissions: torch.Tensor, transitions: torch.Tensor, paths: torch.Tensor):
    """Scores of ``paths (P, n)`` under one row's ``emissions (T, L)`` and the transitions."""
    unary = emissions[torch.arange(paths.shape[1]), paths].sum(-1)  # (P,)
    return unary + transitions[paths[:, :-1], paths[:, 1:]].sum(-1)  # (P,)


def _random_crf_problem(seed: int, num_tags: int = 3, t: int = 5):
    """A CRF with transitions as large as the emissions (so paths interact), ragged lengths."""
    torch.manual_seed(seed)
    crf = CRF(num_tags)
    with torch.no_grad():
        crf.transitions.normal_(0.0, 2.0)
    emissions = 2 * torch.randn(5, t, num_tags)
    lengths = torch.tensor([t, 3, 1, t - 1, 2])
    return crf, emissions, lengths


@pytest.mark.parametrize("seed", range(8))
def test_crf_log_likelihood_matches_brute_force(seed):
    crf, emissions, lengths = _random_crf_problem(seed)
    tags = torch.randint(crf.num_tags, lengths.shape + emissions.shape[1:2])
    log_likelihood = crf.log_likelihood(emissions, tags, lengths)
    for b, n in enumerate(lengths.tolist()):
        scores = _path_scores(emissions[b], crf.transitions, _all_paths(crf.num_tags, n))
        gold = _path_scores(emissions[b], crf.transitions, tags[b, None, :n])[0]
        torch.testing.assert_close(log_likelihood[b], gold - torch.logsumexp(scores, dim=0))

    noisy_padding = tags.clone()
    noisy_padding[1, 3:] = torch.tensor([-1, 99])  # anything past the length is ignored
    torch.testing.assert_close(crf.log_likelihood(emissions, noisy_padding, lengths),
                               log_likelihood)


def test_time_major_packs_longest_rows_first_step_by_step():
    rows, steps, batch_sizes = time_major(torch.tensor([2, 0, 3, 1]))
    assert batch_sizes == [3, 2, 1]
    assert list(zip(rows.tolist(), steps.tolist())) == [
        (2, 0), (0, 0), (3, 0), (2, 1), (0, 1), (2, 2)]


def test_crf_gradients_reach_real_positions_only():
    """Rows run longest first and stop at their length: padding and empty rows get no
    gradient, and an empty row's log-likelihood is 0."""
    crf, emissions, _ = _random_crf_problem(0)
    lengths = torch.tensor([2, 0, 5, 1, 3])
    emissions.requires_grad_(True)
    tags = torch.randint(crf.num_tags, emissions.shape[:2])
    log_likelihood = crf.log_likelihood(emissions, tags, lengths)
    assert log_likelihood[1] == 0.0
    log_likelihood.sum().backward()
    padding = ~(torch.arange(emissions.shape[1]) < lengths[:, None])
    assert torch.isfinite(emissions.grad).all()
    assert emissions.grad[padding].abs().sum() == 0.0
    assert (emissions.grad[~padding].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("seed", range(8))
def test_crf_viterbi_and_confidences_match_brute_force(seed):
    crf, emissions, lengths = _random_crf_problem(seed)
    tags, confidences = crf.decode(emissions, lengths)
    assert tags.dtype == torch.long and confidences.shape == tags.shape == emissions.shape[:2]
    for b, n in enumerate(lengths.tolist()):
        paths = _all_paths(crf.num_tags, n)
        best = paths[_path_scores(emissions[b], crf.transitions, paths).argmax()]
        assert tags[b, :n].tolist() == best.tolist()
        assert (tags[b, n:] == 0).all() and (confidences[b, n:] == 0).all()
        for step in range(n):  # alpha_step[y] = best score of a prefix ending in y at step
            prefixes = _all_paths(crf.num_tags, step + 1)
            scores = _path_scores(emissions[b], crf.transitions, prefixes)
            alpha = torch.stack([scores[prefixes[:, -1] == y].max() for y in range(crf.num_tags)])
            expected = alpha.softmax(-1)[tags[b, step]]
            torch.testing.assert_close(confidences[b, step], expected)


def test_crf_empty_rows_gradients_and_bounds():
    crf = CRF(4)
    emissions = torch.randn(3, 5, 4, requires_grad=True)
    lengths = torch.tensor([5, 0, 2])
    log_likelihood = crf.log_likelihood(emissions, torch.randint(4, (3, 5)), lengths)
    assert log_likelihood[1] == 0 and (log_likelihood <= 0).all()
    (-log_likelihood.mean()).backward()
    assert crf.transitions.grad.abs().sum() > 0
    assert emissions.grad[0].abs().sum() > 0 and (emissions.grad[1] == 0).all()
    tags, confidences = crf.decode(emissions.detach(), lengths)
    assert (tags[1] == 0).all() and (confidences[1] == 0).all()
    assert ((confidences[0] > 0) & (confidences[0] <= 1)).all()


# --------------------------------------------------------------------------- label losses


def _label_batch(batch: int = 6, num_labels: int = 4, dim: int = 8):
    all_labels = torch.randn(num_labels, dim)
    all_label_ids = torch.arange(num_labels)
    label_ids = torch.arange(batch) % num_labels
    return torch.randn(batch, dim), all_labels[label_ids], label_ids, all_labels, all_label_ids


def _reference_dot_product_loss(loss_fn: DotProductLoss, inputs, labels, ids, all_labels, all_ids):
    """Reference §1.4 written per example, replaying the same random draws."""
    n = loss_fn.num_negatives
    label_pick = torch.randint(len(all_labels), (len(inputs), n))
    input_pick = torch.randint(len(inputs), (len(inputs), n))
    sim = loss_fn.similarity
    losses = []
    for b in range(len(inputs)):
        x, y = inputs[b], labels[b]
        bad_l = all_ids[label_pick[b]] == ids[b]
        bad_i = ids[input_pick[b]] == ids[b]
        s_pos = sim(x, y)
        s_il = torch.where(bad_l, -1e9, sim(x, all_labels[label_pick[b]]))
        s_ll = torch.where(bad_l, -1e9, sim(y, all_labels[label_pick[b]]))
        s_li = torch.where(bad_i, -1e9, sim(y, inputs[input_pick[b]]))
        s_ii = torch.where(bad_i, -1e9, sim(x, inputs[input_pick[b]]))
        if loss_fn.loss_type == "margin":
            loss = F.relu(0.8 - s_pos) + F.relu(-0.4 + s_il.max())
            loss = loss + 0.8 * sum(F.relu(-0.4 + s.max()) for s in (s_ll, s_ii, s_li))
        elif loss_fn.constrain_similarities:
            logits = torch.cat([s_pos[None], s_il, s_li])
            loss = -logits.log_softmax(0)[0]
            every = torch.cat([s_pos[None], s_il, s_ll, s_ii, s_li])
            targets = torch.zeros_like(every)
            targets[0] = 1
            loss = loss + F.binary_cross_entropy_with_logits(every, targets)
        else:
            logits = torch.cat([s_pos[None], s_il, s_li, s_ii, s_ll])
            loss = -logits.log_softmax(0)[0]
        losses.append(loss)
    return torch.stack(losses).mean()


@pytest.mark.parametrize(
    "settings",
    [dict(), dict(constrain_similarities=False), dict(loss_type="margin")],
    ids=["constrained", "unconstrained", "margin"],
)
def test_dot_product_loss_matches_the_reference_formula(settings):
    loss_fn = DotProductLoss(num_negatives=5, **settings)
    batch = _label_batch()
    torch.manual_seed(3)
    loss, _ = loss_fn(*batch)
    torch.manual_seed(3)
    torch.testing.assert_close(loss, _reference_dot_product_loss(loss_fn, *batch))


@pytest.mark.parametrize(
    "loss_fn",
    [DotProductLoss(num_negatives=5), DotProductLoss(num_negatives=5, loss_type="margin"),
     SoftmaxLabelLoss()],
    ids=["cross_entropy", "margin", "softmax"],
)
def test_label_loss_decreases_on_a_tiny_problem(loss_fn):
    num_labels, batch = 4, 32
    label_ids = torch.arange(batch) % num_labels
    features = F.one_hot(label_ids, num_labels).float() + 0.3 * torch.randn(batch, num_labels)
    text_encoder = torch.nn.Linear(num_labels, 8)
    label_table = torch.nn.Embedding(num_labels, 8)
    optimizer = torch.optim.Adam([*text_encoder.parameters(), *label_table.parameters()], lr=0.05)
    history = []
    for _ in range(25):
        inputs, all_labels = text_encoder(features), label_table.weight
        loss, accuracy = loss_fn(inputs, all_labels[label_ids], label_ids, all_labels,
                                 torch.arange(num_labels))
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert sum(history[-5:]) < 0.5 * sum(history[:5])
    assert accuracy >= 0.75


def test_single_label_masks_every_negative():
    inputs = torch.randn(4, 3)
    label = torch.randn(1, 3)
    ids, all_ids = torch.zeros(4, dtype=torch.long), torch.zeros(1, dtype=torch.long)
    args = (inputs, label.expand(4, 3), ids, label, all_ids)
    s_pos = inputs @ label[0]

    loss, accuracy = DotProductLoss(num_negatives=5)(*args)
    torch.testing.assert_close(loss, (F.softplus(-s_pos) / (1 + 4 * 5)).mean())  # softmax part = 0
    assert accuracy == 1.0
    loss, _ = DotProductLoss(num_negatives=5, constrain_similarities=False)(*args)
    assert loss == 0
    loss, _ = DotProductLoss(num_negatives=5, loss_type="margin")(*args)
    torch.testing.assert_close(loss, F.relu(0.8 - F.cosine_similarity(inputs, label)).mean())

    vector_ids = torch.ones(4, 2)  # MLM-style vector ids: all equal, so all negatives are bad
    loss, _ = DotProductLoss(num_negatives=5, constrain_similarities=False)(
        inputs, label.expand(4, 3), vector_ids, label, torch.ones(1, 2))
    assert loss == 0


def test_accuracy_counts_positive_at_least_the_best_label_negative():
    all_labels = torch.eye(3)
    inputs = torch.tensor(
        [[2.0, 0, 0], [0, 0, 2], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    )  # right, wrong, right, wrong, tie (counts as right)
    label_ids = torch.tensor([0, 1, 1, 0, 2])
    _, accuracy = DotProductLoss(num_negatives=60)(
        inputs, all_labels[label_ids], label_ids, all_labels, torch.arange(3))
    torch.testing.assert_close(accuracy, torch.tensor(0.6))


def test_margin_loss_uses_bounded_cosine_similarities():
    loss_fn = DotProductLoss(loss_type="margin")
    assert loss_fn.similarity_type == "cosine"
    inputs, labels, ids, all_labels, all_ids = _label_batch()
    loss, _ = loss_fn(100 * inputs, 100 * labels, ids, all_labels, all_ids)
    assert 0 <= loss <= (0.8 + 1) + (-0.4 + 1) * (1 + 3 * 0.8)
    confidences = loss_fn.confidences(100 * inputs, all_labels)
    torch.testing.assert_close(confidences, F.normalize(inputs) @ F.normalize(all_labels).T)


def test_constraining_and_scaling_change_the_loss():
    batch = _label_batch()

    def loss_with(**settings) -> torch.Tensor:
        torch.manual_seed(5)
        return DotProductLoss(num_negatives=5, **settings)(*batch)[0]

    assert DotProductLoss().similarity_type == "inner"
    assert not torch.isclose(loss_with(), loss_with(constrain_similarities=False))

    small = tuple(0.01 * x if x.is_floating_point() else x for x in batch)
    torch.manual_seed(5)
    plain = DotProductLoss(num_negatives=5)(*small)[0]
    torch.manual_seed(5)
    scaled = DotProductLoss(num_negatives=5, scale_loss=True)(*small)[0]
    torch.testing.assert_close(scaled, plain)  # no example learned yet (p < 0.5): no scaling

    all_labels = 2 * torch.eye(4, 8)  # orthogonal labels, inputs equal to their label: p ≈ 0.8
    label_ids = torch.arange(6) % 4
    gold = all_labels[label_ids]
    learned = (gold, gold, label_ids, all_labels, torch.arange(4))
    torch.manual_seed(5)
    plain = DotProductLoss(num_negatives=5, constrain_similarities=False)(*learned)[0]
    torch.manual_seed(5)
    scaled = DotProductLoss(num_negatives=5, constrain_similarities=False, scale_loss=True)(
        *learned)[0]
    assert scaled < 0.1 * plain  # ((1 - p) / 0.5) ** 4 ≈ 0.03 at p ≈ 0.8


@pytest.mark.parametrize(
    "settings, message",
    [(dict(loss_type="hinge"), "loss_type"), (dict(similarity_type="dot"), "similarity_type"),
     (dict(num_negatives=0), "num_negatives")],
)
def test_dot_product_loss_rejects_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        DotProductLoss(**settings)


def test_softmax_label_loss_targets_and_confidences():
    all_labels = torch.randn(3, 4)
    all_ids = torch.tensor([7, 3, 9])
    inputs = torch.randn(5, 4)
    label_ids = torch.tensor([3, 9, 3, 7, 9])
    loss_fn = SoftmaxLabelLoss()
    loss, accuracy = loss_fn(inputs, all_labels[[1, 2, 1, 0, 2]], label_ids, all_labels, all_ids)
    logits = inputs @ all_labels.T
    targets = torch.tensor([1, 2, 1, 0, 2])
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets))
    torch.testing.assert_close(accuracy, (logits.argmax(-1) == targets).float().mean())
    confidences = DotProductLoss().confidences(inputs, all_labels)
    torch.testing.assert_close(loss_fn.confidences(inputs, all_labels), confidences)
    torch.testing.assert_close(confidences.sum(-1), torch.ones(5))
    with pytest.raises(ValueError, match=r"\[5\]"):
        loss_fn(inputs[:1], all_labels[:1], torch.tensor([5]), all_labels, all_ids)


def test_crf_stays_in_float32_under_bf16_autocast():
    torch.manual_seed(0)
    crf = CRF(7)
    with torch.no_grad():
        crf.transitions.normal_(0, 2.0)
    emissions = torch.randn(3, 6, 7) * 3
    tags = torch.randint(0, 7, (3, 6))
    lengths = torch.tensor([6, 4, 1])
    exact = crf.log_likelihood(emissions, tags, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = crf.log_likelihood(emissions.bfloat16(), tags, lengths)
        decoded, _ = crf.decode(emissions, lengths)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, exact, atol=0.1)  # only the bf16 rounding of the inputs
    assert torch.equal(decoded, crf.decode(emissions, lengths)[0])


@pytest.mark.parametrize("relative,unidirectional", [(False, False), (True, False), (True, True)])
def test_first_only_equals_the_first_row_of_the_full_encoder(relative, unidirectional):
    torch.manual_seed(0)
    encoder = TransformerEncoder(6, num_layers=2, units=16, num_heads=2, dropout=0.1,
                                 unidirectional=unidirectional,
                                 use_key_relative_position=relative,
                                 use_value_relative_position=relative).eval()
    x = torch.randn(3, 5, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    full, attention = encoder(x, mask, return_attention=True)
    first, first_attention = encoder(x, mask, return_attention=True, first_only=True)
    assert first.shape == (3, 1, 16)
    torch.testing.assert_close(first, full[:, :1])
    torch.testing.assert_close(first_attention[-1], attention[-1][:, :, :1])
    torch.testing.assert_close(first_attention[0], attention[0])


def test_dropout_keeps_1_minus_p_of_the_elements_and_rescales_them():
    from nlu_models.modules import Dropout

    dropout = Dropout(0.2)
    x = torch.ones(200, 500, requires_grad=True)
    y = dropout(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1.25))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # the gradient goes through the same mask
    assert torch.equal(dropout.eval()(x), x)
    assert not Dropout(1.0)(x).any()


def _splitmix64(state: int) -> int:
    """splitmix64's output for one counter state, in plain unsigned Python arithmetic."""
    mask = (1 << 64) - 1
    z = state & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_hashed_draws_are_splitmix64_cut_into_16_bit_pieces():
    import sys

    from nlu_models.modules.regularization import hashed_draws

    seed = 2 ** 61 + 12345
    draws = hashed_draws(seed, 10)  # three 64-bit outputs, the last one used in part
    assert draws.dtype == torch.int16 and draws.shape == (10,)
    expected = []
    for i in range(1, 4):
        value = _splitmix64(seed + i * 0x9E3779B97F4A7C15)
        expected += [int.from_bytes(value.to_bytes(8, sys.byteorder)[k:k + 2], sys.byteorder,
                                    signed=True) for k in (0, 2, 4, 6)]
    assert draws.tolist() == expected[:10]


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5, 0.9])
def test_keep_mask_keeps_1_minus_p_everywhere_and_follows_the_torch_seed(p):
    from nlu_models.modules.regularization import HASHED_MASK_MIN, keep_mask

    shape = (400, 1000)
    assert math.prod(shape) >= HASHED_MASK_MIN  # the counter-hash path
    torch.manual_seed(3)
    mask = keep_mask(shape, p, "cpu")
    assert mask.dtype == torch.bool and mask.shape == shape
    rows = mask.float().mean(1)
    assert abs(mask.float().mean().item() - (1 - p)) < 0.003
    assert abs(rows[:200].mean() - rows[200:].mean()) < 0.005      # no drift along the tensor
    flat = mask.flatten().float()
    lanes = flat.view(-1, 4)  # the four draws cut from one 64-bit output, and their neighbours
    for a, b in ((0, 1), (1, 2), (2, 3)):
        assert abs(torch.corrcoef(lanes[:, [a, b]].T)[0, 1]) < 0.01
    assert abs(torch.corrcoef(torch.stack([flat[:-4], flat[4:]]))[0, 1]) < 0.01
    torch.manual_seed(3)
    assert torch.equal(keep_mask(shape, p, "cpu"), mask)       # torch.manual_seed fixes it
    assert not torch.equal(keep_mask(shape, p, "cpu"), mask)   # and the next call differs
    small = keep_mask((50, 50), p, "cpu")                      # torch.rand's path
    assert abs(small.float().mean().item() - (1 - p)) < 0.04
