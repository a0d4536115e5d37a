"""Parsing: a config document (a dict) into a ``PerfConfig``. Pure: no files.

Size (about 670 lines), stated: one parser per top-level section of the main config (workloads,
launchers, models, gates, client) plus ``parse_config`` (its models, workloads, run settings and
section steps, each under 60 lines) and the cross-reference check; the other sections already
have their own modules (``config.load``, ``config.workload_keys``, ``config.ab``,
``config.baseline``, ``config.history``, ``config.guardrails``, ``config.suite_floor``), and the
shared typed readers are in ``config.validate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from pytest_llmperf.config.baseline import parse_baseline
from pytest_llmperf.config.defaults import DEFAULT_GATES, DEFAULT_MODELS, DEFAULT_WORKLOADS
from pytest_llmperf.config.load import parse_sections
from pytest_llmperf.config.records import (
    _SELECTOR_KEYS,
    CLIENT_KEYS,
    GATE_KEYS,
    PRESETS,
    ClientLimits,
    GateRule,
    ModelSpec,
    PerfConfig,
    WorkloadRef,
    _can_serve,
)
from pytest_llmperf.config.validate import (
    KeyPath,
    _choice,
    _env_table,
    _int,
    _kind,
    _levels,
    _list,
    _multiplier,
    _name,
    _number,
    _put_int,
    _str,
    _str_list,
    _table,
)
from pytest_llmperf.config.vocab import (
    _MAX_CONCURRENCY,
    _MAX_IMAGES,
    _MAX_REQUESTS,
    _MAX_RUNS,
    _MAX_TOKENS,
    ENDPOINTS,
    STUDY_PROFILES,
    TINY_ARCHS,
)
from pytest_llmperf.config.workload_keys import WORKLOAD_EXTRA_KEYS, parse_workload_extras
from pytest_llmperf.core.cpu_layout import CpuLayoutError, validate_setting
from pytest_llmperf.server.launchers import LauncherConfig
from pytest_llmperf.workload.presets import MAX_IMAGE_SIDE

# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------

_TOP_KEYS: Final[tuple[str, ...]] = (
    "models",
    "workloads",
    "concurrency",
    "runs",
    "multiplier",
    "min_requests",
    "requests_per_level",
    "warmup_requests",
    "min_duration_s",
    "report_dir",
    "baseline_dir",
    "gates",
    "client",
    "ab",
    "baseline",
    "history",
    "load",
    "slo",
    "guardrails",
    "suite_floor",
)
_MODEL_KEYS: Final[tuple[str, ...]] = (
    "name",
    "tiny",
    "profile",
    "path",
    "extra_args",
    "env",
    "launch_prefix",
    "max_num_seqs",
    "workloads",
    "concurrency",
    "launcher",
    "vllm_version",
    "platform",
    "gpus",
    "nodes",
)
#: ``[models.launcher]`` keys, by launcher kind (``kind`` and ``config_path`` go with all).
_LAUNCHER_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "local": ("command",),
    "prefix": ("command",),
    "docker": ("cli", "image", "network", "volumes", "run_args", "devices", "command"),
    "podman": ("cli", "image", "rootfs", "network", "volumes", "run_args", "devices", "command"),
    "slurm": ("cli", "partition", "nodelist", "time_limit", "cpus_per_task", "run_args", "command"),
    "ray": ("cli", "address", "start_head", "local_workers", "head_port", "num_cpus", "command"),
}
_PLATFORMS: Final[tuple[str, ...]] = ("cpu", "cuda", "rocm")
_WORKLOAD_KEYS: Final[tuple[str, ...]] = (
    "name",
    "preset",
    "input_tokens",
    "output_tokens",
    "images_per_request",
    "image_size",
    "endpoint",
    *WORKLOAD_EXTRA_KEYS,
)


def _image_size(value: object, at: KeyPath) -> tuple[int, int]:
    """``image_size = 224`` (square) or ``[width, height]``, in pixels."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            at.fail(
                f"expected [width, height], got a list of {len(value)}",
                "write image_size = 224 or image_size = [320, 240]",
            )
        sides = [
            _int(v, at.index(i), minimum=1, maximum=MAX_IMAGE_SIDE, what="an image side in pixels")
            for i, v in enumerate(value)
        ]
        return (sides[0], sides[1])
    if isinstance(value, int) and not isinstance(value, bool):
        side = _int(value, at, minimum=1, maximum=MAX_IMAGE_SIDE, what="an image side in pixels")
        return (side, side)
    at.fail(
        f"expected an image side or [width, height] in pixels, got {_kind(value)} {value!r}",
        "write image_size = 224 or image_size = [320, 240]",
    )


