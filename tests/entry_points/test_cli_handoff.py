"""`dialab train|evaluate|cross-validate` hand Hydra overrides to the experiment entry points."""
from __future__ import annotations

from dialogue_models.cli import main


def test_dialab_train_runs_the_hydra_entry_point(tmp_path):
    code = main(["train", "experiment=diet_tiny", "debug=fdr", f"hydra.run.dir={tmp_path}",
                 "trainer.enable_progress_bar=false"])
    assert code == 0
    assert (tmp_path / ".hydra" / "config.yaml").is_file()


def test_dialab_train_passes_failures_through(tmp_path):
    code = main(["train", "experiment=no_such_experiment", f"hydra.run.dir={tmp_path}"])
    assert code != 0


def test_dialab_compare_hands_off_to_the_learning_curve_entry_point(tmp_path, capfd):
    code = main(["compare", "experiment=diet_tiny", "compare.percentages=[0]",
                 f"hydra.run.dir={tmp_path}"])
    assert code != 0  # experiments.compare refuses the percentage before training anything
    assert "percent" in capfd.readouterr().err.lower()
