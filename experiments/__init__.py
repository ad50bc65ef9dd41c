"""Hydra entry points (train, evaluate, cross_validate, compare) and benchmarks. Hydra stays
here, at the edge: the packages below never import it."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"

if not OmegaConf.has_resolver("dialab_root"):
    OmegaConf.register_new_resolver("dialab_root", lambda: str(REPO_ROOT))
