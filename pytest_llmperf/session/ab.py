"""A/B upgrade validation: two server configurations measured in one session, interleaved.

A and B are two ``ModelSpec`` variants of one model: two launch prefixes (vLLM installs or
images), two flag sets, or two environments (AITER on vs off, the study's ablation). Both
servers stay up and the runs alternate in blocks (one run of A and one of B, the same fresh
prompts, back to back; the order alternates A B, B A, …), so slow drift of the machine
(thermal state, other tenants) hits both sides alike instead of looking like a version effect.
With ``blocks="fresh"`` every block gets freshly started servers (a server's warm state is
part of what an upgrade changes).

A run the load generator flags as client-bound (beyond the shared-core scheduling noise the
engine forgives) or whose token counts disagree measured the client, not the server: its
block is excluded from the verdict, reported, and replaced by an extra block while the
budget lasts. The verdict is the paired test over blocks (``verdicts.paired``), Holm across
levels x metrics; A's own runs are checked for drift over the session.

``ab_order`` and ``ab_report`` are pure (``session.ab_plan``, re-exported here); ``run_ab``
does the I/O through an engine (anything with ``server_for(spec)``, normally
``session.engine.PerfEngine``) and ``session.measure.send_run``.

Size (about 780 lines), stated: after moving the pure half out, what remains is the I/O of one
A/B session — ``run_ab`` checks its arguments, ``_ABBlocks`` measures (both servers, the block
loop, exclusions and replacements, identity checks), ``_ab_result`` judges — and its config
entry (``run_configured``). One run is ``session.measure.send_run``, the step the engine's
cases send too, and whether it counts is ``session.measure.run_validity``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, cast

from pytest_llmperf.core.probe import served_version
from pytest_llmperf.session.ab_plan import (
    AB_METRICS,
    BLOCK_MODES,
    DRIFT_METRICS,
    ABStep,
    BlockMode,
    ProgressFn,
    RunMetrics,
    Variant,
    _values,
    ab_order,
    ab_report,
    block_order,
    case_label,
)
from pytest_llmperf.session.measure import run_validity, send_run
from pytest_llmperf.verdicts.compare import (
    DEFAULT_TOLERANCE,
    Outcome,
    Verdict,
)
from pytest_llmperf.verdicts.paired import Drift, drift

# ----------------------------------------------------------------------------- running (I/O)


class EngineLike(Protocol):
    """What ``run_ab`` needs of the engine: a ready server (handle with ``.endpoint``).
    Optional: ``client_limits()``, ``shares_cores_with_server()``, ``release(spec)`` (fresh
    blocks), ``resolve(spec)`` (the launch plan, for the identity record)."""

    def server_for(self, spec: Any) -> Any: ...


class ABRefused(AssertionError):
    """The two variants are not an A/B pair of what the user declared (or a run is unusable)."""


@dataclass(frozen=True)
class ExcludedRun:
    """A run left out of the verdict, and why. Its block partner is left out with it."""

    variant: Variant
    level: int
    block: int
    reasons: tuple[str, ...]

    def describe(self, label: str) -> str:
        return f"{label} ({self.variant}) c={self.level} block {self.block + 1}: " + "; ".join(
            self.reasons
        )


@dataclass(frozen=True)
class ABResult:
    """What an A/B run measured and concluded. ``a_runs``/``b_runs`` hold the valid blocks
    (index i of both is block i), ``excluded`` the runs left out, ``drift`` A's own trend,
    ``differences`` what the two variants' specs change, ``identity`` what actually served."""

    name: str
    label_a: str
    label_b: str
    order: tuple[ABStep, ...]
    a_runs: Mapping[int, tuple[RunMetrics, ...]] = field(hash=False)
    b_runs: Mapping[int, tuple[RunMetrics, ...]] = field(hash=False)
    verdicts: tuple[Verdict, ...]
    table: str
    differences: Mapping[str, tuple[Any, Any]] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()
    excluded: tuple[ExcludedRun, ...] = ()
    drift: tuple[Drift, ...] = ()
    identity: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    blocks: BlockMode = "interleaved"
    blocks_wanted: int = 0

    @property
    def regressed(self) -> bool:
        return any(v.verdict is Outcome.REGRESSION for v in self.verdicts)

    @property
    def inconclusive(self) -> bool:
        return any(v.verdict is Outcome.INCONCLUSIVE for v in self.verdicts)

    def too_few(self) -> dict[int, int]:
        """Levels that ended with fewer valid blocks than asked for -> how many they have."""
        return {
            lv: len(self.a_runs.get(lv, ()))
            for lv in sorted({s.level for s in self.order})
            if len(self.a_runs.get(lv, ())) < self.blocks_wanted
        }

    def verdict(self, metric: str, level: int) -> Verdict:
        key = (case_label(self.name, level), metric)
        for v in self.verdicts:
            if (v.case_id, v.metric) == key:
                return v
        raise KeyError(f"no verdict for {metric} at c={level}")

    def to_json(self) -> dict[str, Any]:
        """The ab.json record of this comparison (``report.ab_records.ABComparison``, one
        verdict per case and metric) as plain JSON values."""
        import msgspec

        from pytest_llmperf.report import ab_records as rec

        levels = sorted({s.level for s in self.order})
        record = rec.ABComparison(
            name=self.name,
            a=self.label_a,
            b=self.label_b,
            blocks=self.blocks,
            blocks_wanted=self.blocks_wanted,
            levels=levels,
            order=[rec.ABStepRecord(*s) for s in self.order],
            verdicts=list(self.verdicts),
            excluded=[rec.ABExcludedRun(**dataclasses.asdict(e)) for e in self.excluded],
            too_few_valid_blocks={str(k): v for k, v in self.too_few().items()},
            drift=list(self.drift),
            differences={k: [_plain(a), _plain(b)] for k, (a, b) in self.differences.items()},
            identity={k: rec.ABIdentity(**v) for k, v in self.identity.items()},
            runs=rec.ABRuns(
                a={str(lv): [dict(r) for r in self.a_runs.get(lv, ())] for lv in levels},
                b={str(lv): [dict(r) for r in self.b_runs.get(lv, ())] for lv in levels},
            ),
            notes=list(self.notes),
        )
        return cast("dict[str, Any]", msgspec.to_builtins(record))


