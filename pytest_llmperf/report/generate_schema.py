"""Rewrite (or ``--check``) the shipped JSON Schemas from the records they describe:
``report/report.schema.json`` (``report.records``, results.json),
``verdicts/baseline.schema.json`` (``verdicts.baseline_records``, baselines/*.json) and
``report/ab.schema.json`` (``report.ab_records``, ab.json).

python -m pytest_llmperf.report.generate_schema          # rewrite them
python -m pytest_llmperf.report.generate_schema --check  # exit 1 if one is stale
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from pytest_llmperf.report import ab_records
from pytest_llmperf.report.records import SCHEMA_FILE, schema_text
from pytest_llmperf.verdicts import baseline_records

BASELINE_SCHEMA_FILE = baseline_records.SCHEMA_FILE
AB_SCHEMA_FILE = ab_records.AB_SCHEMA_FILE


def _schemas() -> list[tuple[Path, Callable[[], str]]]:
    """Looked up at call time, so a test can point a file elsewhere."""
    return [
        (SCHEMA_FILE, schema_text),
        (BASELINE_SCHEMA_FILE, baseline_records.schema_text),
        (AB_SCHEMA_FILE, ab_records.schema_text),
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        stale = [p for p, text in _schemas() if p.read_text(encoding="utf-8") != text()]
        for path in stale:
            print(
                f"{path} is stale: regenerate it with "
                "`python -m pytest_llmperf.report.generate_schema`",
                file=sys.stderr,
            )
        return 1 if stale else 0
    if args:
        print("usage: python -m pytest_llmperf.report.generate_schema [--check]", file=sys.stderr)
        return 2
    for path, text in _schemas():
        path.write_text(text(), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
