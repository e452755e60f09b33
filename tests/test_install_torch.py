"""The installed torch is the CPU build on a machine without a GPU.

On PyPI, torch 2.13.0 for Linux is the CUDA build: it requires ``cuda-toolkit``,
``nvidia-*`` and ``triton`` (gigabytes). ``scripts/setup.sh`` and the README's wheel
instructions ask for the CPU build (``torch==2.13.0+cpu`` from the PyTorch CPU index);
this test, run by CI right after that set-up, fails if what got installed is the CUDA one.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CUDA_PACKAGE = re.compile(r"^(nvidia-|cuda-|triton\b)", re.IGNORECASE)


def cuda_requirements(requirements: list[str]) -> list[str]:
    """The requirements (``Requires-Dist`` lines) that name a CUDA package."""
    names = [re.split(r"[\s;<>=!~\[(]", line, maxsplit=1)[0] for line in requirements]
    return [name for name in names if CUDA_PACKAGE.match(name)]


def test_the_check_recognises_the_cuda_build_requirements() -> None:
    """The pattern catches what PyPI's Linux torch 2.13.0 declares, and only that."""
    pypi_cuda_build = [
        "filelock",
        'cuda-toolkit[cublas,cudart]==13.0.2; platform_system == "Linux"',
        'nvidia-cudnn-cu13==9.19.0.56; platform_system == "Linux"',
        'nvidia-nccl-cu13>=2.28.9; platform_system == "Linux"',
        'triton==3.7.0; platform_system == "Linux"',
        "sympy>=1.13.3",
    ]
    assert cuda_requirements(pypi_cuda_build) == [
        "cuda-toolkit",
        "nvidia-cudnn-cu13",
        "nvidia-nccl-cu13",
        "triton",
    ]
    assert cuda_requirements(["typing-extensions>=4.10.0", "networkx>=2.5.1"]) == []


def test_installed_torch_requires_no_cuda_package() -> None:
    """Without a GPU the set-up must have installed the CPU build; a CUDA build is kept
    (and allowed here) only where a GPU is present, as the README's CUDA recipe makes it."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CUDA build of torch is the intended one here")
    version = importlib.metadata.version("torch")
    requirements = importlib.metadata.requires("torch") or []
    assert cuda_requirements(requirements) == [], (
        f"torch {version} is the CUDA build on a machine without a GPU: "
        "install the CPU build (scripts/setup.sh, or README 'From a wheel')"
    )
    assert version.split("+")[0] == "2.13.0"


def test_setup_script_asks_for_the_cpu_build_from_the_cpu_index() -> None:
    """The set-up script pins the CPU build by its local version and names the CPU index,
    and keeps a torch 2.13.0 already installed (the CUDA machine's recipe)."""
    script = (ROOT / "scripts" / "setup.sh").read_text()
    assert "https://download.pytorch.org/whl/cpu" in script
    assert "torch==$TORCH_VERSION+cpu" in script
    assert "keeping the installed torch" in script
    syntax = subprocess.run(["bash", "-n", str(ROOT / "scripts" / "setup.sh")], check=False)
    assert syntax.returncode == 0
    readme = (ROOT / "README.md").read_text()
    assert "torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu" in readme
