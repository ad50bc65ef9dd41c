"""What the benchmark scripts share: the machine they ran on, and running a command while
measuring its wall time and peak memory."""
from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

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
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return {"wall_seconds": round(wall, 1),
            "peak_rss_mb": round(int(peak.group(1)) / 1024, 1) if peak else None}


def ratios(rasa: dict[str, Any], dialab: dict[str, Any], epoch_key: str) -> dict[str, Any]:
    """Rasa's measurement over dialab's: whole training command, one epoch (``epoch_key``; None
    when Rasa's log gave no epoch time), peak memory."""
    return {"train_wall": round(rasa["wall_seconds"] / dialab["wall_seconds"], 1),
            "epoch_time": (round(rasa[epoch_key] / dialab[epoch_key], 1)
                           if rasa.get(epoch_key) else None),
            "peak_memory": round(rasa["peak_rss_mb"] / dialab["peak_rss_mb"], 1)}
