"""The main config parser (``config.parse``): what mutation testing found unchecked
(docs/mutation.md, config/parse): every section and launcher key that is accepted, the
boundaries, the defaults, and the full text of the refusals (the text is the fix: file, key
path, what is wrong, what to write instead)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.config import PRESETS, ConfigError, parse_config
from pytest_llmperf.server.launchers import LauncherConfig

TINY = {"name": "m", "tiny": "dense-gqa"}


def cfg(**doc: Any) -> Any:
    return parse_config(doc, source="llmperf.toml")


def error(**doc: Any) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(doc, source="llmperf.toml")
    return str(err.value).removeprefix("llmperf.toml: ")


def launcher(table: dict[str, Any]) -> LauncherConfig:
    (m,) = cfg(models=[{**TINY, "launcher": table}], workloads=["text"]).models
    assert isinstance(m.launcher, LauncherConfig)
    return m.launcher


def launcher_error(table: dict[str, Any]) -> str:
    return error(models=[{**TINY, "launcher": table}], workloads=["text"])


# -- sections ----------------------------------------------------------------------------------


def test_every_section_table_is_read() -> None:
    c = cfg(
        models=["dense-gqa"],
        baseline={"alpha": 0.01},
        history={"window": 30},
        guardrails={"fail_on": ["client_late"]},
        suite_floor={"fraction": 0.5},
        min_duration_s=12,
    )
    assert c.baseline.alpha == 0.01 and c.history.window == 30
    assert c.guardrails.fail_on == ("client_late",)
    assert c.suite_floor.fraction == 0.5 and c.min_duration_s == 12.0


# -- launchers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"kind": "local", "command": ["py"]}, LauncherConfig(kind="local", command=("py",))),
        (
            {"kind": "prefix", "command": ["env", "X=1"], "config_path": "/c.json"},
            LauncherConfig(kind="prefix", command=("env", "X=1"), config_path="/c.json"),
        ),
        (
            {
                "kind": "docker",
                "cli": ["sudo", "docker"],
                "image": "img",
                "network": "publish",
                "volumes": ["/a:/b"],
                "run_args": ["--shm-size", "1g"],
                "devices": ["/dev/kfd"],
                "command": ["vllm"],
            },
            LauncherConfig(
                kind="docker",
                cli=("sudo", "docker"),
                image="img",
                network="publish",
                volumes=("/a:/b",),
                run_args=("--shm-size", "1g"),
                devices=("/dev/kfd",),
                command=("vllm",),
            ),
        ),
        (
            {
                "kind": "podman",
                "cli": ["podman"],
                "rootfs": "/srv/root",
                "network": "host",
                "volumes": ["/a:/b"],
                "run_args": ["--rm"],
                "devices": [],
                "command": ["vllm"],
            },
            LauncherConfig(
                kind="podman",
                cli=("podman",),
                rootfs="/srv/root",
                network="host",
                volumes=("/a:/b",),
                run_args=("--rm",),
                devices=(),
                command=("vllm",),
            ),
        ),
        (
            {"kind": "podman", "image": "img"},
            LauncherConfig(kind="podman", image="img"),
        ),
        (
            {
                "kind": "slurm",
                "cli": ["srun"],
                "partition": "gpu",
                "nodelist": "node1",
                "time_limit": "01:00:00",
                "cpus_per_task": 4096,
                "run_args": ["--exclusive"],
                "command": ["python"],
            },
            LauncherConfig(
                kind="slurm",
                cli=("srun",),
                partition="gpu",
                nodelist="node1",
                time_limit="01:00:00",
                cpus_per_task=4096,
                run_args=("--exclusive",),
                command=("python",),
            ),
        ),
        (
            {
                "kind": "ray",
                "cli": ["ray"],
                "start_head": True,
                "local_workers": 64,
                "head_port": 65535,
                "num_cpus": 0,
                "command": ["python"],
            },
            LauncherConfig(
                kind="ray",
                cli=("ray",),
                start_head=True,
                local_workers=64,
                head_port=65535,
                num_cpus=0,
                command=("python",),
            ),
        ),
        (
            {"kind": "ray", "address": "head:6379", "head_port": 1},
            LauncherConfig(kind="ray", address="head:6379", head_port=1),
        ),
    ],
)
def test_each_launcher_kind_takes_its_keys(table: dict[str, Any], expected: LauncherConfig) -> None:
    assert launcher(table) == expected


def test_model_platforms_and_their_refusal() -> None:
    for platform in ("cpu", "cuda", "rocm"):
        (m,) = cfg(models=[{**TINY, "platform": platform}], workloads=["text"]).models
        assert m.platform == platform
    assert error(models=[{**TINY, "platform": "tpu"}], workloads=["text"]) == (
        "models[0].platform: unknown platform 'tpu'. Did you mean 'cpu'? Choose one of: cpu, "
        "cuda, rocm"
    )


# -- workloads -----------------------------------------------------------------------------------

VISION = {"name": "v", "tiny": "vision"}


def image_size(value: object) -> tuple[int, int]:
    w = {"name": "vis", "preset": "vision", "image_size": value}
    return cfg(models=[VISION], workloads=[w]).workload("vis").image_size  # type: ignore[no-any-return]


def image_size_error(value: object) -> str:
    w = {"name": "vis", "preset": "vision", "image_size": value}
    return error(models=[VISION], workloads=[w])


def test_image_size_bounds() -> None:
    assert image_size(1) == (1, 1) and image_size([1, 1]) == (1, 1)
    assert image_size(8192) == (8192, 8192) and image_size([8192, 2]) == (8192, 2)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            [1, 2, 3],
            "workloads[0].image_size: expected [width, height], got a list of 3. Write "
            "image_size = 224 or image_size = [320, 240]",
        ),
        (
            [0, 5],
            "workloads[0].image_size[0]: 0 is out of range for an image side in pixels. Use an "
            "integer from 1 to 8,192",
        ),
        (
            8193,
            "workloads[0].image_size: 8193 is out of range for an image side in pixels. Use an "
            "integer from 1 to 8,192",
        ),
        (
            "224",
            "workloads[0].image_size: expected an image side or [width, height] in pixels, got "
            "a string '224'. Write image_size = 224 or image_size = [320, 240]",
        ),
        (
            True,
            "workloads[0].image_size: expected an image side or [width, height] in pixels, got "
            "a boolean True. Write image_size = 224 or image_size = [320, 240]",
        ),
    ],
)
def test_image_size_refusals_in_full(value: object, message: str) -> None:
    assert image_size_error(value) == message


def test_a_workload_named_by_its_preset_alone() -> None:
    (w,) = cfg(models=[TINY], workloads=[{"preset": "text", "output_tokens": 7}]).workloads
    assert (w.name, w.preset, w.output_tokens) == ("text", "text", 7)
    assert error(models=[TINY], workloads=[{"input_tokens": 5}]) == (
        "workloads[0]: a workload needs a name. Set name = one of " + ", ".join(PRESETS)
    )


def test_paths_are_paths() -> None:
    c = cfg(report_dir="out", baseline_dir="b/base")
    assert (c.report_dir, c.baseline_dir) == (Path("out"), Path("b/base"))