def _parse_workload(value: object, at: KeyPath) -> WorkloadRef:
    if isinstance(value, str):
        return WorkloadRef.from_preset(_choice(value, at, tuple(PRESETS), what="workload preset"))
    t = _table(value, at, _WORKLOAD_KEYS)
    if "name" not in t and "preset" not in t:
        at.fail("a workload needs a name", f"set name = one of {', '.join(PRESETS)}")
    if "preset" in t:
        preset = _choice(t["preset"], at.key("preset"), tuple(PRESETS), what="workload preset")
        name = _name(t.get("name", preset), at.key("name"), what="workload name")
    else:
        preset = _choice(t["name"], at.key("name"), tuple(PRESETS), what="workload preset")
        name = preset
    ints: dict[str, int | None] = {}
    for key, minimum, maximum in (
        ("input_tokens", 1, _MAX_TOKENS),
        ("output_tokens", 1, _MAX_TOKENS),
        ("images_per_request", 0, _MAX_IMAGES),
    ):
        ints[key] = (
            _int(t[key], at.key(key), minimum=minimum, maximum=maximum, what=key.replace("_", " "))
            if key in t
            else None
        )
    endpoint = (
        _choice(t["endpoint"], at.key("endpoint"), ENDPOINTS, what="endpoint")
        if "endpoint" in t
        else None
    )
    w = WorkloadRef.from_preset(
        preset,
        name=name,
        input_tokens=ints["input_tokens"],
        output_tokens=ints["output_tokens"],
        images_per_request=ints["images_per_request"],
        endpoint=endpoint,  # type: ignore[arg-type]
    )
    extras = parse_workload_extras(
        t, at, input_tokens=w.input_tokens, images=w.images_per_request
    )  # config.load: dataset / input_lengths / shared_prefix_tokens / turns
    w = replace(w, **extras) if extras else w
    if "image_size" in t:
        if not w.images_per_request:
            at.key("image_size").fail(
                "image_size is set but this workload sends no images",
                "set images_per_request (or use a vision preset), or remove image_size",
            )
        w = replace(w, image_size=_image_size(t["image_size"], at.key("image_size")))
    if w.images_per_request and w.endpoint != "chat":
        at.fail(
            "images need the chat endpoint (completions cannot carry images)",
            'set endpoint = "chat" or images_per_request = 0',
        )
    return w


def _parse_launcher(value: object, at: KeyPath) -> LauncherConfig:
    """``[models.launcher]``: ``kind`` and the settings that kind takes (others refused)."""
    if not isinstance(value, Mapping):
        at.fail(
            f"expected a table, got {_kind(value)}", 'write launcher = { kind = "docker", ... }'
        )
    if "kind" not in value:
        at.fail("a launcher needs a kind", f"set kind = one of {', '.join(_LAUNCHER_KEYS)}")
    kind = _choice(value["kind"], at.key("kind"), tuple(_LAUNCHER_KEYS), what="launcher kind")
    t = _table(value, at, ("kind", "config_path", *_LAUNCHER_KEYS[kind]))
    out: dict[str, Any] = {"kind": kind, **_launcher_settings(t, at)}
    _require_launcher_needs(kind, out, at)
    return LauncherConfig(**out)


def _launcher_settings(t: Mapping[str, Any], at: KeyPath) -> dict[str, Any]:
    """The launcher's settings that are set, each validated by its type and bounds."""
    out: dict[str, Any] = {}
    for key in ("image", "rootfs", "config_path", "partition", "nodelist", "time_limit"):
        if key in t:
            out[key] = _str(t[key], at.key(key), what=key.replace("_", " "))
    if "address" in t:
        out["address"] = _str(t["address"], at.key("address"), what="a Ray address (HOST:PORT)")
    if "network" in t:
        out["network"] = _choice(
            t["network"], at.key("network"), ("host", "publish"), what="network"
        )
    for key in ("command", "cli", "volumes", "run_args", "devices"):
        if key in t:
            out[key] = _str_list(t[key], at.key(key), what="arguments")
    for key, low, high in (
        ("cpus_per_task", 1, 4096),
        ("local_workers", 0, 64),
        ("head_port", 1, 65535),
        ("num_cpus", 0, 4096),
    ):
        if key in t:
            out[key] = _int(t[key], at.key(key), minimum=low, maximum=high, what=key)
    if "start_head" in t:
        if not isinstance(t["start_head"], bool):
            at.key("start_head").fail(
                f"expected true or false, got {_kind(t['start_head'])}", "write start_head = true"
            )
        out["start_head"] = t["start_head"]
    return out


