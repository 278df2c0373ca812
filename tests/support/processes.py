"""Run the `meterline` command line, and find the Kafka processes a test started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def meterline_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meterline.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )


def kafka_pids(config_file: Path) -> list[int]:
    pids = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in cmdline and str(config_file).encode() in cmdline:
            pids.append(int(proc_dir.name))
    return pids
