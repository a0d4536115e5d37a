"""``python -m pytest_llmperf plan``: the vLLM command a model gets, and why, without a launch.

A person checks a plan in a second here instead of learning about a wrong flag from a failed
10-minute server start on eight GPUs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pytest_llmperf.core.redact import redact_env, redact_text
from pytest_llmperf.core.versions import installed_vllm_version
from pytest_llmperf.plan.architectures import detect
from pytest_llmperf.plan.launch_plan import LaunchPlan, PlanError, PlanOverrides, make_plan
from pytest_llmperf.plan.profiles import PROFILES, Profile


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_llmperf plan",
        description="Print the vLLM launch plan (family, decisions with reasons, command, env) "
        "for a model config or one of the study's profiles. Starts nothing.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help=f"config.json, a model directory, or a profile: {', '.join(PROFILES)}",
    )
    parser.add_argument(
        "--platform",
        choices=("rocm", "cuda", "cpu"),
        help="target platform (default: a profile's, else the accelerators detected here)",
    )
    parser.add_argument(
        "--gpus", type=int, help="GPUs per node (default: a profile's, else detected)"
    )
    parser.add_argument(
        "--vllm", dest="vllm_version", help="vLLM version (default: a profile's, else installed)"
    )
    parser.add_argument("--nodes", type=int, default=1, help="nodes of a Ray cluster (default 1)")
    parser.add_argument(
        "--kv-offload", type=float, metavar="GIB", help="KV-cache offload size per GPU in GiB"
    )
    parser.add_argument("--served-model-name", help="name clients send as 'model'")
    parser.add_argument("--max-model-len", type=int, help="context length the workload needs")
    parser.add_argument("--images-per-prompt", type=int, help="images per request (vision)")
    parser.add_argument("--tensor-parallel", type=int, help="override the tensor-parallel size")
    parser.add_argument("--block-size", type=int, help="override the KV block size")
    parser.add_argument("--kv-cache-dtype", help="e.g. fp8 (refused where a rule forbids it)")
    parser.add_argument("--max-num-seqs", type=int, help="cap on concurrent sequences")
    aiter = parser.add_mutually_exclusive_group()
    aiter.add_argument("--aiter", dest="aiter", action="store_true", default=None)
    aiter.add_argument("--no-aiter", dest="aiter", action="store_false")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Print the plan; exit 0, or 2 with the rule and the fix when the request cannot work."""
    out = out or sys.stdout
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        plan = _plan(args)
    except (PlanError, ValueError) as exc:
        print(f"plan: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        doc = plan.to_json()
        if isinstance(doc.get("env"), dict):
            doc["env"] = redact_env(doc["env"])
        out.write(redact_text(json.dumps(doc, indent=2)))
        out.write("\n")
    else:
        out.write(render(plan))
    return 0


def render(plan: LaunchPlan) -> str:
    """The plan as text a person reads top to bottom: what the model is, what was decided, why."""
    arch = plan.architecture
    lines = [
        f"model:     {arch.name or plan.args[1]}",
        f"family:    {arch.family} ({arch.describe()})",
        f"platform:  {plan.platform}, vLLM {plan.vllm_version}"
        + (f", profile {plan.profile}" if plan.profile else ""),
        "decisions:",
    ]
    width = max((len(d.rule) for d in plan.decisions), default=0)
    for d in plan.decisions:
        lines.append(f"  {d.rule:<{width}}  {d.outcome}")
        lines.append(f"  {'':<{width}}    {d.reason}")
    lines.append("env:")
    lines += [f"  {k}={shlex.quote(v)}" for k, v in redact_env(plan.env).items()] or ["  (none)"]
    lines.append("command:")
    lines.append(f"  {plan.shell()}")
    return redact_text("\n".join(lines) + "\n")


def _plan(args: argparse.Namespace) -> LaunchPlan:
    profile: Profile | None = PROFILES.get(args.model.strip().lower())
    if profile is not None:
        arch = profile.architecture()
        model = profile.model
    else:
        arch = detect(args.model)
        path = Path(args.model).expanduser()
        model = str(path.parent if path.is_file() else path)
    detected = None if args.platform or profile else _detect_platform()
    platform = args.platform or (profile.platform if profile else detected[0])  # type: ignore[index]
    gpus = args.gpus
    if gpus is None:
        gpus = _default_gpus(platform, profile, detected)
    version = args.vllm_version or (profile.vllm_version if profile else _installed_vllm())
    overrides = PlanOverrides(
        kv_offload_gib=args.kv_offload,
        block_size=args.block_size,
        tensor_parallel=args.tensor_parallel,
        aiter=args.aiter,
        kv_cache_dtype=args.kv_cache_dtype,
        max_num_seqs=args.max_num_seqs,
    )
    return make_plan(
        arch,
        platform=platform,
        vllm_version=version,
        gpus=gpus,
        model=model,
        served_model_name=args.served_model_name,
        workload_max_len=args.max_model_len,
        overrides=overrides,
        nodes=args.nodes,
        profile=profile,
        images_per_prompt=args.images_per_prompt,
    )


def _default_gpus(
    platform: str, profile: Profile | None, detected: tuple[str, int | None] | None
) -> int:
    """The profile's GPU count on its own platform, else what is detected here; ask otherwise."""
    if platform == "cpu":
        return 0
    if profile is not None and platform == profile.platform:
        return profile.gpus
    found, count = detected or _detect_platform()
    if found == platform and count:
        return count
    raise ValueError(f"no {platform} GPUs detected here to count; pass --gpus N (GPUs per node)")


def _detect_platform() -> tuple[str, int | None]:
    """The platform and device count here; CPU when the detector is not available."""
    try:
        from pytest_llmperf.plan.platforms import detect_accelerators
    except ImportError:
        return "cpu", None
    found = detect_accelerators()
    return str(found.platform), int(found.count)


def _installed_vllm() -> str:
    found = installed_vllm_version()
    if found is not None:
        return found
    raise ValueError("no vLLM is installed here to read a version from; pass --vllm 0.14.1")
