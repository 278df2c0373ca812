"""The built wheel, not only the editable install, maps the component folders into `meterline`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

COMPONENTS = (
    "meterline.producers",
    "meterline.stream",
    "meterline.sinks",
    "meterline.alerts",
    "meterline.dashboard.page",
    "meterline.report.cli",
)


def test_built_wheel_imports_every_component(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(REPO_ROOT),
        ],
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = wheel_dir.glob("meterline-*.whl")
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    assert "meterline/services/kafka-pom.xml" in names
    assert "meterline/py.typed" in names  # applications type-check against meterline.producers & co
    # The dashboard and the HTML report work offline: the page and the charting library ship inside.
    for static in (
        "index.html",
        "dashboard.js",
        "dashboard.css",
        "vendor/chart.umd.min.js",
        "vendor/chart.js.LICENSE.md",
    ):
        assert f"meterline/dashboard/static/{static}" in names, static
    code = (
        "import importlib, sys\n"
        f"for name in {COMPONENTS!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(unpacked)!r}), module.__file__\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_editable_install_imports_every_component() -> None:
    code = "import importlib\n" + "".join(f"importlib.import_module({name!r})\n" for name in COMPONENTS) + "print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
