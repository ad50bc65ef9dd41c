"""Every config under configs/ composes, and the data/model/trainer objects it names build."""
from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from experiments import CONFIG_DIR, experiment_config
from tests.entry_points.conftest import compose_config

REQUIRED = {"data=rasa_bot": ["data.path=data/demo_bot"],  # mandatory values (???)
            "data=rasa_bot_stories": ["data.train=data/demo_bot", "model=ted"]}
DIALOGUE_DATA = {"demo_bot_stories", "carbon_bot", "financial_demo", "multiwoz_ted",
                 "ted_sub_dialogues"}
GROUPS = ["data", "model", "trainer", "logger", "callbacks", "experiment", "hparams_search",
          "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_config_composes(group, option, tmp_path):
    extra = REQUIRED.get(f"{group}={option}", [])
    if group == "data" and option in DIALOGUE_DATA:  # story data goes with a dialogue model
        extra = ["model=ted", *extra]
    if group == "model" and option.startswith("ted"):
        extra = ["data=demo_bot_stories", *extra]
    cfg = compose_config("train", [f"{group}={option}", *extra], tmp_path)
    # every interpolation resolves (paths, featurizers, fold numbers, env defaults)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert container["model"]["config"]["transformer_size"] > 0
    assert "_target_" in container["data"] and "_target_" in container["trainer"]


def test_experiment_config_composes_as_the_train_entry_point_does():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    outside = experiment_config("diet_atis", ["trainer.max_epochs=3"])
    assert outside.model.name == "diet" and outside.trainer.max_epochs == 3
    assert outside.data.train.path.endswith("atis/jointbert")
    assert not GlobalHydra.instance().is_initialized()  # it leaves no global state behind
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):  # as in an app
        inside = experiment_config("diet_atis", ["trainer.max_epochs=3"])
    assert OmegaConf.to_container(inside) == OmegaConf.to_container(outside)
    assert compose_config("train", ["experiment=diet_atis"]).trainer.max_epochs == 100


@pytest.mark.parametrize("name", ["eval", "cross_validate", "compare", "export"])
def test_entry_point_configs_compose(name, tmp_path):
    overrides = ["experiment=diet_hwu64"] if name == "cross_validate" else ["ckpt_path=x.ckpt"]
    cfg = compose_config(name, overrides, tmp_path)
    OmegaConf.to_container(cfg, resolve=True)


def test_benchmark_data_is_addressed_through_one_path(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALAB_DATA", "/somewhere/else")
    cfg = compose_config("train", ["experiment=diet_snips"], tmp_path)
    assert cfg.data.train.path == "/somewhere/else/snips/jointbert"
    cfg = compose_config("train", ["experiment=diet_hwu64", "data.fold=7"], tmp_path)
    assert cfg.data.test.path.endswith("hwu64/liu2019_10fold/KFold_7")


def test_multi_label_configs_pair_the_sigmoid_model_with_multi_label_data(tmp_path):
    cfg = compose_config("train", ["experiment=diet_atis_multilabel"], tmp_path)
    assert cfg.model.config.intent_loss == "sigmoid" and cfg.data.multi_label is True
    assert cfg.data.intent_split_symbol == "#"
    assert compose_config("train", ["experiment=diet_atis"], tmp_path).data.multi_label is False
    cfg = compose_config("train", ["data=rasa_bot", "data.path=bot", "model=diet_multilabel",
                                   "data.multi_label=true"], tmp_path)  # Rasa's a+b intents
    assert cfg.data.intent_split_symbol == "+" and cfg.model.config.intent_loss == "sigmoid"



def test_end_to_end_multiwoz_is_scored_through_the_action_map_of_its_variant(tmp_path,
                                                                            monkeypatch):
    from experiments.train import build_datamodule

    monkeypatch.setenv("DIALAB_DATA", "/data")
    cfg = compose_config("train", ["experiment=ted_multiwoz_e2e"], tmp_path)
    assert cfg.data.action_map == "/data/multiwoz21_ted/e2e-status/action_map.json"
    assert build_datamodule(cfg.data).action_map == cfg.data.action_map  # a constructor argument
    cfg = compose_config("train", ["experiment=ted_multiwoz_e2e", "data.variant=e2e"], tmp_path)
    assert cfg.data.action_map == "/data/multiwoz21_ted/e2e/action_map.json"
    for experiment in ("ted_multiwoz", "ted_demo", "ted_tiny_e2e"):  # utterances stay literal
        assert compose_config("train", [f"experiment={experiment}"], tmp_path).data.action_map \
            is None, experiment

@pytest.mark.parametrize("trainer", ["cpu", "gpu", "ddp"])
def test_trainer_configs_instantiate(trainer, tmp_path):
    cfg = compose_config("train", [f"trainer={trainer}"], tmp_path)
    if trainer == "gpu":
        import torch

        if not torch.cuda.is_available():
            assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
            return
    if trainer == "ddp":
        assert cfg.trainer.strategy == "ddp" and cfg.trainer.use_distributed_sampler is False
        return
    trainer_obj = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer_obj.max_epochs == 100


def test_model_defaults_equal_rasa():
    cfg = compose_config("train", [], Path("."))
    model = cfg.model.config
    assert (model.transformer_size, model.number_of_transformer_layers,
            model.number_of_attention_heads) == (256, 2, 4)
    assert (model.embedding_dimension, model.dense_dimension_text, model.drop_rate,
            model.connection_density, model.number_of_negative_examples) == (20, 128, 0.2, 0.2, 20)
    assert model.constrain_similarities is True and model.intent_loss == "dot_product"
    assert cfg.model.training.learning_rate == 0.001
    assert cfg.model.training.regularization_constant == 0.002
    assert list(cfg.data.batch_size) == [64, 256] and cfg.data.batch_strategy == "balanced"
    assert cfg.trainer.max_epochs == 100


def test_the_diet_paper_config_builds_the_papers_sparse_only_model(tmp_path):
    """model=diet_paper (the DIET paper's sparse-only NLU-Benchmark setting) builds what its
    comment says: only word and char_wb 1-5 counts, a 512-wide sparse projection, dense layers,
    no extra projection to concat_dimension, and the experiment's BIO tags and batches."""
    from experiments.train import build_datamodule
    from nlu_models.diet.lit_module import DIETLitModule
    from nlu_models.modules.dense import RandomlyConnectedDense

    cfg = compose_config("train", ["data=demo_bot", "model=diet_paper"], tmp_path)
    datamodule = build_datamodule(cfg.data, show_progress=False).prepare()
    pipeline = datamodule.pipeline
    assert [type(f).__name__ for f in pipeline.sparse] == ["CountVectorsFeaturizer"] * 2
    assert pipeline.dense is None and pipeline.sparse[1].max_ngram == 5
    model = DIETLitModule.for_data(datamodule,
                                   model=OmegaConf.to_container(cfg.model.config)).model
    assert model.seq_input.dense_for_sparse.out_features == 512 and model.same_width
    layers = [m for m in model.modules() if isinstance(m, RandomlyConnectedDense)]
    assert layers and all(m.mask is None for m in layers)  # weight_sparsity 0
    assert not model.config.constrain_similarities and not model.config.use_dense_input_dropout

    experiment = compose_config("train", ["experiment=diet_hwu64_paper"], tmp_path)
    assert experiment.model.name == "diet_paper" and experiment.data.scheme == "BIO"
    assert list(experiment.data.batch_size) == [64, 128]
    assert experiment.trainer.max_epochs == 200 and experiment.lenient_entities
