"""Rewrite (or ``--check``) the shipped ``report/report.schema.json`` from the records.

python -m pytest_llmperf.report.generate_schema          # rewrite it
python -m pytest_llmperf.report.generate_schema --check  # exit 1 if it is stale
"""

from __future__ import annotations

import sys

from pytest_llmperf.report.records import SCHEMA_FILE, schema_text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = schema_text()
    if args == ["--check"]:
        if SCHEMA_FILE.read_text(encoding="utf-8") == text:
            return 0
        print(
            f"{SCHEMA_FILE} is stale: regenerate it with "
            "`python -m pytest_llmperf.report.generate_schema`",
            file=sys.stderr,
        )
        return 1
    if args:
        print("usage: python -m pytest_llmperf.report.generate_schema [--check]", file=sys.stderr)
        return 2
    SCHEMA_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
