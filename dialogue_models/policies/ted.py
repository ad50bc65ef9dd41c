"""``TEDPolicy``: a trained :class:`TEDModel` asked for the next action of a tracker.

Training happens in Lightning (:class:`~dialogue_models.ted.datamodule.DialogueDataModule` +
:class:`~dialogue_models.ted.lit_module.TEDLitModule`, or :func:`fit_ted` for notebooks); this
class featurizes a tracker the way the training examples were made and reads the confidences.
Priority 1, the lowest, as in Rasa: rules and memoization decide first.

With text features (end-to-end), a current user turn that has both an intent and a text is
predicted twice, as Rasa's TED does: by its intent and by its text alone
(:func:`~dialogue_models.featurize.state_versions`). The text prediction is kept when its top
confidence exceeds ``e2e_confidence_threshold`` and its top similarity the intent one's; it is
then flagged ``is_end_to_end`` (the ensemble prefers such predictions, as Rasa's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from dialogue_models.domain import Domain
from dialogue_models.featurize import StateFeaturizer, intent_version, state_versions
from dialogue_models.policies.base import Policy, PolicyPrediction
from dialogue_models.states import DialogueSpace, State, tracker_states
from dialogue_models.ted.encoding import collate, encode_states, set_label_texts
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
        self._actions: tuple[tuple[int, ...], torch.Tensor] | None = None  # (weights, (L, E))

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
        versions = self.state_versions(tracker)
        batch = collate([encode_states(v, self.featurizer) for v in versions], self.mode)
        device = next(self.model.parameters()).device
        prediction = self.model.predict(batch.to(device), self._action_embeddings())
        confidences, similarities = prediction.confidences, prediction.similarities
        if confidences.dim() == 3:  # full dialogue: (V, D, L), read the current turn
            current = len(versions[0]) - 1
            confidences, similarities = confidences[:, current], similarities[:, current]
        text_wins = len(versions) == 2 and self._text_wins(confidences, similarities)
        chosen = confidences[1 if text_wins else 0]                              # (L,)
        return PolicyPrediction([float(c) for c in chosen.float().cpu()], self.name,
                                self.priority, is_end_to_end=text_wins)

    def _action_embeddings(self) -> torch.Tensor:
        """All actions' embeddings, computed again only when a weight changed in place (an
        optimizer step, ``load_state_dict``): with ``label_action_text`` on thousands of
        utterances they cost more than the dialogue side of a prediction."""
        key = tuple(p._version for p in self.model.parameters())
        if self._actions is None or self._actions[0] != key:
            self._actions = (key, self.model.action_embeddings())
        return self._actions[1]

    def _text_wins(self, confidences: torch.Tensor, similarities: torch.Tensor) -> bool:
        """Rasa's ``_pick_confidence``: rows (intent version, text version), each (L,)."""
        threshold = self.model.config.e2e_confidence_threshold
        return bool(confidences[1].max() > threshold
                    and similarities[1].max() > similarities[0].max())

    def state_versions(self, tracker: Tracker) -> list[list[State]]:
        """The states the model reads: one version, or two (intent, then text) when the
        current user turn has both, the model has text features and the text has some (a
        text of unseen words alone would be an empty user turn)."""
        with_text = self.featurizer.text is not None
        states = tracker_states(tracker, self.space, with_text)
        if self.mode == "max_history" and self.max_history is not None:
            states = states[-self.max_history:]
        if not with_text:
            return [states]
        intents = set(self.space.intents)
        if self.mode == "full_dialogue":
            return [intent_version(states, intents)]
        versions = state_versions(states, intents)
        if len(versions) == 2 and not self.featurizer.encode_text(versions[1][-1:]).counts[0]:
            return versions[:1]
        return versions

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
        featurizer = StateFeaturizer.from_dict(data["featurizer"])
        if model.config.label_action_text:
            set_label_texts(model, featurizer)
        return cls(model, featurizer, data["max_history"], data.get("priority"))


def fit_ted(data: Any, epochs: int = 100, config: Mapping[str, Any] | None = None,
            mode: str = "max_history", max_history: int | None = 5, seed: int = 42,
            learning_rate: float = 1e-3, regularization_constant: float = 0.001,
            priority: int | None = None, featurizers: Sequence[dict[str, Any]] = (),
            **trainer_kwargs: Any) -> TEDPolicy:
    """Train TED in plain Python (notebooks): ``data`` is a bot folder, a loaded ``BotData`` or a
    prepared ``DialogueDataModule``; ``config`` overrides :class:`TEDConfig` fields;
    ``featurizers`` (NLU featurizer entries) turn on user-text features. Runs a quiet Lightning
    fit on the CPU unless ``trainer_kwargs`` say otherwise."""
    import lightning as L

    from dialogue_models.ted.datamodule import DialogueDataModule
    from dialogue_models.ted.lit_module import TEDLitModule

    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = (data if isinstance(data, DialogueDataModule) else
                  DialogueDataModule(data, mode=mode, max_history=max_history, seed=seed,
                                     featurizers=featurizers))
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