def _require_launcher_needs(kind: str, out: Mapping[str, Any], at: KeyPath) -> None:
    """What each kind cannot run without: a prefix command, an image, a Ray cluster, a head."""
    if kind == "prefix" and not out.get("command"):
        at.fail(
            "a prefix launcher needs command = [...]",
            'e.g. command = ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]',
        )
    if kind in ("docker", "podman") and not out.get("image") and not out.get("rootfs"):
        at.fail(
            f"a {kind} launcher needs an image",
            'e.g. image = "vllm/vllm-openai-rocm:v0.14.1"'
            + (" (or rootfs = DIR)" if kind == "podman" else ""),
        )
    if kind == "ray" and not out.get("start_head") and "address" not in out:
        import os

        if not os.environ.get("RAY_ADDRESS"):
            at.fail(
                "a ray launcher needs a cluster to join",
                'set address = "HEAD:6379" (or RAY_ADDRESS), or start_head = true for a local head',
            )
    if out.get("local_workers") and not out.get("start_head"):
        at.key("local_workers").fail(
            "local workers join a head this launcher starts", "set start_head = true too"
        )


def _parse_version(value: object, at: KeyPath) -> str:
    text = _str(value, at, what="a vLLM version")
    from packaging.version import InvalidVersion, Version

    try:
        Version(text.strip().lstrip("v"))
    except InvalidVersion:
        at.fail(f"{text!r} is not a version number", 'write it like vllm_version = "0.14.1"')
    return text.strip().lstrip("v")


def _parse_model(value: object, at: KeyPath) -> ModelSpec:
    if isinstance(value, str):
        if value in TINY_ARCHS:
            return ModelSpec(name=value, tiny=value)
        if value in STUDY_PROFILES:
            return ModelSpec(name=value, profile=value)
        _choice(value, at, (*TINY_ARCHS, *STUDY_PROFILES), what="model")
    t = _table(value, at, _MODEL_KEYS)
    tiny, profile, path = _model_source(t, at)
    if "name" in t:
        name = _name(t["name"], at.key("name"), what="model name")
    elif path is None:
        name = tiny or profile or ""
    else:
        at.key("name").fail(
            "a model loaded from a path needs a name", 'add name = "my-model" (used in test ids)'
        )
    if "launcher" in t and "launch_prefix" in t:
        at.key("launch_prefix").fail(
            "both launch_prefix and launcher are set",
            "keep one: launcher = { kind = ... } (launch_prefix is a generic prefix)",
        )
    return ModelSpec(name=name, tiny=tiny, profile=profile, path=path, **_model_options(t, at))


def _model_source(t: Mapping[str, Any], at: KeyPath) -> tuple[str | None, str | None, str | None]:
    """A model table's one source: ``(tiny, profile, path)``, exactly one of them set."""
    sources = [k for k in ("tiny", "profile", "path") if k in t]
    if len(sources) != 1:
        at.fail(
            f"a model needs exactly one of tiny, profile or path (got {len(sources)})",
            f'e.g. tiny = "dense-gqa", profile = "deepseek-v3.2" or path = "/models/x"; '
            f"tiny is one of {', '.join(TINY_ARCHS)}, profile one of {', '.join(STUDY_PROFILES)}",
        )
    src = sources[0]
    if src == "tiny":
        return _choice(t["tiny"], at.key("tiny"), TINY_ARCHS, what="tiny architecture"), None, None
    if src == "profile":
        profile = _choice(t["profile"], at.key("profile"), STUDY_PROFILES, what="study profile")
        return None, profile, None
    return None, None, _str(t["path"], at.key("path"), what="a model directory")


