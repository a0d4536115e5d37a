"""Launch-plan details that the mutation run of ``plan.launch_plan`` found unchecked: which
flags in ``extra_args`` the rules see (and so can refuse), how a profile's settings combine with
the user's and whom each decision names, the tensor-parallel fallback (checked against a brute
force over the divisors), the multi-node outcome, local paths and the JSON form of a plan."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

import pytest
from test_launch_plan import arch, flag, plan

from pytest_llmperf.plan import launch_plan as lp
from pytest_llmperf.plan.launch_plan import LaunchPlan, PlanError, PlanOverrides, make_plan
from pytest_llmperf.plan.profiles import Profile, get_profile

CPU: dict[str, Any] = {"platform": "cpu", "gpus": 0, "vllm_version": "0.32.0"}


def cpu_plan(name: str = "dense-gqa", **kw: Any) -> LaunchPlan:
    return plan(name, **{**CPU, **kw})


def decisions(p: LaunchPlan) -> dict[str, str]:
    """rule id -> outcome (the last one per rule)."""
    return {d.rule: d.outcome for d in p.decisions}


def test_the_launcher_runs_vllms_openai_server_with_this_interpreter() -> None:
    assert lp.DEFAULT_LAUNCHER == (sys.executable, "-m", "vllm.entrypoints.openai.api_server")
    assert lp.PORTABLE_LAUNCHER == ("python", *lp.DEFAULT_LAUNCHER[1:])
    p = cpu_plan()
    assert p.command(lp.DEFAULT_LAUNCHER) == [*lp.DEFAULT_LAUNCHER, *p.args]


# -- extra_args: flags the rules understand are lifted out, checked and placed ---------------


@pytest.mark.parametrize(
    ("extra", "flag_name", "value"),
    [
        (("-tp", "2"), "--tensor-parallel-size", "2"),
        (("--tensor-parallel-size", "2"), "--tensor-parallel-size", "2"),
        (("-q", "awq"), "--quantization", "awq"),
        (("--quantization=awq",), "--quantization", "awq"),
        (("--max-num-seqs", "8"), "--max-num-seqs", "8"),
        (("--kv-cache-dtype", "fp8"), "--kv-cache-dtype", "fp8"),
        (("--gpu-memory-utilization", "0.5"), "--gpu-memory-utilization", "0.5"),
    ],
)
def test_understood_extra_args_become_plan_flags(
    extra: tuple[str, ...], flag_name: str, value: str
) -> None:
    p = cpu_plan(overrides=PlanOverrides(extra_args=extra))
    assert flag(p, flag_name) == value
    # in the plan's own flag order, not passed through: the short form is gone, the decision
    # names the user's extra_args and shows the canonical flag
    assert "-tp" not in p.args and "-q" not in p.args
    assert "--quantization=awq" not in p.args
    assert decisions(p)["override:extra_args"] == f"{flag_name} {value}"


def test_lifted_flags_keep_the_plans_flag_order() -> None:
    extra = ("--max-num-seqs", "4", "--kv-cache-dtype", "fp8", "--custom", "-tp", "2")
    p = cpu_plan(overrides=PlanOverrides(extra_args=extra))
    args = list(p.args)
    order = [a for a in args if a.startswith("--")]
    assert order == [
        "--model",
        "--tensor-parallel-size",
        "--kv-cache-dtype",
        "--max-model-len",
        "--max-num-seqs",
        "--custom",  # what the plan does not understand passes through, last
    ]
    assert args[args.index("--max-num-seqs") + 1] == "4"


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        (("--max-num-seqs", "0"), "override:extra_args"),  # checked like max_num_seqs=0
        (("-tp", "3"), "tp-divides-heads"),  # 4 heads do not split over 3
        (("--tensor-parallel-size", "0"), "override:extra_args"),
        (("--kv-offloading-size", "4"), "cpu-no-kv-offload"),
        (("--disable-hybrid-kv-cache-manager",), "cpu-no-kv-offload"),
        (("--kv-offloading-backend", "native"), "cpu-no-kv-offload"),
    ],
)
def test_lifted_flags_are_checked_by_the_rules(extra: tuple[str, ...], rule: str) -> None:
    with pytest.raises(PlanError) as err:
        cpu_plan(overrides=PlanOverrides(extra_args=extra))
    assert err.value.rule == rule


def test_a_lifted_kv_cache_dtype_meets_the_sparse_mla_refusal() -> None:
    with pytest.raises(PlanError) as err:
        plan("deepseek-v3.2", overrides=PlanOverrides(extra_args=("--kv-cache-dtype", "fp8")))
    assert err.value.rule == "rocm-sparse-mla-no-fp8-kv"


@pytest.mark.parametrize("quant", ["fp8", "fbgemm_fp8", "ptpc_fp8", "FP8_dynamic"])
def test_every_fp8_weight_format_meets_the_bf16_rule(quant: str) -> None:
    with pytest.raises(PlanError) as err:
        plan("qwen3-vl-235b", overrides=PlanOverrides(quantization=quant))
    assert err.value.rule == "rocm-qwen3-vl-bf16"
    with pytest.raises(PlanError):
        plan("qwen3-vl-235b", overrides=PlanOverrides(extra_args=("-q", quant)))
    assert flag(
        plan("qwen3-vl-235b", overrides=PlanOverrides(quantization="awq")), "--quantization"
    )


def test_lifted_numbers_are_numbers() -> None:
    # the block size the rule requires, given as text in extra_args, is that size (a string
    # "1" would differ from the rule's 1 and be refused on sparse MLA)
    p = plan("deepseek-v3.2", overrides=PlanOverrides(extra_args=("--block-size", "1")))
    assert flag(p, "--block-size") == "1"
    # a lifted max_num_seqs / tensor_parallel is compared with numbers
    p = cpu_plan(overrides=PlanOverrides(extra_args=("--max-num-seqs", "8", "-tp", "2")))
    assert (flag(p, "--max-num-seqs"), flag(p, "--tensor-parallel-size")) == ("8", "2")


def test_lifted_kv_offloading_size_plans_the_whole_offload() -> None:
    base = dict(platform="cuda", gpus=1, vllm_version="0.14.1")
    p = plan("dense-gqa", **base, overrides=PlanOverrides(extra_args=("--kv-offloading-size", "4")))
    assert flag(p, "--kv-offloading-size") == "4"
    assert flag(p, "--kv-offloading-backend") == "native"
    assert flag(p, "--disable-hybrid-kv-cache-manager") == ""


def test_extra_args_values_and_positions() -> None:
    # the value is everything after the first "="
    p = cpu_plan(overrides=PlanOverrides(extra_args=("--quantization=a=b",)))
    assert flag(p, "--quantization") == "a=b"
    # a flag's value is the next argument, not the one before it
    p = cpu_plan(overrides=PlanOverrides(extra_args=("--custom", "--max-num-seqs", "6")))
    assert flag(p, "--max-num-seqs") == "6" and p.args[-1] == "--custom"
    # several lifted flags in a row, then the rest
    extra = ("--x", "1", "--max-num-seqs", "5", "-tp", "2", "--y")
    p = cpu_plan(overrides=PlanOverrides(extra_args=extra))
    assert (flag(p, "--max-num-seqs"), flag(p, "--tensor-parallel-size")) == ("5", "2")
    assert p.args[-3:] == ("--x", "1", "--y")


@pytest.mark.parametrize("extra", [("--max-num-seqs",), ("--custom", "-tp")])
def test_a_lifted_flag_without_a_value_is_refused(extra: tuple[str, ...]) -> None:
    with pytest.raises(PlanError) as err:
        cpu_plan(overrides=PlanOverrides(extra_args=extra))
    assert err.value.rule == "override:extra_args"
    assert str(err.value) == f"[override:extra_args] {extra[-1]} in extra_args has no value"


def test_a_lifted_flag_with_text_for_a_number_is_refused() -> None:
    with pytest.raises(PlanError) as err:
        cpu_plan(overrides=PlanOverrides(extra_args=("--max-num-seqs", "many")))
    assert str(err.value) == (
        "[override:extra_args] --max-num-seqs 'many' in extra_args is not a number"
    )


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("--model", "pass the model as make_plan(model=...) / plan --model"),
        ("--host", "the server module chooses --host and --port"),
        ("--port", "the server module chooses --host and --port"),
    ],
)
def test_flags_that_are_not_the_users_are_refused_with_the_way(name: str, hint: str) -> None:
    for extra in ((name, "x"), (f"{name}=x",)):
        with pytest.raises(PlanError) as err:
            cpu_plan(overrides=PlanOverrides(extra_args=extra))
        assert str(err.value) == f"[override:extra_args] {name} in extra_args: {hint}"


# -- a profile's settings under the user's ----------------------------------------------------


def test_overrides_over_a_base_combine_args_and_env_and_keep_set_fields() -> None:
    base = PlanOverrides(
        extra_args=("--a",), extra_env={"X": "1", "Y": "1"}, enforce_eager=True, block_size=16
    )
    mine = PlanOverrides(extra_args=("--b",), extra_env={"Y": "2"}, block_size=32)
    got = mine.over(base)
    assert got.extra_args == ("--a", "--b")
    assert got.extra_env == {"X": "1", "Y": "2"}
    assert (got.enforce_eager, got.block_size) == (True, 32)
    assert PlanOverrides().over(base) == base  # nothing set: the base, field for field


def _profile(**kw: Any) -> Profile:
    return replace(get_profile("kimi-k2.5"), name="mine", **kw)


def test_decisions_name_the_profile_or_the_user() -> None:
    prof = _profile(
        overrides=PlanOverrides(
            tensor_parallel=4, aiter=False, max_num_seqs=3, extra_args=("--z",)
        ),
        why={"tensor_parallel": "the study ran TP4"},
    )
    p = prof.plan()
    by_rule = {(d.rule, d.outcome): d.reason for d in p.decisions}
    assert by_rule[("profile:mine", "--tensor-parallel-size 4")] == "the study ran TP4"
    # a setting without a stated why still gets a reason naming the profile
    assert by_rule[("profile:mine", "--max-num-seqs 3")] == "the study's mine setting"
    assert by_rule[("profile:mine", "--z")] == "passed through as given (the study's mine setting)"
    # the profile's context length
    assert ("profile:mine", "--max-model-len 32768") in by_rule
    # the user's setting wins and the decision says so
    mine = prof.plan(overrides=PlanOverrides(max_num_seqs=5))
    assert ("override:max_num_seqs", "--max-num-seqs 5") in {
        (d.rule, d.outcome) for d in mine.decisions
    }
    assert p.profile == "mine" and p.to_json()["profile"] == "mine"


def test_a_workload_length_decision_names_the_workload() -> None:
    p = cpu_plan(workload_max_len=700)
    assert decisions(p)["workload-max-len"] == "--max-model-len 700"


def test_a_profile_that_leaves_aiter_unset_says_so() -> None:
    p = get_profile("qwen3-vl-235b").plan()
    assert decisions(p)["profile:qwen3-vl-235b"] != ""
    outcomes = {(d.rule, d.outcome) for d in p.decisions}
    assert ("profile:qwen3-vl-235b", "VLLM_ROCM_USE_AITER unset") in outcomes
    assert "VLLM_ROCM_USE_AITER" not in p.env


# -- tensor parallel --------------------------------------------------------------------------


def test_an_explicit_tensor_parallel_of_one_is_kept_on_cpu() -> None:
    p = cpu_plan(overrides=PlanOverrides(tensor_parallel=1))
    assert flag(p, "--tensor-parallel-size") == "1"
    assert decisions(p)["override:tensor_parallel"] == "--tensor-parallel-size 1"
    # without it, a CPU plan says nothing about tensor parallelism
    bare = cpu_plan()
    assert "--tensor-parallel-size" not in bare.args
    assert not any("tensor-parallel" in d.outcome for d in bare.decisions)


@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_a_gpu_plan_states_its_tensor_parallel_size(gpus: int) -> None:
    p = plan("dense-gqa", platform="cuda", gpus=gpus)
    assert decisions(p)["tp-all-gpus"] == f"--tensor-parallel-size {gpus}"
    assert flag(p, "--tensor-parallel-size") == str(max(t for t in (1, 2, 4) if t <= gpus))


@pytest.mark.parametrize("heads", [1, 5, 6, 7, 10, 12, 15, 16])
@pytest.mark.parametrize("gpus", [1, 2, 3, 4, 8])
def test_tensor_parallel_falls_back_to_the_largest_divisor(heads: int, gpus: int) -> None:
    a = replace(arch("dense-gqa"), num_attention_heads=heads, num_kv_heads=1)
    p = make_plan(a, platform="cuda", vllm_version="0.14.1", gpus=gpus, model="M")
    best = max(t for t in range(1, gpus + 1) if heads % t == 0)  # brute force
    assert flag(p, "--tensor-parallel-size") == str(best)
    d = decisions(p)
    if heads % gpus:
        assert d["tp-divides-heads"] == f"--tensor-parallel-size {best}"
    else:
        assert "tp-divides-heads" not in d


def test_an_explicit_tensor_parallel_that_does_not_divide_lists_the_sizes_that_do() -> None:
    a = replace(arch("dense-gqa"), num_attention_heads=6, num_kv_heads=1)
    with pytest.raises(PlanError) as err:
        make_plan(
            a, platform="cuda", vllm_version="0.14.1", gpus=8, model="M",
            overrides=PlanOverrides(tensor_parallel=4),
        )  # fmt: skip
    assert err.value.rule == "tp-divides-heads"
    assert str(err.value).endswith("use one of [1, 2, 3]")


def test_multi_node_outcome_names_both_flags() -> None:
    p = plan("dense-gqa", platform="cuda", gpus=2, nodes=2)
    assert decisions(p)["multinode-ray"] == (
        "--pipeline-parallel-size 2 --distributed-executor-backend ray"
    )
    with pytest.raises(PlanError) as err:
        plan("dense-gqa", platform="cuda", gpus=2, nodes=0)
    assert err.value.rule == "multi-node"


def test_bad_inputs_name_their_rule() -> None:
    with pytest.raises(PlanError) as err:
        cpu_plan(model="")
    assert err.value.rule == "model"
    with pytest.raises(PlanError) as err:
        plan("dense-gqa", platform="cuda", gpus=0)
    assert err.value.rule == "gpus"
    with pytest.raises(PlanError) as err:
        cpu_plan(platform="tpu")
    assert err.value.rule == "platform"


# -- outcomes, local models, JSON -------------------------------------------------------------


def test_flag_outcomes_are_the_flag_and_its_value() -> None:
    p = plan("kimi-k2.5")
    d = decisions(p)
    assert d["remote-code"] == "--trust-remote-code"
    assert d["rocm-mla-block-size-1"] == "--block-size 1"


@pytest.mark.parametrize(
    ("model", "local"),
    [("/m", True), ("./m", True), ("../m", True), ("~/m", True), ("org/name", False),
     ("name", False)],
)  # fmt: skip
def test_local_models_run_offline(model: str, local: bool) -> None:
    assert lp.is_local_model(model) is local
    p = cpu_plan(model=model)
    assert ("HF_HUB_OFFLINE" in p.env) is local
    if not local:
        assert decisions(p)["hub-model-online"] == "HF_HUB_OFFLINE unset"


def test_plan_json_has_its_keys_and_the_portable_command() -> None:
    p = cpu_plan(served_model_name="tiny")
    doc = json.loads(json.dumps(p.to_json()))
    assert set(doc) == {
        "architecture", "platform", "vllm_version", "profile", "argv", "command", "env",
        "decisions",
    }  # fmt: skip
    assert doc["command"] == ["python", "-m", "vllm.entrypoints.openai.api_server", *p.args]
    assert doc["argv"] == list(p.args) and doc["profile"] is None
    assert doc["decisions"][0] == p.decisions[0].to_json()


def test_plan_json_keeps_its_key_order_and_plain_lists() -> None:
    """Users diff ``plan --json``: the keys come in this order, and the in-memory document
    holds lists and dicts (what ``json.loads`` gives back), never the plan's tuples."""
    p = cpu_plan(served_model_name="tiny")
    doc = p.to_json()
    assert list(doc) == [
        "architecture", "platform", "vllm_version", "profile", "argv", "command", "env",
        "decisions",
    ]  # fmt: skip
    assert list(doc["architecture"])[:2] == ["family", "model_type"]
    assert doc == json.loads(json.dumps(doc))  # a tuple anywhere would compare unequal
    assert type(doc["argv"]) is list and type(doc["decisions"]) is list
    assert list(doc["decisions"][0]) == ["rule", "outcome", "reason"]


