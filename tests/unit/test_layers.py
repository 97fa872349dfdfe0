"""Layers run downhill: schemas, operators, models, the runtime (lineage, config, connectors, metrics,
topics), flows, and on top the tools (CLI, bench, report, console). The contract is import-linter's,
configured in pyproject.toml; it checks indirect imports too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("schemas", "operators", "models", "lineage", "coachflow", "flows", "console")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=root,
                          capture_output=True, text=True, timeout=120, check=False)


def test_no_layer_imports_a_higher_one() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_an_uphill_import_breaks_the_contract(tmp_path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.onnx", "json"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    uphill = tmp_path / "operators" / "uphill.py"
    uphill.write_text("from coachflow import config  # noqa: F401 - operators reaching up into the runtime\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0 and "operators.uphill -> coachflow.config" in done.stdout, done.stdout[-3000:]
