"""TED, the transformer dialogue policy: config, inputs and model (pure torch; the Lightning
system lives in :mod:`dialogue_models.ted.lit_module`)."""
from dialogue_models.ted.model import (
    ATTRIBUTES,
    MODES,
    TEDConfig,
    TEDInputs,
    TEDModel,
    TEDOutput,
    TEDPrediction,
    reverse_turns,
)

__all__ = ["ATTRIBUTES", "MODES", "TEDConfig", "TEDInputs", "TEDModel", "TEDOutput",
           "TEDPrediction", "reverse_turns"]
