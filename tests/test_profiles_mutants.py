"""plan.profiles beyond the study's command lines (pure): every setting a profile fixes is
reported with the study's reason for it, a custom profile plans with the defaults, a broken
profile config names the profile, and the unknown-profile refusal in full."""

from __future__ import annotations

import pytest

from pytest_llmperf.plan.launch_plan import PlanOverrides
from pytest_llmperf.plan.profiles import PROFILES, Profile, get_profile

DENSE = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_fixed_setting_is_decided_by_the_profile_with_its_reason(name: str) -> None:
    prof = PROFILES[name]
    assert prof.why  # every study profile says why it departs from the rules
    decisions = prof.plan().decisions
    for setting, why in prof.why.items():
        cited = [d for d in decisions if d.rule == f"profile:{name}" and d.reason.startswith(why)]
        assert cited, (setting, why, [(d.rule, d.reason) for d in decisions])


def test_a_custom_profile_plans_with_the_defaults_and_a_generic_reason() -> None:
    bare = Profile(name="bare", model="org/m", config=DENSE, summary="a dense test model")
    plan = bare.plan(platform="cpu", gpus=0)
    assert plan.profile == "bare"
    assert not [d for d in plan.decisions if d.rule == "profile:bare"]
    fixed = Profile(
        name="fixed",
        model="org/m",
        config=DENSE,
        summary="a dense test model with a fixed KV cache dtype",
        overrides=PlanOverrides(kv_cache_dtype="fp8"),
    )
    reasons = [d.reason for d in fixed.plan().decisions if d.rule == "profile:fixed"]
    assert reasons and reasons[0].startswith("the study's fixed setting")


def test_a_broken_profile_config_names_the_profile() -> None:
    broken = Profile(name="broken", model="org/m", config={"model_type": "llama"}, summary="")
    with pytest.raises(ValueError) as err:
        broken.architecture()
    assert str(err.value).startswith("model config profile broken ")


def test_profiles_by_name_ignore_case_and_spaces_and_the_refusal_lists_them() -> None:
    assert get_profile("  Kimi-K2.5 ") is PROFILES["kimi-k2.5"]
    with pytest.raises(ValueError) as err:
        get_profile("llama-4")
    assert str(err.value) == (
        "unknown profile 'llama-4'; known profiles: deepseek-v3.2, kimi-k2.5, llama-3.1-405b, "
        "qwen3-vl-235b"
    )