def _plain(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return [_plain(v) for v in x]
    return x


SPEC_FIELDS: Final[tuple[str, ...]] = (
    "launch_prefix",
    "extra_args",
    "env",
    "max_num_seqs",
    "vllm_version",
    "launcher",
    "gpus",
    "nodes",
    "platform",
)


def spec_differences(a: Any, b: Any) -> dict[str, tuple[Any, Any]]:
    """What the two variants change, among the launch fields of ``config.ModelSpec``."""
    out: dict[str, tuple[Any, Any]] = {}
    for f in SPEC_FIELDS:
        va, vb = getattr(a, f, None), getattr(b, f, None)
        if f == "env":
            va, vb = dict(va or {}), dict(vb or {})
        if va != vb:
            out[f] = (va, vb)
    return out


def block_seed(level: int, block: int, base: int = 0) -> int:
    """The workload seed of a block: A and B of one block get the same prompts, other blocks
    (and other levels) fresh ones, so vLLM's prefix cache cannot serve a block from an earlier
    one."""
    return base * 1_000_003 + level * 10_007 + block + 1


def _handle_server(handle: Any) -> Any:
    """The ``VLLMServer`` behind a handle (an engine handle, or a server used as its own)."""
    server = getattr(handle, "server", None)
    if server is not None:
        return server
    return handle if hasattr(handle, "spec") else None


def identity_of(handle: Any, spec: Any, declared: str | None = None) -> dict[str, Any]:
    """What actually served a variant: the version the server reports, its launch command and
    environment (never an API key: it is not in either), the model it loaded."""
    server = _handle_server(handle)
    out: dict[str, Any] = {
        "declared_vllm": declared or getattr(spec, "vllm_version", None),
        "served_vllm": served_version(handle.endpoint),
        "endpoint": handle.endpoint.base_url,
    }
    if server is not None:
        sspec = server.spec
        out["model"] = str(sspec.model)
        out["launcher"] = list(sspec.launcher)
        out["argv"] = list(sspec.args)
        out["env"] = {k: v for k, v in sspec.env if k != "VLLM_CACHE_ROOT"}
    return out


#: Launch flags that name or place a server rather than change how it serves.
_NAMING_FLAGS: Final[frozenset[str]] = frozenset({"--served-model-name", "--host", "--port"})


def _options(argv: Sequence[str]) -> dict[str, str]:
    """``--flag value`` pairs of a vLLM argv (a flag without a value maps to "")."""
    out: dict[str, str] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--"):
            key, eq, val = tok.partition("=")
            if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                val = argv[i + 1]
                i += 1
            out[key] = val
        i += 1
    return out


def undeclared_differences(
    id_a: Mapping[str, Any], id_b: Mapping[str, Any], spec_a: Any, spec_b: Any
) -> list[str]:
    """What differs between what served A and what served B that neither variant declared:
    another model (revision), GPU count or flag not in either's ``extra_args``, an environment
    variable not in either's ``env``, another launcher or vLLM version without a declared
    launcher or version change. Pure."""
    declared = spec_differences(spec_a, spec_b)
    problems: list[str] = []
    if id_a.get("model") != id_b.get("model"):
        problems.append(f"model {id_a.get('model')!r} vs {id_b.get('model')!r}")
    if id_a.get("launcher") != id_b.get("launcher") and "launch_prefix" not in declared:
        problems.append(f"launcher {id_a.get('launcher')} vs {id_b.get('launcher')}")
    if id_a.get("declared_vllm") != id_b.get("declared_vllm"):
        declared["vllm_version"] = (id_a.get("declared_vllm"), id_b.get("declared_vllm"))
    version_declared = "vllm_version" in declared or "launch_prefix" in declared
    va, vb = id_a.get("served_vllm"), id_b.get("served_vllm")
    if va and vb and va != vb and not version_declared:
        problems.append(f"vLLM version {va} vs {vb} (the servers' /version)")
    for ident, side in ((id_a, "A"), (id_b, "B")):
        want, got = ident.get("declared_vllm"), ident.get("served_vllm")
        if want and got and got.split("+")[0] != want:
            problems.append(f"{side} declares vLLM {want} but its server reports {got}")
    flags = {
        t.partition("=")[0]
        for s in (spec_a, spec_b)
        for t in getattr(s, "extra_args", ())
        if t.startswith("--")
    }
    if "max_num_seqs" in declared:
        flags.add("--max-num-seqs")
    oa, ob = _options(id_a.get("argv", ())), _options(id_b.get("argv", ()))
    for key in sorted((set(oa) | set(ob)) - _NAMING_FLAGS):
        if oa.get(key) != ob.get(key) and key not in flags and "vllm_version" not in declared:
            problems.append(f"launch flag {key} {oa.get(key)!r} vs {ob.get(key)!r}")
    env_keys = set(dict(getattr(spec_a, "env", {}) or {})) | set(
        dict(getattr(spec_b, "env", {}) or {})
    )
    ea, eb = dict(id_a.get("env", {})), dict(id_b.get("env", {}))
    for key in sorted(set(ea) | set(eb)):
        if ea.get(key) != eb.get(key) and key not in env_keys and "vllm_version" not in declared:
            problems.append(f"environment {key} {ea.get(key)!r} vs {eb.get(key)!r}")
    return problems


def _exclusion_notes(excluded: Sequence[ExcludedRun], labels: Mapping[str, str]) -> list[str]:
    return [f"excluded: {e.describe(labels[e.variant])}" for e in excluded]


def run_ab(
    engine: EngineLike,
    case: Any,
    variant_a: Any,
    variant_b: Any,
    runs: int,
    *,
    levels: Sequence[int] | None = None,
    requests: int | None = None,
    balanced: bool = True,
    metrics: Sequence[str] = AB_METRICS,
    tolerances: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    records_dir: Path | None = None,
    progress: ProgressFn | None = None,
    blocks: BlockMode = "interleaved",
    extra_blocks: int | None = None,
    seed: int = 0,
    check_identity: bool = True,
    declared_versions: Mapping[str, str | None] | None = None,
    requests_for: Callable[[int], int] | None = None,
) -> ABResult:
    """Measure ``case`` (a ``config.PerfCase``: workload, concurrency, requests, warm-up) on
    ``variant_a`` and ``variant_b`` (``config.ModelSpec``s of one model with other launch
    prefixes, flags, environments or vLLM versions) in blocks; compare B with A by block.

    ``runs`` valid blocks are wanted per level; an invalid block (client-bound, token counts
    disagreeing) is excluded, reported and replaced, at most ``extra_blocks`` times per level
    (default ``runs``); a level left short says so (``ABResult.too_few()``), with under two
    blocks its verdicts are INCONCLUSIVE. ``blocks`` (docs/upgrade-validation.md, "What runs"):
    "interleaved" (both servers up throughout, per level A B, B A, …) or "fresh" (both started
    afresh, by the engine's ``release``, for every block, which runs every level once). Every
    run first sends the case's warm-up requests (unmeasured); A and B of a block send the same
    prompts (``block_seed``). ``levels`` default to the case's concurrency, ``requests`` to
    ``max(case.requests, level)`` (or ``requests_for(level)``). ``declared_versions`` ("A"/"B"
    -> the vLLM version the user says each runs) are checked against the servers' /version;
    ``check_identity`` refuses, before measuring, servers that differ in what neither variant
    declared (``undeclared_differences``); a server that dies raises ``server.ServerError``."""
    want = _check_ab_arguments(
        engine, case, variant_a, variant_b, runs, levels=levels, balanced=balanced, blocks=blocks
    )
    budget = _extra_block_budget(engine, runs, extra_blocks, blocks)
    session = _ABBlocks(
        engine,
        case,
        {"A": variant_a, "B": variant_b},
        want=want,
        wanted=runs,
        budget=budget,
        balanced=balanced,
        requests=requests,
        requests_for=requests_for,
        records_dir=records_dir,
        progress=progress,
        seed=seed,
        check_identity=check_identity,
        declared_versions=declared_versions,
    )
    session.run(blocks)
    return _ab_result(session, metrics=metrics, tolerances=tolerances, alpha=alpha, blocks=blocks)


def _check_ab_arguments(
    engine: EngineLike,
    case: Any,
    variant_a: Any,
    variant_b: Any,
    runs: int,
    *,
    levels: Sequence[int] | None,
    balanced: bool,
    blocks: BlockMode,
) -> tuple[int, ...]:
    """``run_ab``'s arguments checked before anything starts; the levels to measure."""
    if variant_a.name == variant_b.name:
        raise ValueError(
            f"both variants are named {variant_a.name!r}; give them different names (e.g. "
            f"'{variant_a.name}-a', '{variant_a.name}-b'): the engine caches launch plans and "
            "servers per model name"
        )
    if blocks not in BLOCK_MODES:
        raise ValueError(f"blocks={blocks!r} must be one of {', '.join(BLOCK_MODES)}")
    want = tuple(levels) if levels is not None else (int(case.concurrency),)
    ab_order(want, runs, balanced=balanced)  # validates levels and runs
    return want


def _extra_block_budget(
    engine: EngineLike, runs: int, extra_blocks: int | None, blocks: BlockMode
) -> int:
    """How many blocks per level may be measured in place of excluded ones (default ``runs``),
    checked, with the engine checked able to restart servers for ``blocks="fresh"``."""
    budget = runs if extra_blocks is None else int(extra_blocks)
    if budget < 0:
        raise ValueError(f"extra_blocks={budget} must be >= 0")
    if blocks == "fresh" and not callable(getattr(engine, "release", None)):
        raise ValueError("blocks='fresh' needs an engine that can release (restart) servers")
    return budget


class _ABBlocks:
    """One A/B session's measuring: both servers, the blocks in order, which runs were valid
    and which were excluded (``run_ab`` builds the result from them)."""

    def __init__(
        self,
        engine: EngineLike,
        case: Any,
        specs: dict[Variant, Any],
        *,
        want: tuple[int, ...],
        wanted: int,
        budget: int,
        balanced: bool,
        requests: int | None,
        requests_for: Callable[[int], int] | None,
        records_dir: Path | None,
        progress: ProgressFn | None,
        seed: int,
        check_identity: bool,
        declared_versions: Mapping[str, str | None] | None,
    ) -> None:
        from pytest_llmperf.loadgen.run import HealthThresholds
        from pytest_llmperf.session.engine import to_load_workload

        self.engine, self.case, self.specs = engine, case, specs
        self.labels: dict[Variant, str] = {"A": specs["A"].name, "B": specs["B"].name}
        self.want, self.wanted, self.budget, self.balanced = want, wanted, budget, balanced
        self.requests, self.requests_for = requests, requests_for
        self.records_dir, self.progress, self.seed = records_dir, progress, seed
        limits = getattr(engine, "client_limits", None)
        self.thresholds = HealthThresholds(**limits()) if callable(limits) else HealthThresholds()
        self.timeout = float(getattr(getattr(engine, "options", None), "request_timeout", 600.0))
        self.base_workload = to_load_workload(case.workload)
        self.name = str(getattr(case.workload, "name", ""))
        self.handles: dict[Variant, Any] = {}
        self.identity: dict[str, dict[str, Any]] = {}
        self.order: list[ABStep] = []
        self.valid: dict[Variant, dict[int, list[RunMetrics]]] = {"A": {}, "B": {}}
        self.a_times: dict[int, list[float]] = {}
        self.excluded: list[ExcludedRun] = []
        self.attempts: dict[int, int] = dict.fromkeys(want, 0)
        self.steps = 0
        self.check_identity = check_identity
        self.declared_versions = dict(declared_versions or {})

    def start(self, variant: Variant) -> Any:
        self.handles[variant] = handle = self.engine.server_for(self.specs[variant])
        return handle

    def check_pair(self) -> None:
        """Record both servers' identities; unless told not to, refuse a pair that differs in
        something neither variant declared."""
        versions = self.declared_versions
        ids = {v: identity_of(self.handles[v], self.specs[v], versions.get(v)) for v in "AB"}
        self.identity.update({self.labels[v]: ids[v] for v in ("A", "B")})  # type: ignore[index]
        if not self.check_identity:
            return
        a, b = self.specs["A"], self.specs["B"]
        problems = undeclared_differences(ids["A"], ids["B"], a, b)
        if problems:
            raise ABRefused(
                f"{self.labels['A']} and {self.labels['B']} are not an A/B pair of what was "
                "declared: "
                + "; ".join(problems)
                + ". Declare the difference in the variant (extra_args, env, launch_prefix/"
                "venv, vllm) or make the servers the same."
            )

    def measure(
        self, variant: Variant, level: int, block: int
    ) -> tuple[RunMetrics, tuple[str, ...]]:
        """One run of ``variant`` at ``level``: its metrics and why it is invalid (if it is)."""
        from pytest_llmperf.loadgen.run import LoadSpec

        handle = self.handles[variant]
        check = getattr(handle, "check_alive", None)
        if callable(check):
            check()
        asked = (
            self.requests_for(level) if self.requests_for else self.requests or self.case.requests
        )
        spec = LoadSpec(
            mode="closed",
            concurrency=level,
            num_requests=max(int(asked), level),
            # every run: the other variant's run left this server idle (as the engine does)
            warmup_requests=int(self.case.warmup_requests),
            timeout_s=self.timeout,
            seed=block,
        )
        self.steps += 1
        self.order.append(ABStep(variant, level, block))
        if self.progress is not None:
            label = self.labels[variant]
            self.progress(f"A/B step {self.steps}: {label} ({variant}) c={level} block {block + 1}")
        records = None
        if self.records_dir is not None:
            name = f"ab-{self.labels[variant]}-c{level}-block{block + 1}.jsonl"
            records = self.records_dir / name
        workload = dataclasses.replace(self.base_workload, seed=block_seed(level, block, self.seed))
        client_cpus = getattr(self.engine, "client_cpus", None)  # an engine-like may lack it
        result = send_run(
            handle.endpoint,
            workload,
            spec,
            client_cpus=client_cpus(handle) if callable(client_cpus) else None,
            records_path=records,
            thresholds=self.thresholds,
        )
        return result.summary.metrics(), run_validity(result, self.engine, self.thresholds)

    def run_block(self, level: int, block: int) -> None:
        """A and B once each at ``level`` (in the block's order); both excluded if either is
        invalid."""
        got: dict[Variant, tuple[RunMetrics, tuple[str, ...]]] = {}
        for variant in block_order(block, self.balanced):
            got[variant] = self.measure(variant, level, block)
            if variant == "A":
                self.a_times.setdefault(level, []).append(float(self.steps))
        bad = [v for v in ("A", "B") if got[v][1]]  # type: ignore[index]
        for v in bad:
            self.excluded.append(ExcludedRun(v, level, block, got[v][1]))  # type: ignore[arg-type,index]
        if bad:
            self.a_times[level].pop()
            return
        for v in ("A", "B"):
            self.valid[v].setdefault(level, []).append(got[v][0])  # type: ignore[index]

    def needs_more(self, level: int) -> bool:
        return (
            len(self.valid["A"].get(level, ())) < self.wanted
            and self.attempts[level] < self.wanted + self.budget
        )

    def _next_block(self, level: int) -> None:
        self.run_block(level, self.attempts[level])
        self.attempts[level] += 1

    def run(self, blocks: BlockMode) -> None:
        """Measure every block in ``blocks`` mode (``"interleaved"`` or ``"fresh"``)."""
        if blocks == "interleaved":
            self.run_interleaved()
        else:
            self.run_fresh()

    def run_interleaved(self) -> None:
        """Both servers up for the whole session; per level, blocks until enough are valid."""
        for v in ("A", "B"):
            self.start(v)  # type: ignore[arg-type]
        self.check_pair()
        for level in self.want:
            while self.needs_more(level):
                self._next_block(level)

    def run_fresh(self) -> None:
        """Both servers started afresh for every block, which runs every level once."""
        release = getattr(self.engine, "release", None)
        block = 0
        while any(self.needs_more(lv) for lv in self.want):
            for v in block_order(block, self.balanced):
                self.start(v)
            if block == 0:
                self.check_pair()
            for level in self.want:
                if self.needs_more(level):
                    self._next_block(level)
            for v in ("A", "B"):
                assert release is not None
                release(self.specs[v])  # type: ignore[index]
            block += 1


def _ab_result(
    s: _ABBlocks,
    *,
    metrics: Sequence[str],
    tolerances: Mapping[str, float] | None,
    alpha: float,
    blocks: BlockMode,
) -> ABResult:
    """The verdicts, A's drift, the notes and the table of a measured A/B session."""
    a_runs = {lv: tuple(s.valid["A"].get(lv, ())) for lv in s.want}
    b_runs = {lv: tuple(s.valid["B"].get(lv, ())) for lv in s.want}
    variant_a, variant_b = s.specs["A"], s.specs["B"]
    verdicts, table = ab_report(
        a_runs,
        b_runs,
        metrics=metrics,
        tolerances=tolerances,
        alpha=alpha,
        name=s.name,
        label_a=variant_a.name,
        label_b=variant_b.name,
    )
    drifts = _drifts(s, a_runs, metrics, dict(tolerances or {}), alpha)
    notes = _exclusion_notes(s.excluded, s.labels)
    for lv in s.want:
        n_valid, runs = len(a_runs[lv]), s.wanted
        if n_valid < runs:
            notes.append(
                f"c={lv}: only {n_valid} of {runs} blocks valid after {s.attempts[lv]} measured "
                f"({runs + s.budget} allowed); the verdicts there rest on {n_valid} blocks"
                + (": too few for a test, INCONCLUSIVE" if n_valid < 2 else "")
            )
    diffs = spec_differences(variant_a, variant_b)
    if diffs:
        table += "\n\nB differs from A in: " + "; ".join(
            f"{k} {a!r} -> {b!r}" for k, (a, b) in diffs.items()
        )
    if drifts:
        table += "\n\ndrift of A over the session:\n" + "\n".join(
            f"  {d.case_id} {d.message}" for d in drifts
        )
    if notes:
        table += "\n" + "\n".join(f"note: {n}" for n in notes)
    return ABResult(
        name=s.name,
        label_a=variant_a.name,
        label_b=variant_b.name,
        order=tuple(s.order),
        a_runs=a_runs,
        b_runs=b_runs,
        verdicts=tuple(verdicts),
        table=table,
        differences=diffs,
        notes=tuple(notes),
        excluded=tuple(s.excluded),
        drift=drifts,
        identity=s.identity,
        blocks=blocks,
        blocks_wanted=s.wanted,
    )


def _drifts(
    s: _ABBlocks,
    a_runs: Mapping[int, tuple[RunMetrics, ...]],
    metrics: Sequence[str],
    tol: Mapping[str, float],
    alpha: float,
) -> tuple[Drift, ...]:
    """A's own runs over the session, per level and drift metric (where every run has it)."""
    return tuple(
        drift(
            case_label(s.name, lv),
            m,
            s.a_times.get(lv, []),
            _values(a_runs[lv], m),
            tolerance=tol.get(m, DEFAULT_TOLERANCE),
            alpha=alpha,
        )
        for lv in s.want
        for m in DRIFT_METRICS
        if m in metrics and len(_values(a_runs[lv], m)) == len(s.a_times.get(lv, [])) > 0
    )


# ----------------------------------------------------------------------------- from the config


def ab_case_id(ab: Any, workload: str) -> str:
    """The test id of a configured A/B: ``<model>-<workload>:<a>-vs-<b>``."""
    return f"{ab.model}-{workload}:{ab.a}-vs-{ab.b}"


def configured_case(engine: Any, ab: Any) -> Any:
    """The ``PerfCase`` an ``[ab]`` section measures: its model (the base of both variants),
    its workload (default: the model's first), its first level."""
    from pytest_llmperf.config import PerfCase

    config = engine.config
    model = config.model(ab.model)
    workloads = config.workloads_for(model)
    workload = config.workload(ab.workload) if ab.workload else workloads[0]
    levels = ab.levels or model.concurrency or config.concurrency
    level = levels[0]
    return PerfCase(
        model=model,
        workload=workload,
        concurrency=level,
        requests=ab.requests or config.requests_for(level),
        runs=ab.runs,
        warmup_requests=config.warmup_requests,
        gates=config.gates_for(model.name, workload.name, level),
    )


def run_configured(
    engine: Any,
    ab: Any,
    *,
    progress: ProgressFn | None = None,
    blocks: BlockMode | None = None,
) -> ABResult:
    """Run an ``[ab]`` section (``config.ab.ABConfig``) through the session's engine, record
    it (``engine.record_ab``: ab.json is rewritten after every comparison), and stop both
    servers afterwards."""
    case = configured_case(engine, ab)
    spec_a, spec_b = ab.pair(case.model)
    config = engine.config
    levels = ab.levels or case.model.concurrency or config.concurrency
    for spec in (spec_a, spec_b):
        expect = getattr(engine, "expect", None)
        if callable(expect):
            expect(dataclasses.replace(case, model=spec))
    try:
        result = run_ab(
            engine,
            case,
            spec_a,
            spec_b,
            ab.runs,
            levels=levels,
            requests_for=(lambda lv: ab.requests) if ab.requests else config.requests_for,
            metrics=ab.metrics,
            tolerances=ab.tolerance_for(),
            alpha=ab.alpha,
            records_dir=engine.report_dir / "records",
            progress=progress,
            blocks=blocks or ab.blocks,  # type: ignore[arg-type]
            extra_blocks=ab.extra_blocks,
            declared_versions={"A": ab.declared_version(ab.a), "B": ab.declared_version(ab.b)},
        )
    finally:
        release = getattr(engine, "release", None)
        if callable(release):
            release(spec_a)
            release(spec_b)
    record = getattr(engine, "record_ab", None)
    if callable(record):
        record(result)
    return result


def failure_message(result: ABResult, *, strict: bool = False) -> str | None:
    """Why the A/B test item fails (None: it passes): a REGRESSION; a level with no test at
    all (fewer than two valid blocks); under ``strict`` also INCONCLUSIVE or fewer valid
    blocks than asked for."""
    reasons: list[str] = []
    bad = [v for v in result.verdicts if v.verdict is Outcome.REGRESSION]
    if bad:
        reasons.append(
            f"{len(bad)} REGRESSION(s) of {result.label_b} (B) against {result.label_a} (A): "
            + ", ".join(f"{v.case_id} {v.metric}" for v in bad)
        )
    few = result.too_few()
    hopeless = {lv: n for lv, n in few.items() if n < 2}
    if hopeless:
        reasons.append(
            "no paired test was possible at "
            + ", ".join(f"c={lv} ({n} valid blocks)" for lv, n in hopeless.items())
            + ": too many runs were invalid (see the excluded runs)"
        )
    if strict:
        unsure = [v for v in result.verdicts if v.verdict is Outcome.INCONCLUSIVE]
        if unsure:
            reasons.append(
                f"{len(unsure)} INCONCLUSIVE comparison(s) under --llmperf-strict: "
                + ", ".join(f"{v.case_id} {v.metric}" for v in unsure)
            )
        rest = {lv: n for lv, n in few.items() if lv not in hopeless}
        if rest:
            reasons.append(
                "fewer valid blocks than asked for at "
                + ", ".join(f"c={lv} ({n} of {result.blocks_wanted})" for lv, n in rest.items())
            )
    if not reasons:
        return None
    return "A/B " + "; ".join(reasons) + "\n" + result.table
