"""What the benchmark scripts share: the machine they ran on, running a command while measuring
its wall time and peak memory, a dialab training in a subprocess, and the Rasa 3.6 anchor (its
venv, environment and default DIET config)."""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from experiments import REPO_ROOT

RASA_VENV = Path(os.environ.get("RASA_VENV", Path.home() / ".cache/dialab-anchor/rasa-venv"))
ANCHOR_CONFIG = REPO_ROOT.parent / "shared/tools/rasa_anchor/config_diet.yml"


def add_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """What the benchmarks that train per seed take: ``--seeds``, ``--epochs``, ``--out`` and
    further Hydra overrides after ``--``."""
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=None, help="override trainer.max_epochs")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "outputs" / "bench")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides, after --")
    return parser


def machine_info() -> dict[str, Any]:
    import torch

    memory_gb = None
    if Path("/proc/meminfo").exists():
        total_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory_gb = round(total_kb / 1024 ** 2, 1)
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "memory_gb": memory_gb,
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def timed_command(command: list[str], log_file: Path, cwd: Path,
                  env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` under GNU time; its output goes to ``log_file``. Returns the wall
    seconds and the peak resident memory (MB) of its largest process."""
    use_time = Path("/usr/bin/time").exists()
    prefix = ["/usr/bin/time", "-v"] if use_time else []
    started = time.perf_counter()
    with open(log_file, "w") as log:
        completed = subprocess.run(prefix + command, cwd=cwd, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    text = log_file.read_text(errors="replace")
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({completed.returncode}); "
                           f"see {log_file}:\n{text[-2000:]}")
    return {"wall_seconds": round(wall, 1), "peak_rss_mb": _peak_rss_mb(text)}


def _peak_rss_mb(gnu_time_output: str) -> float | None:
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", gnu_time_output)
    return round(int(peak.group(1)) / 1024, 1) if peak else None


def measured_from_log(log_file: Path) -> dict[str, Any] | None:
    """What :func:`timed_command` measured, read back from the GNU time lines at the end of a
    finished command's log; None unless the log shows a command that exited with status 0."""
    if not log_file.exists():
        return None
    text = log_file.read_text(errors="replace")
    if not re.search(r"Exit status: 0\b", text):
        return None
    elapsed = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if elapsed is None:
        return None
    seconds = 0.0
    for part in elapsed.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return {"wall_seconds": round(seconds, 1), "peak_rss_mb": _peak_rss_mb(text)}


def ratios(rasa: dict[str, Any], dialab: dict[str, Any], epoch_key: str) -> dict[str, Any]:
    """Rasa's measurement over dialab's: whole training command, one epoch (``epoch_key``; None
    when Rasa's log gave no epoch time), peak memory."""
    return {"train_wall": round(rasa["wall_seconds"] / dialab["wall_seconds"], 1),
            "epoch_time": (round(rasa[epoch_key] / dialab[epoch_key], 1)
                           if rasa.get(epoch_key) else None),
            "peak_memory": round(rasa["peak_rss_mb"] / dialab["peak_rss_mb"], 1)}


def train_dialab(experiment: str, epochs: int, seed: int, run_dir: Path, log_file: Path,
                 overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """``python -m experiments.train experiment=<experiment>`` into ``run_dir``, timed (see
    :func:`timed_command`); ``overrides`` are further Hydra overrides."""
    return timed_command(
        [sys.executable, "-m", "experiments.train", f"experiment={experiment}", *overrides,
         f"trainer.max_epochs={epochs}", f"seed={seed}", "trainer.enable_progress_bar=false",
         "callbacks.model_summary=null", f"hydra.run.dir={run_dir}"],
        log_file, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def rasa_executable(name: str = "rasa") -> Path:
    """``$RASA_VENV/bin/<name>``; exits with how to install the anchor when it is missing."""
    path = RASA_VENV / "bin" / name
    if not path.exists():
        raise SystemExit(f"Rasa not found at {path}: run ../shared/tools/rasa_anchor/install.sh")
    return path


def rasa_env() -> dict[str, str]:
    """The environment Rasa runs in: no telemetry, no training cache (cold, comparable
    trainings), quiet TensorFlow."""
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "RASA_MAX_CACHE_SIZE": "0",
            "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore"}


def anchor_config(epochs: int, out: Path) -> Path:
    """The anchor's default Rasa NLU pipeline with DIET's ``epochs`` set, written to ``out``."""
    out.write_text(re.sub(r"epochs: \d+", f"epochs: {epochs}", ANCHOR_CONFIG.read_text()))
    return out