# -- AITER on ROCm: the heads-per-GPU shapes its MLA kernels accept ---------------------------


def _aiter_expectation(heads: int, gpus: int) -> tuple[int, str]:
    """Brute force of the documented rule: tensor parallel over every GPU (or the largest
    size that divides the heads); AITER's MLA kernels (vLLM < 0.18) want 16 or 128 heads per
    GPU, so take the largest size on the node that gives that, else turn AITER off."""
    tp = max(t for t in range(1, gpus + 1) if heads % t == 0)
    if heads // tp in (16, 128):
        return tp, "1"
    fitting = [t for t in range(1, gpus + 1) if heads % t == 0 and heads // t in (16, 128)]
    return (max(fitting), "1") if fitting else (tp, "0")


@pytest.mark.parametrize("heads", [4, 16, 32, 64, 128, 256])
@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_mla_tensor_parallel_follows_the_aiter_heads_rule(heads: int, gpus: int) -> None:
    a = replace(arch("moe-mla"), num_attention_heads=heads)
    p = make_plan(a, platform="rocm", vllm_version="0.14.1", gpus=gpus, model="M")
    tp, aiter = _aiter_expectation(heads, gpus)
    assert (flag(p, "--tensor-parallel-size"), p.env["VLLM_ROCM_USE_AITER"]) == (str(tp), aiter)
    d = decisions(p)
    base = max(t for t in range(1, gpus + 1) if heads % t == 0)
    if aiter == "1" and tp != base:
        assert d["rocm-aiter-heads-per-gpu"] == f"--tensor-parallel-size {tp}"
    if aiter == "0":
        assert d["rocm-aiter-heads-per-gpu"] == "VLLM_ROCM_USE_AITER=0"


def test_aiter_left_to_vllm_for_a_dense_model_and_ignored_off_rocm() -> None:
    p = plan("dense-gqa", platform="rocm", gpus=2)
    assert decisions(p)["rocm-aiter-optional"] == "VLLM_ROCM_USE_AITER unset"
    assert "VLLM_ROCM_USE_AITER" not in p.env
    off = plan("dense-gqa", platform="cuda", gpus=1, overrides=PlanOverrides(aiter=True))
    assert decisions(off)["override:aiter"] == "AITER ignored"
    assert "VLLM_ROCM_USE_AITER" not in off.env


def test_a_block_size_override_against_the_mla_rule_depends_on_aiter() -> None:
    # AITER on: its MLA kernel needs block size 1, so 16 is refused
    with pytest.raises(PlanError) as err:
        plan("kimi-k2.5", overrides=PlanOverrides(aiter=True, block_size=16))
    assert err.value.rule == "rocm-mla-block-size-1"
    # AITER off: vLLM's own MLA path takes 16
    p = plan("kimi-k2.5", overrides=PlanOverrides(aiter=False, block_size=16))
    assert flag(p, "--block-size") == "16"
    assert decisions(p)["override:block_size"] == "--block-size 16"
    # the size the rule wants is never refused
    assert flag(plan("kimi-k2.5", overrides=PlanOverrides(block_size=1)), "--block-size") == "1"


def test_block_size_left_to_the_cpu_backend_says_so() -> None:
    assert decisions(cpu_plan())["cpu-block-size-auto"] == "--block-size unset"


def test_an_fp8_checkpoint_is_refused_as_a_checkpoint() -> None:
    a = replace(arch("qwen3-vl-235b"), quantization="fp8")
    with pytest.raises(PlanError) as err:
        make_plan(a, platform="rocm", vllm_version="0.14.1", gpus=8, model="M")
    assert err.value.rule == "rocm-qwen3-vl-bf16"
    assert str(err.value).startswith("[rocm-qwen3-vl-bf16] an fp8 checkpoint asked for, but ")
    with pytest.raises(PlanError) as err:
        plan("qwen3-vl-235b", overrides=PlanOverrides(quantization="fp8"))
    assert str(err.value).startswith("[rocm-qwen3-vl-bf16] --quantization fp8 asked for, but ")
    assert decisions(plan("qwen3-vl-235b"))["rocm-qwen3-vl-bf16"] == "BF16 weights (no fp8)"


def test_remote_code_follows_the_user_first_then_the_model() -> None:
    assert "--trust-remote-code" in plan("kimi-k2.5").args  # the model ships code
    no = plan("kimi-k2.5", overrides=PlanOverrides(trust_remote_code=False))
    assert "--trust-remote-code" not in no.args
    yes = cpu_plan(overrides=PlanOverrides(trust_remote_code=True))
    assert flag(yes, "--trust-remote-code") == ""
    assert decisions(yes)["override:trust_remote_code"] == "--trust-remote-code"


def test_cpu_kv_cache_space_unless_the_user_sized_the_cache() -> None:
    p = cpu_plan(overrides=PlanOverrides(extra_args=("--custom",)))
    assert p.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    sized = cpu_plan(overrides=PlanOverrides(extra_args=("--kv-cache-memory-bytes", "1000")))
    assert "VLLM_CPU_KVCACHE_SPACE" not in sized.env
    assert "--gpu-memory-utilization" not in sized.args


# -- context, batch, memory, offloading, images, environment ----------------------------------


def test_context_length_bounds() -> None:
    assert flag(cpu_plan(workload_max_len=1), "--max-model-len") == "1"
    assert flag(cpu_plan(workload_max_len=2048), "--max-model-len") == "2048"  # the model's own
    with pytest.raises(PlanError) as err:
        cpu_plan(workload_max_len=2049)
    assert err.value.rule == "max-model-len-within-model"
    roped = replace(arch("dense-gqa"), rope_scaled=True)
    p = make_plan(roped, model="M", workload_max_len=4096, **CPU)
    assert flag(p, "--max-model-len") == "4096"
    with pytest.raises(PlanError) as err:
        cpu_plan(workload_max_len=0)
    assert err.value.rule == "max-model-len"


def test_batch_and_memory_fraction_bounds() -> None:
    assert flag(cpu_plan(overrides=PlanOverrides(max_num_seqs=1)), "--max-num-seqs") == "1"
    full = cpu_plan(overrides=PlanOverrides(gpu_memory_utilization=1.0))
    assert flag(full, "--gpu-memory-utilization") == "1.0"
    for bad in (0.0, 1.01, -0.5):
        with pytest.raises(PlanError) as err:
            cpu_plan(overrides=PlanOverrides(gpu_memory_utilization=bad))
        assert err.value.rule == "override:gpu_memory_utilization"


def test_offloading_sizes_and_outcome() -> None:
    cuda = dict(platform="cuda", gpus=1)
    p = plan("dense-gqa", **cuda, overrides=PlanOverrides(kv_offload_gib=0.5))
    assert decisions(p)["override:kv_offload_gib"] == (
        "--kv-offloading-backend native --kv-offloading-size 0.5 --disable-hybrid-kv-cache-manager"
    )
    for bad in (0.0, -1.0):
        with pytest.raises(PlanError) as err:
            plan("dense-gqa", **cuda, overrides=PlanOverrides(kv_offload_gib=bad))
        assert err.value.rule == "override:kv_offload_gib"


def test_refused_offloading_names_what_was_asked() -> None:
    with pytest.raises(PlanError) as err:
        cpu_plan(overrides=PlanOverrides(kv_offload_gib=4))
    assert str(err.value).startswith(
        "[cpu-no-kv-offload] KV offloading (4 GiB) asked for a dense-gqa model on cpu, but "
    )
    flags = ("--kv-offloading-backend", "native", "--disable-hybrid-kv-cache-manager")
    with pytest.raises(PlanError) as err:
        cpu_plan(overrides=PlanOverrides(extra_args=flags))
    assert str(err.value).startswith(
        "[cpu-no-kv-offload] KV offloading (--disable-hybrid-kv-cache-manager, "
        "--kv-offloading-backend) asked for a dense-gqa model on cpu, but "
    )


def test_images_per_prompt_bounds() -> None:
    p = cpu_plan("vision", images_per_prompt=0)
    assert flag(p, "--limit-mm-per-prompt") == '{"image":0,"video":0}'
    with pytest.raises(PlanError) as err:
        cpu_plan("vision", images_per_prompt=-1)
    assert err.value.rule == "cpu-vision-one-image"
    with pytest.raises(PlanError) as err:
        cpu_plan(images_per_prompt=2)  # a text model
    assert err.value.rule == "vision-limit-from-workload"
    assert decisions(plan("kimi-k2.5"))["vision-limit-from-workload"] == (
        "--limit-mm-per-prompt unset"
    )


def test_an_aiter_setting_in_extra_env_is_checked_only_where_aiter_is_required() -> None:
    def env_plan(name: str, env: dict[str, str], **kw: Any) -> LaunchPlan:
        return plan(name, overrides=PlanOverrides(extra_env=env), **kw)

    with pytest.raises(PlanError) as err:
        env_plan("deepseek-v3.2", {"VLLM_ROCM_USE_AITER": "0"})
    assert err.value.rule == "rocm-sparse-mla-requires-aiter"
    assert env_plan("deepseek-v3.2", {"VLLM_ROCM_USE_AITER": "1"}).env["VLLM_ROCM_USE_AITER"] == "1"
    assert env_plan("deepseek-v3.2", {"FOO": "0"}).env["FOO"] == "0"
    cuda = env_plan("dense-gqa", {"VLLM_ROCM_USE_AITER": "0"}, platform="cuda", gpus=1)
    assert cuda.env["VLLM_ROCM_USE_AITER"] == "0"
    assert decisions(cuda)["override:extra_env"] == "VLLM_ROCM_USE_AITER=0"


def test_a_lifted_flag_from_a_profiles_extra_args_is_credited_to_the_profile() -> None:
    p = _profile(overrides=PlanOverrides(extra_args=("--max-num-seqs", "3"))).plan()
    assert ("profile:mine", "--max-num-seqs 3") in {(d.rule, d.outcome) for d in p.decisions}
    assert flag(p, "--max-num-seqs") == "3"


def test_aiter_off_in_extra_env_is_accepted_where_aiter_is_optional() -> None:
    p = plan("dense-gqa", overrides=PlanOverrides(extra_env={"VLLM_ROCM_USE_AITER": "0"}), gpus=2)
    assert p.env["VLLM_ROCM_USE_AITER"] == "0"
    assert decisions(p)["override:extra_env"] == "VLLM_ROCM_USE_AITER=0"
