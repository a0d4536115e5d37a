"""``python -m pytest_llmperf history``: the stored nightly series and their change points.

    history [show]          table of cases and change points, PNG plots (default command)
    history import PATH...  add past results.json files, report folders or baseline files
    history prune           delete old sessions (--before DATE and/or --keep-last N)
    history check           verify the store is consistent

With no ``--store``, the store is the one the plugin writes: $LLMPERF_HISTORY_URL, else
``[history] store`` of the config in this folder, else ``llmperf-history.sqlite`` beside the
report folder (``./llmperf-history.sqlite`` for the default ``.llmperf``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "python -m pytest_llmperf history"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "command", nargs="?", default="show", choices=("show", "import", "prune", "check")
    )
    p.add_argument("paths", nargs="*", help="import: results.json files, report folders, baselines")
    _where_options(p)
    _show_options(p)
    _import_prune_options(p)
    return p


def _where_options(p: argparse.ArgumentParser) -> None:
    """Which store, config and report folder (every command)."""
    p.add_argument("--store", default=None, metavar="PATH|URL", help="history store (see above)")
    p.add_argument(
        "--config",
        default=None,
        metavar="PATH",
        help="perf config (default: ./llmperf.toml or pyproject.toml)",
    )
    p.add_argument(
        "--report-dir",
        default=None,
        metavar="DIR",
        help="report folder (default: the config's, .llmperf)",
    )


def _show_options(p: argparse.ArgumentParser) -> None:
    """``show``: which cases and metrics, the change-point test, the PNGs and JSON."""
    p.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="TEXT",
        help="only cases whose id contains TEXT (repeatable)",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME",
        help="metrics to analyse (default: the config's history metrics)",
    )
    p.add_argument(
        "--ignore-field",
        action="append",
        default=[],
        metavar="FIELD",
        help="fingerprint field a series may change (repeatable)",
    )
    p.add_argument(
        "--max-pvalue",
        type=float,
        default=None,
        metavar="P",
        help="change-point significance (default 0.001)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="where the PNGs go (default <report dir>/history)",
    )
    p.add_argument("--no-plots", action="store_true", help="print the table only")
    p.add_argument(
        "--json",
        default=None,
        metavar="FILE",
        help="also write the series and change points as JSON",
    )


def _import_prune_options(p: argparse.ArgumentParser) -> None:
    """``import``'s suite name and what ``prune`` deletes."""
    p.add_argument("--suite", default="default", help="import: suite name for results.json files")
    p.add_argument(
        "--before",
        default=None,
        metavar="DATE",
        help="prune: sessions started before this ISO date",
    )
    p.add_argument(
        "--keep-last",
        type=int,
        default=None,
        metavar="N",
        help="prune: keep only the newest N sessions",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="prune: say what would go, delete nothing"
    )


def _settings(args: argparse.Namespace) -> tuple[Any, Path, Path]:
    from pytest_llmperf.config import ConfigError, load_config

    root = Path.cwd()
    try:
        cfg = load_config(root, Path(args.config) if args.config else None)
    except ConfigError as exc:
        raise SystemExit(f"{PROG}: {exc}") from None
    report = Path(args.report_dir) if args.report_dir else cfg.report_dir
    report = report if report.is_absolute() else root / report
    from pytest_llmperf.history.session import history_settings

    return history_settings(cfg), root, report


def _files(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(p.glob("results.json")) + sorted(p.glob("*/results.json"))
            found += sorted(q for q in p.glob("*.json") if q.name != "results.json")
            if not found:
                raise SystemExit(f"{PROG}: {p} holds no results.json or baseline *.json to import")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"{PROG}: {p} does not exist; give results.json files or folders")
    return out


def _import(store: Any, paths: Sequence[str], suite: str) -> int:
    from pytest_llmperf.history.model import HistoryError, Redactor, from_baseline, from_results
    from pytest_llmperf.verdicts.baseline import BaselineError, load

    if not paths:
        raise SystemExit(f"{PROG} import: give results.json files, report folders or baselines")
    import os

    redactor = Redactor.from_environ(os.environ, [os.environ.get("LLMPERF_API_KEY")])
    bad = 0
    for path in _files(paths):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"skipped {path}: not readable JSON ({exc})", file=sys.stderr)
            bad += 1
            continue
        try:
            if isinstance(doc, dict) and "fingerprint" in doc and "suite" in doc:
                rec = from_baseline(load(path), source_path=str(path))
            elif isinstance(doc, dict) and "comparison" in path.name:
                continue
            else:
                rec = from_results(doc, source_path=str(path), suite=suite)
            done = store.record(rec.redacted(redactor))
        except (HistoryError, BaselineError) as exc:
            print(f"skipped {path}: {exc}", file=sys.stderr)
            bad += 1
            continue
        what = "imported as" if done.stored else "already stored as"
        print(f"{path}: {what} session #{done.session_id} ({rec.started}, {len(rec.cases)} cases)")
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    from pytest_llmperf.history.model import HistoryError, iso
    from pytest_llmperf.history.session import HISTORY_DIR, store_target
    from pytest_llmperf.history.store import HistoryStore

    settings, root, report = _settings(args)
    target = store_target(settings, root, report, args.store)
    try:
        store = HistoryStore(target, create=args.command == "import")
        with store:
            if args.command == "import":
                return _import(store, args.paths, args.suite)
            if args.command == "check":
                problems = store.verify()
                for line in problems:
                    print(line)
                n = len(store.sessions())
                print(
                    f"{store.display}: {n} sessions, "
                    + ("consistent" if not problems else f"{len(problems)} problem(s)")
                )
                return 1 if problems else 0
            if args.command == "prune":
                before = iso(args.before) if args.before else None
                ids = store.prune(before=before, keep_last=args.keep_last, dry_run=args.dry_run)
                verb = "would delete" if args.dry_run else "deleted"
                which = (": " + ", ".join(map(str, ids))) if ids else ""
                print(f"{store.display}: {verb} {len(ids)} session(s){which}")
                return 0
            return _show(store, args, settings, report / HISTORY_DIR)
    except HistoryError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


def _show(store: Any, args: argparse.Namespace, settings: Any, default_out: Path) -> int:
    from pytest_llmperf.history.changepoints import build_series
    from pytest_llmperf.history.view import analyse, as_json, table_lines, write_plots

    metrics = tuple(args.metric) or settings.metrics
    ignore = (*settings.ignore_fields, *args.ignore_field)
    try:
        series = build_series(
            store.values(metrics=metrics), store.fingerprints(), metrics=metrics, ignore=ignore
        )
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.case:
        series = [s for s in series if any(t in s.case_id for t in args.case)]
    p = args.max_pvalue if args.max_pvalue is not None else settings.max_pvalue
    results = analyse(series, max_pvalue=p)
    for line in table_lines(results, store=store.display, max_pvalue=p):
        print(line)
    if not args.no_plots and results:
        out = Path(args.out) if args.out else default_out
        paths = write_plots(results, out)
        print(f"plots: {len(paths)} PNG(s) in {out}")
    if args.json:
        from pytest_llmperf.core.atomic import write_json_atomic

        write_json_atomic(args.json, as_json(results))
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
