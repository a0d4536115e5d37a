#!/usr/bin/env bash
# The test suite, against real vLLM CPU servers it starts itself. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
# The report test opens report.html in a real headless browser; install it where we may.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test.sh: could not install chromium; the browser test will be skipped" >&2
fi
VENV="${LLMPERF_VENV:-.venv}"
exec "$VENV/bin/python" -m pytest "$@"
