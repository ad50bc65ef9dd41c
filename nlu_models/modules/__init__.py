"""Pure-torch blocks shared by DIET and TED: dense, sparse input, transformer, CRF, losses."""
from nlu_models.modules.crf import CRF
from nlu_models.modules.dense import Ffnn, RandomlyConnectedDense
from nlu_models.modules.similarity import DotProductLoss, SoftmaxLabelLoss
from nlu_models.modules.sparse import DenseForSparse, SparseDropout
from nlu_models.modules.transformer import (
    MultiHeadAttention,
    TransformerEncoder,
    TransformerEncoderLayer,
    sinusoidal_positions,
)

__all__ = [
    "CRF",
    "DenseForSparse",
    "DotProductLoss",
    "Ffnn",
    "MultiHeadAttention",
    "RandomlyConnectedDense",
    "SoftmaxLabelLoss",
    "SparseDropout",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "sinusoidal_positions",
]
