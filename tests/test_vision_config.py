"""Images per request and image size from the config, and the refusals of a workload that
sends more images than the model's server takes: in the plan (before a boot) and the wording
of the server-side preflight (its real check runs in ``test_vision_multi_vllm.py``)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from test_architectures import TINY

from pytest_llmperf.config import ConfigError, PerfConfig, parse_config
from pytest_llmperf.plan.architectures import from_config
from pytest_llmperf.plan.launch_plan import PlanError, PlanOverrides, make_plan
from pytest_llmperf.session.engine import to_load_workload
from pytest_llmperf.workload.presets import WORKLOADS, Workload
from pytest_llmperf.workload.prompts import image_limit_message


def parse(text: str) -> PerfConfig:
    return parse_config(tomllib.loads(text), source="llmperf.toml", prefix="")


MULTI = """
[[models]]
name = "idefics3"
tiny = "vision-multi"

[[workloads]]
name = "three"
preset = "vision-3-images"
image_size = [224, 160]

[[workloads]]
name = "five"
preset = "vision"
images_per_request = 5
image_size = 64
"""


def test_images_per_request_and_image_size_reach_the_load_workload() -> None:
    cfg = parse(MULTI)
    three, five = cfg.workload("three"), cfg.workload("five")
    assert (three.images_per_request, three.image_size) == (3, (224, 160))
    assert (five.images_per_request, five.image_size) == (5, (64, 64))
    w = to_load_workload(three)
    assert (w.kind, w.endpoint, w.images_per_request, w.image_size) == (
        "vision",
        "chat",
        3,
        (224, 160),
    )
    assert to_load_workload(cfg.workload("five")).image_size == (64, 64)
    # the study's 3- and 5-image stress presets
    assert WORKLOADS["vision-3-images"].images_per_request == 3
    assert WORKLOADS["vision-5-images"].images_per_request == 5
    # a vision model takes these workloads; a text model is refused by the config already
    assert [c.workload.name for c in cfg.cases() if c.model.name == "idefics3"][:1] == ["three"]


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        ("image_size = 0", "workloads[0].image_size", "out of range"),
        ("image_size = 9000", "workloads[0].image_size", "out of range"),
        ("image_size = [1, 2, 3]", "workloads[0].image_size", "[width, height]"),
        ("image_size = '224'", "workloads[0].image_size", "expected an image side"),
        ("image_size = [224, true]", "workloads[0].image_size[1]", "an integer"),
        ("images_per_request = 0\nimage_size = 64", "workloads[0].image_size", "no images"),
    ],
)
def test_bad_image_settings_are_clear_errors(body: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(f"[[workloads]]\nname = 'vision'\n{body}\n")
    assert info.value.key == key
    assert problem in info.value.problem
    assert info.value.fix  # what to do


def test_workload_refuses_impossible_image_sizes() -> None:
    with pytest.raises(ValueError, match="image_size must be two sides"):
        Workload("v", kind="vision", endpoint="chat", images_per_request=1, image_size=(0, 5))


def _vision_arch() -> Any:
    return from_config(TINY["vision"])


def test_plan_sets_the_image_limit_from_the_workload() -> None:
    p = make_plan(_vision_arch(), platform="cpu", vllm_version="0.32.0", gpus=0, model="M",
                  images_per_prompt=5)  # fmt: skip
    args = list(p.args)
    assert args[args.index("--limit-mm-per-prompt") + 1] == '{"image":5,"video":0}'


@pytest.mark.parametrize(
    "extra",
    [
        ("--limit-mm-per-prompt", '{"image": 1, "video": 0}'),
        ('--limit-mm-per-prompt={"image":2}',),
        ("--limit-mm-per-prompt", "image=2,video=0"),
        ("--limit-mm-per-prompt", '{"image": {"count": 1, "width": 64, "height": 64}}'),
    ],
)
def test_plan_refuses_a_user_limit_below_the_workload_before_any_boot(
    extra: tuple[str, ...],
) -> None:
    with pytest.raises(PlanError) as info:
        make_plan(_vision_arch(), platform="cpu", vllm_version="0.32.0", gpus=0, model="M",
                  images_per_prompt=3, overrides=PlanOverrides(extra_args=extra))  # fmt: skip
    text = str(info.value)
    assert "sends 3 image(s) per prompt" in text and "--limit-mm-per-prompt" in text
    assert "raise it to at least 3" in text


@pytest.mark.parametrize(
    "extra",
    [("--limit-mm-per-prompt", '{"image": 3}'), ("--limit-mm-per-prompt", "not json")],
)
def test_plan_keeps_a_user_limit_that_suffices_or_that_vllm_must_read(
    extra: tuple[str, ...],
) -> None:
    p = make_plan(_vision_arch(), platform="cpu", vllm_version="0.32.0", gpus=0, model="M",
                  images_per_prompt=3, overrides=PlanOverrides(extra_args=extra))  # fmt: skip
    assert p.args[-2:] == extra  # passed through, replacing the planned flag
    assert list(p.args).count("--limit-mm-per-prompt") == 1


def test_image_limit_message_says_what_why_and_what_to_do() -> None:
    w = WORKLOADS["vision-3-images"]
    own = image_limit_message(w, "http://h/tokenize", 1, "At most 1 image(s)...",
                              model_takes_more=False)  # fmt: skip
    assert "sends 3 images per request" in own and "at most 1 per prompt" in own
    assert "smaller of the model's own" in own and "images_per_request = 1 or fewer" in own
    assert "vision-multi" in own and "--limit-mm-per-prompt '{\"image\":3}'" in own
    flag = image_limit_message(w, "http://h/tokenize", 2, "At most 2 image(s)...",
                               model_takes_more=True)  # fmt: skip
    assert "--limit-mm-per-prompt '{\"image\":3}'" in flag and "model's own" not in flag
