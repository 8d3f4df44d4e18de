"""The read side installs and runs alone; the import rules of DESIGN.md hold."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors"
RECORDER_ONLY = ("av", "numpy", "sounddevice", "gpiozero", "aiohttp", "pyudev", "PIL", "smbus2")


def test_import_linter_contracts_hold():
    """pyproject.toml [tool.importlinter]: format, capture, recorder, dock, archive."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml")], cwd=REPO,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def test_verify_runs_on_a_clean_install_without_extras(tmp_path):
    """A court's install: the project without extras; `bodycam verify` on the vectors."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the worktree
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "*.egg-info", "build", "__pycache__", ".pytest_cache", ".hypothesis", "demo"))
    install = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(src)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    check = (
        "import sys\n"
        "from bodycam.cli import main\n"
        "try:\n"
        f"    main(['verify', '--ca', {str(VECTORS / 'keys' / 'ca' / 'ca.crt')!r},"
        f" {str(VECTORS / 'recording')!r}])\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        f"loaded = sorted(m for m in {RECORDER_ONLY!r} if m in sys.modules)\n"
        "print('EXIT', code, 'LOADED', loaded)\n"
        "for m in ('av', 'numpy', 'sounddevice', 'gpiozero'):\n"
        "    try:\n"
        "        __import__(m)\n"
        "        print('INSTALLED', m)\n"
        "    except ImportError:\n"
        "        pass\n"
    )
    result = subprocess.run([str(py), "-c", check], capture_output=True, text=True, cwd=tmp_path)
    assert "EXIT 0 LOADED []" in result.stdout, result.stdout + result.stderr
    assert "RESULT: VERIFIED" in result.stdout
    assert "INSTALLED" not in result.stdout  # the extras were not pulled in
    cli = subprocess.run([str(env_dir / "bin" / "bodycam"), "--help"], capture_output=True, text=True)
    assert cli.returncode == 0 and "verify" in cli.stdout and "unseal" in cli.stdout, cli.stderr
