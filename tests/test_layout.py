"""The repo layout must never shadow the standard library's `operator` module."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operator_folder_does_not_shadow_stdlib() -> None:
    # `python -c` and `python -m pytest` put the current directory first on sys.path.
    out = subprocess.run(
        [sys.executable, "-c", "import operator, collections; print(operator.__file__)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(out).resolve() == stdlib / "operator.py", out


def test_operator_folder_has_no_init() -> None:
    # The guarantee above rests on this: a folder without __init__.py is only a
    # namespace candidate and never wins over a real module later on sys.path.
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "worker" / "__init__.py").exists()


def test_packages_import_from_repo_folders() -> None:
    import queueworker.operator
    import queueworker.worker

    assert Path(queueworker.operator.__file__ or "").resolve().is_relative_to(ROOT / "operator")
    assert Path(queueworker.worker.__file__ or "").resolve().is_relative_to(ROOT / "worker")


def test_cli_lists_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "queueworker.cli", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    for command in ("crd", "validate", "operator", "worker", "simulate", "local", "failed"):
        assert f"  {command} " in out


def test_pre_commit_config_is_valid() -> None:
    # `pre-commit install` must work on a fresh clone: the config names only local hooks.
    binary = Path(sys.executable).with_name("pre-commit")
    run = subprocess.run([str(binary), "validate-config", ".pre-commit-config.yaml"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr

