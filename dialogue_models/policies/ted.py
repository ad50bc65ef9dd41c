"""``TEDPolicy``: a trained :class:`TEDModel` asked for the next action of a tracker.

Training happens in Lightning (:class:`~dialogue_models.ted.datamodule.DialogueDataModule` +
:class:`~dialogue_models.ted.lit_module.TEDLitModule`, or :func:`fit_ted` for notebooks); this
class featurizes a tracker the way the training examples were made and reads the confidences.
Priority 1, the lowest, as in Rasa: rules and memoization decide first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from dialogue_models.domain import Domain
from dialogue_models.featurize import StateFeaturizer
from dialogue_models.policies.base import Policy, PolicyPrediction
from dialogue_models.states import DialogueSpace, tracker_states
from dialogue_models.ted.encoding import EncodedDialogue, collate
from dialogue_models.ted.model import TEDModel
from dialogue_models.tracker import Tracker


class TEDPolicy(Policy):
    name = "TEDPolicy"
    default_priority = 1

    def __init__(self, model: TEDModel, featurizer: StateFeaturizer, max_history: int | None = 5,
                 priority: int | None = None) -> None:
        super().__init__(priority)
        self.model = model.eval()
        self.featurizer = featurizer
        self.space = featurizer.space
        self.max_history = max_history
        self.mode = model.config.mode

    @classmethod
    def from_lit_module(cls, module: Any, priority: int | None = None) -> "TEDPolicy":
        """From a trained :class:`TEDLitModule` (its ``featurizer`` and ``labels`` say how)."""
        hparams = module.hparams
        if not hparams.get("featurizer"):
            raise ValueError("this TED module carries no state featurizer; build it with "
                             "DialogueDataModule so the checkpoint can featurize trackers")
        return cls(module.model, StateFeaturizer.from_dict(hparams["featurizer"]),
                   hparams["labels"].get("max_history"), priority)

    @classmethod
    def load_checkpoint(cls, path: str | Path, priority: int | None = None) -> "TEDPolicy":
        from dialogue_models.ted.lit_module import TEDLitModule

        module = TEDLitModule.load_from_checkpoint(str(path), map_location="cpu")
        return cls.from_lit_module(module, priority)

    def train(self, trackers: Sequence[Tracker], domain: Domain, space: DialogueSpace,
              **kwargs: Any) -> None:
        raise NotImplementedError("TEDPolicy wraps a trained model: train it with "
                                  "dialogue_models.policies.ted.fit_ted (or `python -m "
                                  "experiments.train experiment=ted_demo`)")

    @torch.no_grad()
    def predict(self, tracker: Tracker, domain: Domain | None = None) -> PolicyPrediction:
        states = tracker_states(tracker, self.space)
        if self.mode == "max_history" and self.max_history is not None:
            states = states[-self.max_history:]
        features = self.featurizer.encode(states)
        batch = collate([EncodedDialogue(features)], self.mode)
        device = next(self.model.parameters()).device
        confidences = self.model.predict(batch.to(device)).confidences  # (1, L) or (1, D, L)
        last = confidences[0] if confidences.dim() == 2 else confidences[0, len(states) - 1]
        return PolicyPrediction([float(c) for c in last.float().cpu()], self.name,
                                self.priority)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.model.config.to_dict(), "featurizer": self.featurizer.to_dict(),
                "max_history": self.max_history, "priority": self.priority}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor] | None
                  = None) -> "TEDPolicy":
        from dialogue_models.ted.model import TEDConfig

        model = TEDModel(TEDConfig.from_dict(dict(data["config"])))
        if state_dict is None:
            raise ValueError("TEDPolicy.from_dict needs the model weights (state_dict)")
        model.load_state_dict(dict(state_dict))
        return cls(model, StateFeaturizer.from_dict(data["featurizer"]), data["max_history"],
                   data.get("priority"))


def fit_ted(data: Any, epochs: int = 100, config: Mapping[str, Any] | None = None,
            mode: str = "max_history", max_history: int | None = 5, seed: int = 42,
            learning_rate: float = 1e-3, regularization_constant: float = 0.001,
            priority: int | None = None, **trainer_kwargs: Any) -> TEDPolicy:
    """Train TED in plain Python (notebooks): ``data`` is a bot folder, a loaded ``BotData`` or a
    prepared ``DialogueDataModule``; ``config`` overrides :class:`TEDConfig` fields. Runs a
    quiet Lightning fit on the CPU unless ``trainer_kwargs`` say otherwise."""
    import lightning as L

    from dialogue_models.ted.datamodule import DialogueDataModule
    from dialogue_models.ted.lit_module import TEDLitModule

    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = (data if isinstance(data, DialogueDataModule) else
                  DialogueDataModule(data, mode=mode, max_history=max_history, seed=seed))
    datamodule.prepare()
    module = TEDLitModule(config={**dict(config or {}), **datamodule.model_config()},
                          labels={"actions": list(datamodule.space.actions),
                                  "max_history": datamodule.max_history},
                          featurizer=datamodule.featurizer.to_dict(),
                          learning_rate=learning_rate,
                          regularization_constant=regularization_constant)
    settings = {"max_epochs": epochs, "accelerator": "cpu", "devices": 1, "logger": False,
                "enable_checkpointing": False, "enable_model_summary": False,
                "enable_progress_bar": False, "reload_dataloaders_every_n_epochs": 1,
                "num_sanity_val_steps": 0, **trainer_kwargs}
    L.Trainer(**settings).fit(module, datamodule=datamodule)
    return TEDPolicy.from_lit_module(module.cpu(), priority)
