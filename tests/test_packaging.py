"""The installed distribution: subpackage mapping and the console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import autotelic

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_mapped_under_autotelic():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = config["package-dir"]
    listed = set(config["packages"])
    assert set(mapping) == listed
    found = set()
    for top in [
        "core",
        "envs",
        "learners",
        "storage",
        "goals",
        "runtime",
        "testing",
        "distributed",
    ]:
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT).as_posix()
            found.add("autotelic." + rel.replace("/", "."))
            assert mapping["autotelic." + rel.replace("/", ".")] == rel
    assert found | {"autotelic"} == listed


def test_no_bare_top_level_modules_are_importable_from_site_packages():
    code = "import importlib.util as u; print([m for m in ('core','storage','runtime','envs','goals','learners','testing') if u.find_spec(m)])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True
    )
    assert out.stdout.strip() == "[]"


def test_console_script_help_and_version():
    exe = shutil.which("autotelic", path=str(Path(sys.executable).parent))
    assert exe is not None, "the autotelic console script is not installed"
    help_out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True, cwd="/")
    assert "Usage" in help_out.stdout and "autotelic" in help_out.stdout
    version = subprocess.run(
        [exe, "--version"], capture_output=True, text=True, check=True, cwd="/"
    )
    assert version.stdout.strip() == f"autotelic {autotelic.__version__}"
    assert autotelic.__version__ != "0.0.0+unknown"


def test_python_dash_m_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "autotelic", "envs"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    assert "autotelic/PlaygroundText-v0" in out.stdout