def _model_options(t: Mapping[str, Any], at: KeyPath) -> dict[str, Any]:
    """A model table's other ``ModelSpec`` fields, each checked in the order they are listed."""
    env: dict[str, str] = {}
    if "env" in t:
        env = _env_table(t["env"], at.key("env"), example='VLLM_CPU_KVCACHE_SPACE = "4"')
    return dict(
        env=env,
        extra_args=(
            _str_list(t["extra_args"], at.key("extra_args"), what="arguments")
            if "extra_args" in t
            else ()
        ),
        launch_prefix=(
            _str_list(t["launch_prefix"], at.key("launch_prefix"), what="arguments")
            if "launch_prefix" in t
            else ()
        ),
        max_num_seqs=(
            _int(
                t["max_num_seqs"],
                at.key("max_num_seqs"),
                minimum=1,
                maximum=_MAX_CONCURRENCY,
                what="max_num_seqs",
            )
            if "max_num_seqs" in t
            else None
        ),
        workloads=(
            _str_list(t["workloads"], at.key("workloads"), what="workload names")
            if "workloads" in t
            else None
        ),
        concurrency=_levels(t["concurrency"], at.key("concurrency"))
        if "concurrency" in t
        else None,
        launcher=_parse_launcher(t["launcher"], at.key("launcher")) if "launcher" in t else None,
        vllm_version=(
            _parse_version(t["vllm_version"], at.key("vllm_version"))
            if "vllm_version" in t
            else None
        ),
        platform=(
            _choice(t["platform"], at.key("platform"), _PLATFORMS, what="platform")
            if "platform" in t
            else None
        ),
        gpus=(
            _int(t["gpus"], at.key("gpus"), minimum=0, maximum=1024, what="GPUs per node")
            if "gpus" in t
            else None
        ),
        nodes=(
            _int(t["nodes"], at.key("nodes"), minimum=1, maximum=1024, what="nodes")
            if "nodes" in t
            else 1
        ),
    )


def _parse_gate_rule(value: object, at: KeyPath) -> GateRule:
    t = _table(value, at, (*_SELECTOR_KEYS, *GATE_KEYS))
    limits: list[tuple[str, float]] = []
    for key in GATE_KEYS:
        if key not in t:
            continue
        if key == "success_rate_min":
            x = _number(t[key], at.key(key), minimum=0.0, maximum=1.0, what="a success fraction")
        elif key == "confidence":  # of the percentile gates' bounds (verdicts.gates)
            x = _number(t[key], at.key(key), minimum=0.0, maximum=1.0, what="a confidence")
            if not 0.5 <= x < 1.0:
                at.key(key).fail(
                    f"confidence {x} is outside [0.5, 1): the percentile gates' bounds hold "
                    "with this probability",
                    "give e.g. confidence = 0.95 (0.99 needs more samples per percentile)",
                )
        elif key.endswith("_min"):
            x = _number(t[key], at.key(key), minimum=0.0, maximum=1e12, what="a throughput floor")
        else:
            x = _number(
                t[key],
                at.key(key),
                minimum=0.0,
                maximum=1e12,
                what="a latency ceiling",
                open_min=True,
            )
        limits.append((key, x))
    return GateRule(
        limits=tuple(limits),
        model=_name(t["model"], at.key("model"), what="model name") if "model" in t else None,
        workload=(
            _name(t["workload"], at.key("workload"), what="workload name")
            if "workload" in t
            else None
        ),
        concurrency=_levels(t["concurrency"], at.key("concurrency"))
        if "concurrency" in t
        else None,
    )


def _parse_client(value: object, at: KeyPath) -> ClientLimits:
    t = _table(value, at, CLIENT_KEYS)
    out: dict[str, Any] = {}
    for key in CLIENT_KEYS:
        if key in t:
            if key == "workers":
                w = t[key]
                if w != "auto" and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
                    at.key(key).fail(
                        f"expected 'auto' or a whole number of processes >= 1, got {w!r}",
                        'write workers = "auto", or e.g. workers = 2',
                    )
                out[key] = w
            elif key == "cpu_layout":
                text = _str(t[key], at.key(key), what="a CPU layout")
                try:
                    out[key] = validate_setting(text)
                except CpuLayoutError as exc:
                    at.key(key).fail(str(exc), "write 'auto', 'shared' or e.g. '0/1'")
            elif key == "metrics_interval_s":
                out[key] = _number(
                    t[key],
                    at.key(key),
                    minimum=0.05,
                    maximum=60.0,
                    what="seconds between /metrics samples",
                )
            elif key == "cpu_fraction":
                out[key] = _number(
                    t[key],
                    at.key(key),
                    minimum=0.0,
                    maximum=1.0,
                    what="a fraction of one core",
                    open_min=True,
                )
            else:
                out[key] = _number(
                    t[key],
                    at.key(key),
                    minimum=0.0,
                    maximum=1e6,
                    what="a lag in ms",
                    open_min=True,
                )
    return ClientLimits(**out)


