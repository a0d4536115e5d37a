"""``python -m pytest_llmperf compare BASELINE CURRENT``: the comparator outside pytest, for CI
steps that compare two saved runs (nightly vs reference, image A vs image B).

Exit codes: 0 fine, 1 regression (with ``--strict`` also inconclusive or not comparable),
2 unusable input.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from pytest_llmperf.verdicts.baseline import BaselineError, compare, load
from pytest_llmperf.verdicts.compare import DEFAULT_TOLERANCE, Outcome, format_table
from pytest_llmperf.verdicts.fingerprint import FIELDS


class _UsageError(ValueError):
    pass


def _percent(text: str) -> float:
    raw = text.strip().removesuffix("%")
    try:
        value = float(raw)
    except ValueError:
        raise _UsageError(f"tolerance {text!r} is not a percentage (write 5 or 5%)") from None
    if not math.isfinite(value) or value < 0:
        raise _UsageError(f"tolerance {text!r} must be a percentage >= 0")
    return value / 100.0


def parse_tolerances(items: Sequence[str]) -> tuple[float, dict[str, float]]:
    """``["5", "p99_e2el_ms=10%"]`` -> default 0.05, ``{"p99_e2el_ms": 0.10}``."""
    default = DEFAULT_TOLERANCE
    per_metric: dict[str, float] = {}
    for item in items:
        name, sep, pct = item.partition("=")
        if not sep:
            default = _percent(item)
        elif not name.strip():
            raise _UsageError(f"--tolerance {item!r}: write METRIC=PCT, e.g. output_throughput=5")
        else:
            per_metric[name.strip()] = _percent(pct)
    return default, per_metric


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_llmperf compare",
        description="Compare two runs saved in the baseline format; print a verdict per case "
        "and metric (Welch's t-test on logs, Holm-corrected, with per-metric tolerances).",
    )
    parser.add_argument("baseline", help="baseline JSON file (e.g. baselines/<suite>-<id>.json)")
    parser.add_argument("current", help="the run to judge, saved in the same format")
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="[METRIC=]PCT",
        help=f"change that matters, in percent; bare PCT sets the default "
        f"({DEFAULT_TOLERANCE * 100:g}%%), METRIC=PCT one metric; repeatable",
    )
    parser.add_argument(
        "--ignore-field",
        action="append",
        default=[],
        metavar="FIELD",
        help="fingerprint field whose difference is acceptable (e.g. driver); repeatable",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="also exit 1 when a comparison is INCONCLUSIVE or NOT COMPARABLE",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    parser.add_argument(
        "--correction",
        choices=("holm", "bh"),
        default="holm",
        help="multiple-comparison correction: holm (gate, default) or bh (report)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        default, per_metric = parse_tolerances(args.tolerance)
        unknown = sorted(set(args.ignore_field) - set(FIELDS))
        if unknown:
            raise _UsageError(
                f"--ignore-field {', '.join(unknown)}: not a fingerprint field; "
                f"known fields: {', '.join(FIELDS)}"
            )
        if not 0.0 < args.alpha < 0.5:
            raise _UsageError(f"--alpha {args.alpha} must be between 0 and 0.5")
        baseline, current = load(args.baseline), load(args.current)
    except (_UsageError, BaselineError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    verdicts = compare(
        baseline,
        current,
        tolerances=per_metric,
        default_tolerance=default,
        ignore=args.ignore_field,
        alpha=args.alpha,
        correction=args.correction,
    )
    print(f"baseline: {args.baseline} ({baseline.source}, suite {baseline.suite})")
    print(f"current:  {args.current} (suite {current.suite})")
    print()
    print(format_table(verdicts))
    outcomes = {v.verdict for v in verdicts}
    if Outcome.REGRESSION in outcomes:
        return 1
    if args.strict and outcomes & {Outcome.INCONCLUSIVE, Outcome.NOT_COMPARABLE}:
        return 1
    return 0
