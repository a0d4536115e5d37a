#!/usr/bin/env bash
# The main job: the perf suite (pytest --llmperf) against local CPU vLLM servers of the four
# tiny models: the built-in default matrix, unless an llmperf.toml or [tool.llmperf] says
# otherwise. Extra arguments go to pytest (e.g. --llmperf-concurrency 1,16).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
VENV="${LLMPERF_VENV:-.venv}"
exec "$VENV/bin/python" -m pytest --llmperf -m llmperf -p no:randomly -rA "$@"