def _requests_table(value: object, at: KeyPath) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, Mapping):
        at.fail(
            f"expected a table of concurrency -> requests, got {_kind(value)}",
            'write requests_per_level = { "1" = 20, "1000" = 1000 }',
        )
    out: dict[int, int] = {}
    for k, v in value.items():
        kat = at.key(str(k))
        try:
            c = int(k) if isinstance(k, str | int) and not isinstance(k, bool) else None
        except ValueError:
            c = None
        if c is None or not 1 <= c <= _MAX_CONCURRENCY:
            kat.fail("keys must be concurrency levels", 'use quoted integers, e.g. "500" = 1000')
        out[c] = _int(v, kat, minimum=1, maximum=_MAX_REQUESTS, what="a request count")
        if out[c] < c:
            kat.fail(
                f"{out[c]} requests never reach {c} concurrent users",
                f"use at least {c} requests for this level",
            )
    return tuple(sorted(out.items()))


def _path(value: object, at: KeyPath) -> Path:
    return Path(_str(value, at, what="a folder path"))


def parse_config(
    data: Mapping[str, Any], *, source: str = "<config>", prefix: str = ""
) -> PerfConfig:
    """Validate a decoded TOML document into a ``PerfConfig``. ``prefix`` is the key path of
    ``data`` in its file (``tool.llmperf`` in pyproject.toml), so errors point at the line."""
    root = KeyPath(source, prefix)
    t = _table(data, root, _TOP_KEYS)
    models = _parse_models(t, root)
    workloads = _parse_workloads(t, root)
    cfg = PerfConfig(models=models, workloads=workloads, source=source)
    updates = _run_settings(t, root)
    updates.update(_section_updates(t, root, models, workloads))
    updates.update(parse_sections(t, root))  # [load] and [slo] (config.load)
    cfg = replace(cfg, **updates)
    _check_references(cfg, root, gates_indexed=isinstance(t.get("gates"), list))
    return cfg


def _parse_models(t: Mapping[str, Any], root: KeyPath) -> tuple[ModelSpec, ...]:
    """The document's ``models`` (the shipped default without the key), names unique."""
    if "models" in t:
        mat = root.key("models")
        items = _list(t["models"], mat, what="models")
        if not items:
            mat.fail("no models given", 'add at least one, e.g. models = ["dense-gqa"]')
        models = tuple(_parse_model(v, mat.index(i)) for i, v in enumerate(items))
    else:
        models = DEFAULT_MODELS
    _unique([m.name for m in models], root.key("models"), what="model name")
    return models


def _parse_workloads(t: Mapping[str, Any], root: KeyPath) -> tuple[WorkloadRef, ...]:
    """The document's ``workloads``: without the key, the shipped default when ``models`` is
    not given either, else the text and vision presets; names unique."""
    if "workloads" in t:
        wat = root.key("workloads")
        items = _list(t["workloads"], wat, what="workloads")
        if not items:
            wat.fail("no workloads given", 'add at least one, e.g. workloads = ["text"]')
        workloads = tuple(_parse_workload(v, wat.index(i)) for i, v in enumerate(items))
    else:
        workloads = (
            DEFAULT_WORKLOADS
            if "models" not in t
            else tuple(WorkloadRef.from_preset(p) for p in ("text", "vision"))
        )
    _unique([w.name for w in workloads], root.key("workloads"), what="workload name")
    return workloads


