"""Pure-torch blocks shared by DIET and TED: dense, sparse input, transformer, CRF, losses, L2."""
from nlu_models.modules.crf import CRF, time_major
from nlu_models.modules.dense import Ffnn, RandomlyConnectedDense
from nlu_models.modules.regularization import (
    L2_MODES,
    Dropout,
    add_l2_gradient,
    check_l2_mode,
    kernel_parameters,
)
from nlu_models.modules.similarity import (DotProductLoss, SigmoidLabelLoss, SoftmaxLabelLoss,
                                           predicted_label_sets)
from nlu_models.modules.sparse import DenseForSparse, SparseDropout
from nlu_models.modules.transformer import (
    MultiHeadAttention,
    TransformerEncoder,
    TransformerEncoderLayer,
    rows_rounded,
    sinusoidal_positions,
)

__all__ = [
    "CRF",
    "L2_MODES",
    "DenseForSparse",
    "DotProductLoss",
    "Dropout",
    "Ffnn",
    "MultiHeadAttention",
    "RandomlyConnectedDense",
    "SigmoidLabelLoss",
    "SoftmaxLabelLoss",
    "SparseDropout",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "add_l2_gradient",
    "check_l2_mode",
    "kernel_parameters",
    "predicted_label_sets",
    "rows_rounded",
    "sinusoidal_positions",
    "time_major",
]
