"""The comparator's words: the message of each kind of verdict, and the table of a session.

Pure string building from figures ``verdicts.compare`` has computed (no statistics here, no
I/O); ``verdicts.compare`` re-exports ``format_table``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_llmperf.verdicts.compare_records import EXACT_TARGET, MAX_RUNS, Outcome, Verdict


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal, ``n/a`` when unknown."""
    return "n/a" if x is None else f"{x * 100:.1f}%"


def change(ratio: float) -> str:
    """A ratio as a signed change, e.g. ``+3.0%``."""
    rounded = round((ratio - 1.0) * 100, 1)
    return f"{rounded + 0.0:+.1f}%"  # + 0.0 turns -0.0 into 0.0


def spread(cov_b: float | None, cov_c: float | None, n_b: int, n_c: int) -> str:
    """Both sides' coefficients of variation and run counts."""
    return f"CoV {pct(cov_b)} -> {pct(cov_c)}, n={n_b} vs {n_c}"


def ratio_head(metric: str, ratio: float) -> str:
    """The start of a ratio verdict's message (its parenthesis is closed by the caller)."""
    return f"{metric} {change(ratio)} (ratio {ratio:.3f}"


def exact_message(
    metric: str, failures: int, current: Sequence[float], baseline: Sequence[float]
) -> str:
    """An absolute check's message: every run must equal ``EXACT_TARGET``."""
    if not failures:
        return f"{metric} was {EXACT_TARGET:g} in all {len(current)} runs (absolute check)."
    text = (
        f"{metric} must be {EXACT_TARGET:g} in every run; it was not in "
        f"{failures} of {len(current)} runs (lowest {min(current):.4g})"
    )
    if any(v != EXACT_TARGET for v in baseline):
        text += "; the baseline had such runs too"
    return text + "."


def one_run_message(head: str, covs: str, tolerance: float, need: int | None) -> str:
    """One run on a side: judged by the tolerance alone, and how many runs a test needs."""
    text = (
        f"{head}), {covs}. Only one run on a side: no statistical test is possible, so this "
        f"is judged by the ±{pct(tolerance)} tolerance alone"
    )
    if need is not None:
        text += f"; about {need} runs per side would give a real test at ±{pct(tolerance)}"
    return text + "."


def tested_message(
    outcome: Outcome,
    *,
    figures: str,
    zero_variance: bool,
    tolerance: float,
    alpha: float,
    p_better_adj: float,
    detectable: float | None,
    need: int | None,
    fewest_runs: int,
) -> str:
    """A tested comparison's message: its ``figures`` (ratio, CI, p-values, spread), then what
    the outcome means and, when it is inconclusive, how far the data are from an answer."""
    tol = pct(tolerance)
    text = figures
    if zero_variance:
        text += " (identical values within each side: zero variance, the ratio is exact)"
    if outcome is Outcome.REGRESSION:
        text += f": worse than the ±{tol} tolerance and significant at alpha={alpha:g}"
    elif outcome is Outcome.IMPROVEMENT:
        text += (
            f": better by more than ±{tol}, significant at alpha={alpha:g} "
            f"(p_adj={p_better_adj:.3g})"
        )
    elif outcome is Outcome.NO_CHANGE:
        text += f": the whole CI lies inside ±{tol}"
    else:
        text += f": cannot tell whether it changed by more than ±{tol}"
        if detectable is not None and detectable > tolerance:
            text += (
                "; at this n and CoV the smallest change detectable with 80% power is "
                f"{pct(detectable)}"
            )
        if need is not None and need > fewest_runs:
            text += f"; about {need} runs per side would detect ±{tol}"
        elif need is None:
            text += f"; even {MAX_RUNS} runs per side would not detect ±{tol}"
    return text + "."


def _fmt_p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def _table_rows(verdicts: Sequence[Verdict], bh: Sequence[Verdict] | None) -> list[tuple[str, ...]]:
    p_bh = {(v.case_id, v.metric): v.p_adj for v in bh or ()}
    header: tuple[str, ...] = ("case", "metric", "verdict", "change", "CI", "p", "p_adj")
    if bh is not None:
        header += ("p_BH",)
    header += ("CoV base/cur", "n")
    rows = [header]
    for v in verdicts:
        ci = "-"
        if v.ci_low is not None and v.ci_high is not None:
            ci = f"[{change(v.ci_low)}, {change(v.ci_high)}]"
        row: tuple[str, ...] = (
            v.case_id,
            v.metric,
            str(v.verdict),
            "-" if v.ratio is None else change(v.ratio),
            ci,
            _fmt_p(v.p),
            _fmt_p(v.p_adj),
        )
        if bh is not None:
            row += (_fmt_p(p_bh.get((v.case_id, v.metric))),)
        row += (f"{pct(v.cov_baseline)}/{pct(v.cov_current)}", f"{v.n_baseline}/{v.n_current}")
        rows.append(row)
    return rows


def _notes(verdicts: Sequence[Verdict]) -> list[str]:
    """One line per distinct message: a changed fingerprint is said once, not once per metric."""
    notes: dict[tuple[Outcome, str], list[Verdict]] = {}
    for v in verdicts:
        if v.verdict is not Outcome.NO_CHANGE:
            notes.setdefault((v.verdict, v.message), []).append(v)
    lines = [""] if notes else []
    for (outcome, message), group in notes.items():
        cases = list(dict.fromkeys(v.case_id for v in group))
        if len(group) == 1:
            lines.append(f"{outcome}: {group[0].case_id} {message}")
        else:
            shown = ", ".join(cases[:3]) + (f" and {len(cases) - 3} more" if len(cases) > 3 else "")
            lines.append(f"{outcome} ({len(group)} comparisons; {shown}): {message}")
    return lines


def format_table(verdicts: Sequence[Verdict], *, bh: Sequence[Verdict] | None = None) -> str:
    """A fixed-width table, then the message of every verdict that asks for attention.
    ``bh``: the same comparisons corrected with Benjamini-Hochberg, shown as a p_BH column
    (the false discovery rate view for reports; the verdicts stay the gate's)."""
    rows = _table_rows(verdicts, bh)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += _notes(verdicts)
    counts = {o: sum(v.verdict is o for v in verdicts) for o in Outcome}
    lines.append("")
    lines.append(", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no comparisons")
    return "\n".join(lines)
