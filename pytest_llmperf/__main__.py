"""``python -m pytest_llmperf``: tiny-model, plan and compare, without pytest."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

USAGE = """usage: python -m pytest_llmperf COMMAND [ARGS]

commands:
  tiny-model --arch {dense-gqa,moe-gqa,moe-mla,vision} [--out DIR]
                 build a tiny random-weight checkpoint (cached) and print its folder
  plan ...       explain the vLLM launch plan for a model (see plan --help)
  compare BASELINE CURRENT ...
                 compare two stored results; exit 1 on a regression (see compare --help)
  history [show|import|prune|check] ...
                 the stored nightly series: cases, change points, plots (see history --help)
"""


def _tiny_model(argv: Sequence[str]) -> int:
    from pytest_llmperf.server.tiny_models import ARCHS, build_tiny_model

    parser = argparse.ArgumentParser(prog="python -m pytest_llmperf tiny-model")
    parser.add_argument("--arch", required=True, choices=ARCHS)
    parser.add_argument("--out", default=None, help="cache folder (default: user cache)")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    from pathlib import Path

    path = build_tiny_model(args.arch, Path(args.out) if args.out else None, force=args.force)
    print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "tiny-model":
        return _tiny_model(rest)
    if command == "plan":
        from pytest_llmperf.cli.plan import main as plan_main

        return plan_main(rest)
    if command == "compare":
        from pytest_llmperf.cli.compare import main as compare_main

        return compare_main(rest)
    if command == "history":
        from pytest_llmperf.cli.history import main as history_main

        return history_main(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
