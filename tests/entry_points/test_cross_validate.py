"""experiments.cross_validate on data without predefined folds: stratified folds of train."""
from __future__ import annotations

import json

from experiments.cross_validate import cross_validate
from tests.entry_points.conftest import compose_config


def test_stratified_folds_train_and_aggregate(tmp_path):
    cfg = compose_config("cross_validate", ["experiment=diet_tiny", "cv.n_folds=2",
                                            "trainer.max_epochs=1", "data.val_fraction=0",
                                            "data.max_examples=null"],
                         tmp_path)
    result = cross_validate(cfg)
    for fold in (1, 2):
        assert (tmp_path / f"fold_{fold}" / "reports" / "summary.json").is_file()
    assert result["intent_accuracy"]["n"] == 2
    written = json.loads((tmp_path / "cross_validation.json").read_text())
    assert written["fold"]["values"] == [1, 2]
    # the two test folds partition the demo bot's training examples
    from dialogue_models.project import load_bot
    from tests.conftest import DEMO_BOT

    sizes = [json.loads((tmp_path / f"fold_{k}" / "reports" / "summary.json").read_text())
             ["n_examples"] for k in (1, 2)]
    assert sum(sizes) == len(load_bot(DEMO_BOT).nlu.examples)
    assert "intent_accuracy" in (tmp_path / "cross_validation.md").read_text()
