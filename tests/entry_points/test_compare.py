"""experiments.compare: learning curves over percentages of the training data × runs."""
from __future__ import annotations

import json

import pytest

from experiments.compare import compare, experiment_configs
from tests.entry_points.conftest import compose_config


def test_learning_curve_on_two_percentages_writes_results_table_and_plot(tmp_path, capsys):
    cfg = compose_config("compare", ["experiment=diet_tiny", "compare.percentages=[100,50]",
                                     "compare.runs=1", "trainer.max_epochs=1",
                                     "trainer.enable_progress_bar=false"], tmp_path)
    compare(cfg)

    result = json.loads((tmp_path / "results.json").read_text())
    assert [(r["config"], r["percentage"], r["run"]) for r in result["runs"]] == \
        [("diet_tiny", 100.0, 1), ("diet_tiny", 50.0, 1)]
    full, half = result["runs"]
    # half the training examples (stratified: each intent rounds on its own), the same test split
    assert abs(half["num_train_examples"] - full["num_train_examples"] / 2) <= 10
    assert half["n_examples"] == full["n_examples"] and half["split"] == "test"
    for pct, run in (("100", full), ("50", half)):
        point = result["curves"]["diet_tiny"][pct]
        assert point["intent_accuracy"] == {"mean": run["intent_accuracy"], "sd": 0.0, "n": 1,
                                            "values": [run["intent_accuracy"]]}
        assert (tmp_path / "diet_tiny" / f"{pct}pct_run1" / "reports" / "summary.json").is_file()
    assert (tmp_path / "learning_curve.png").read_bytes().startswith(b"\x89PNG")
    table = (tmp_path / "results.md").read_text()
    assert f"| diet_tiny | 50 | {half['num_train_examples']} |" in table
    assert table in capsys.readouterr().out


def test_named_configs_are_composed_with_the_other_command_line_overrides(tmp_path):
    overrides = ["experiment=diet_demo", "compare.configs=[diet_tiny,diet_demo_pretrained]",
                 "trainer.max_epochs=7", "seed=3"]
    cfg = compose_config("compare", overrides, tmp_path)
    configs = experiment_configs(cfg, overrides, label=None)
    assert list(configs) == ["diet_tiny", "diet_demo_pretrained"]
    assert [c.model.name for c in configs.values()] == ["diet_tiny", "diet_pretrained"]
    assert all(c.trainer.max_epochs == 7 and c.seed == 3 for c in configs.values())
    # without names, the composed config is the one config
    (only,) = experiment_configs(compose_config("compare", ["experiment=diet_tiny"]), [],
                                 label="mine").items()
    assert only[0] == "mine" and only[1].model.name == "diet_tiny"


@pytest.mark.parametrize("percentages", ["[]", "[0]", "[120,50]"])
def test_percentages_outside_zero_to_hundred_are_refused(percentages, tmp_path):
    cfg = compose_config("compare", ["experiment=diet_tiny",
                                     f"compare.percentages={percentages}"], tmp_path)
    with pytest.raises(ValueError, match="compare.percentages"):
        compare(cfg)


def test_dialogue_configs_are_refused_before_anything_trains(tmp_path):
    overrides = ["experiment=diet_tiny", "compare.configs=[diet_tiny,ted_tiny]"]
    cfg = compose_config("compare", overrides, tmp_path)
    with pytest.raises(ValueError, match="ted_tiny"):
        compare(cfg, overrides)
    assert not list(tmp_path.iterdir())
