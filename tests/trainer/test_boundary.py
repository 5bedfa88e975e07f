"""The trainer's import boundary: files in, files out; never Django, lookfirst, workers or celery."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"django", "lookfirst", "workers", "celery"}


def test_import_linter_keeps_the_trainer_contract():
    environ = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}"}
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", "pyproject.toml"], cwd=ROOT, env=environ, capture_output=True,
                            text=True, timeout=300)
    assert "trainer reads files only: never Django, lookfirst or workers KEPT" in result.stdout, \
        result.stdout + result.stderr


def test_no_trainer_module_names_a_forbidden_package():
    """A direct check that does not depend on import-linter's graph (also catches lazy imports in functions)."""
    for path in sorted((ROOT / "trainer").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.relative_to(ROOT)} imports {name}"


def test_trainer_run_checks_input_without_torch():
    """`trainer run` stays light (it only checks input and starts stage processes)."""
    code = ("import sys, trainer.__main__, trainer.run, trainer.export, trainer.config, trainer.models; "
            "heavy = {'torch', 'transformers', 'trl', 'open_clip', 'datasets'} & set(sys.modules); "
            "print(sorted(heavy))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