def _run_settings(t: Mapping[str, Any], root: KeyPath) -> dict[str, Any]:
    """``PerfConfig`` updates from the top-level run keys (levels, runs, requests, folders)."""
    updates: dict[str, Any] = {}
    if "concurrency" in t:
        updates["concurrency"] = _levels(t["concurrency"], root.key("concurrency"))
    _put_int(updates, t, root, "runs", minimum=1, maximum=_MAX_RUNS, what="runs per level")
    if "multiplier" in t:
        updates["multiplier"] = _multiplier(t["multiplier"], root.key("multiplier"))
    _put_int(
        updates,
        t,
        root,
        "min_requests",
        minimum=1,
        maximum=_MAX_REQUESTS,
        what="minimum requests per level",
    )
    if "requests_per_level" in t:
        updates["requests_per_level"] = _requests_table(
            t["requests_per_level"], root.key("requests_per_level")
        )
    _put_int(
        updates,
        t,
        root,
        "warmup_requests",
        minimum=0,
        maximum=_MAX_REQUESTS,
        what="warm-up requests",
    )
    if "min_duration_s" in t:
        updates["min_duration_s"] = _number(
            t["min_duration_s"],
            root.key("min_duration_s"),
            minimum=0.0,
            maximum=86_400.0,
            what="a minimum level duration in seconds",
        )
    if "report_dir" in t:
        updates["report_dir"] = _path(t["report_dir"], root.key("report_dir"))
    if "baseline_dir" in t:
        updates["baseline_dir"] = _path(t["baseline_dir"], root.key("baseline_dir"))
    return updates


def _section_updates(
    t: Mapping[str, Any],
    root: KeyPath,
    models: Sequence[ModelSpec],
    workloads: Sequence[WorkloadRef],
) -> dict[str, Any]:
    """``PerfConfig`` updates from the sections: gates, client, ab, baseline, history,
    guardrails and suite_floor (``[load]``/``[slo]`` are ``config.load``'s)."""
    updates: dict[str, Any] = {}
    if "gates" in t:
        gat = root.key("gates")
        raw = t["gates"]
        if isinstance(raw, Mapping):
            updates["gates"] = (_parse_gate_rule(raw, gat),)
        else:
            items = _list(raw, gat, what="gate tables")
            updates["gates"] = tuple(_parse_gate_rule(v, gat.index(i)) for i, v in enumerate(items))
    elif "models" not in t:
        updates["gates"] = DEFAULT_GATES
    if "client" in t:
        updates["client"] = _parse_client(t["client"], root.key("client"))
    if "ab" in t:
        from pytest_llmperf.config.ab import parse_ab

        updates["ab"] = parse_ab(
            t["ab"], root.key("ab"), [m.name for m in models], [w.name for w in workloads]
        )
    if "baseline" in t:
        updates["baseline"] = parse_baseline(t["baseline"], root.key("baseline"))
    if "history" in t:
        from pytest_llmperf.config.history import parse_history

        updates["history"] = parse_history(t["history"], root.key("history"))
    if "guardrails" in t:
        from pytest_llmperf.config.guardrails import parse_guardrails

        updates["guardrails"] = parse_guardrails(t["guardrails"], root.key("guardrails"))
    if "suite_floor" in t:
        from pytest_llmperf.config.suite_floor import parse_suite_floor

        updates["suite_floor"] = parse_suite_floor(t["suite_floor"], root.key("suite_floor"))
    return updates


def _unique(names: Sequence[str], at: KeyPath, *, what: str) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            at.index(i).fail(f"duplicate {what} {n!r}", "give each entry its own name")
        seen.add(n)


def _check_references(cfg: PerfConfig, root: KeyPath, *, gates_indexed: bool) -> None:
    """Cross-checks: every named model/workload exists and every model has something to run."""
    wnames = tuple(w.name for w in cfg.workloads)
    mnames = tuple(m.name for m in cfg.models)
    mat = root.key("models")
    for i, m in enumerate(cfg.models):
        for j, wn in enumerate(m.workloads or ()):
            wat = mat.index(i).key("workloads").index(j)
            _choice(wn, wat, wnames, what="workload")
            if not _can_serve(m, cfg.workload(wn)):
                wat.fail(
                    f"model {m.name!r} cannot take images but workload {wn!r} sends them",
                    "remove the workload from this model or use a vision model",
                )
        if not cfg.workloads_for(m):
            mat.index(i).fail(
                f"model {m.name!r} can serve none of the workloads ({', '.join(wnames)})",
                "add a text workload or set this model's workloads",
            )
    gat = root.key("gates")
    for i, rule in enumerate(cfg.gates):
        at = gat.index(i) if gates_indexed else gat
        if rule.model is not None:
            _choice(rule.model, at.key("model"), mnames, what="model")
        if rule.workload is not None:
            _choice(rule.workload, at.key("workload"), wnames, what="workload")
