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


# -- the refusals, in full ---------------------------------------------------------------------
# Each text was read against the code's intent: file (stripped here), key path, what is wrong,
# what to write instead; "did you mean" where a close name exists.

T = TINY
W = ["text"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param(
            dict(models=[{**T, "launcher": "docker"}], workloads=W),
            "models[0].launcher: expected a table, got a string. Write launcher = { "
            'kind = "docker", ... }',
            id="launcher not table",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"image": "x"}}], workloads=W),
            "models[0].launcher: a launcher needs a kind. Set kind = one of local, "
            "prefix, docker, podman, slurm, ray",
            id="launcher no kind",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "prefix"}}], workloads=W),
            "models[0].launcher: a prefix launcher needs command = [...]. E.g. command "
            '= ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]',
            id="prefix no command",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "podman"}}], workloads=W),
            "models[0].launcher: a podman launcher needs an image. E.g. image = "
            '"vllm/vllm-openai-rocm:v0.14.1" (or rootfs = DIR)',
            id="podman no image",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "docker"}}], workloads=W),
            "models[0].launcher: a docker launcher needs an image. E.g. image = "
            '"vllm/vllm-openai-rocm:v0.14.1"',
            id="docker no image",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "ray"}}], workloads=W),
            "models[0].launcher: a ray launcher needs a cluster to join. Set address = "
            '"HEAD:6379" (or RAY_ADDRESS), or start_head = true for a local head',
            id="ray no cluster",
        ),
        pytest.param(
            dict(
                models=[{**T, "launcher": {"kind": "ray", "address": "h:1", "local_workers": 2}}],
                workloads=W,
            ),
            "models[0].launcher.local_workers: local workers join a head this launcher "
            "starts. Set start_head = true too",
            id="ray local_workers",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "ray", "start_head": "yes"}}], workloads=W),
            "models[0].launcher.start_head: expected true or false, got a string. "
            "Write start_head = true",
            id="start_head str",
        ),
        pytest.param(
            dict(
                models=[{**T, "launcher": {"kind": "ray", "start_head": True, "head_port": 0}}],
                workloads=W,
            ),
            "models[0].launcher.head_port: 0 is out of range for head_port. Use an "
            "integer from 1 to 65,535",
            id="head_port 0",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "slurm", "cpus_per_task": 4097}}], workloads=W),
            "models[0].launcher.cpus_per_task: 4097 is out of range for cpus_per_task. "
            "Use an integer from 1 to 4,096",
            id="cpus_per_task 4097",
        ),
        pytest.param(
            dict(
                models=[
                    {**T, "launcher": {"kind": "ray", "start_head": True, "local_workers": 65}}
                ],
                workloads=W,
            ),
            "models[0].launcher.local_workers: 65 is out of range for local_workers. "
            "Use an integer from 0 to 64",
            id="local_workers 65",
        ),
        pytest.param(
            dict(
                models=[{**T, "launcher": {"kind": "ray", "start_head": True, "num_cpus": -1}}],
                workloads=W,
            ),
            "models[0].launcher.num_cpus: -1 is out of range for num_cpus. Use an "
            "integer from 0 to 4,096",
            id="num_cpus -1",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "ray", "address": ""}}], workloads=W),
            "models[0].launcher.address: expected a Ray address (HOST:PORT) (a "
            "non-empty string), got a string ''. Quote it",
            id="address empty",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "docker", "image": ""}}], workloads=W),
            "models[0].launcher.image: expected image (a non-empty string), got a "
            "string ''. Quote it",
            id="image empty",
        ),
        pytest.param(
            dict(models=[{**T, "launcher": {"kind": "slurm", "time_limit": 5}}], workloads=W),
            "models[0].launcher.time_limit: expected time limit (a non-empty string), "
            "got an integer 5. Quote it",
            id="time_limit int",
        ),
        pytest.param(
            dict(
                models=[{**T, "launcher": {"kind": "docker", "image": "i", "volumes": "/a:/b"}}],
                workloads=W,
            ),
            "models[0].launcher.volumes: expected a list of arguments, got a string "
            "'/a:/b'. Write [..., ...]",
            id="volumes str",
        ),
        pytest.param(
            dict(models=[{**T, "vllm_version": "latest"}], workloads=W),
            "models[0].vllm_version: 'latest' is not a version number. Write it like "
            'vllm_version = "0.14.1"',
            id="version bad",
        ),
        pytest.param(
            dict(models=[{**T, "vllm_version": 14}], workloads=W),
            "models[0].vllm_version: expected a vLLM version (a non-empty string), got "
            "an integer 14. Quote it",
            id="version int",
        ),
        pytest.param(
            dict(
                models=[{**T, "launch_prefix": ["x"], "launcher": {"kind": "local"}}], workloads=W
            ),
            "models[0].launch_prefix: both launch_prefix and launcher are set. Keep "
            "one: launcher = { kind = ... } (launch_prefix is a generic prefix)",
            id="prefix+launcher",
        ),
        pytest.param(
            dict(models=[{"name": "m"}], workloads=W),
            "models[0]: a model needs exactly one of tiny, profile or path (got 0). "
            'E.g. tiny = "dense-gqa", profile = "deepseek-v3.2" or path = "/models/x"; '
            "tiny is one of dense-gqa, moe-gqa, moe-mla, vision, vision-multi, profile "
            "one of deepseek-v3.2, kimi-k2.5, llama-3.1-405b, qwen3-vl-235b",
            id="no source",
        ),
        pytest.param(
            dict(
                models=[{"name": "m", "tiny": "dense-gqa", "profile": "deepseek-v3.2"}], workloads=W
            ),
            "models[0]: a model needs exactly one of tiny, profile or path (got 2). "
            'E.g. tiny = "dense-gqa", profile = "deepseek-v3.2" or path = "/models/x"; '
            "tiny is one of dense-gqa, moe-gqa, moe-mla, vision, vision-multi, profile "
            "one of deepseek-v3.2, kimi-k2.5, llama-3.1-405b, qwen3-vl-235b",
            id="two sources",
        ),
        pytest.param(
            dict(models=[{"path": "/m"}], workloads=W),
            "models[0].name: a model loaded from a path needs a name. Add name = "
            '"my-model" (used in test ids)',
            id="path no name",
        ),
        pytest.param(
            dict(models=["dense"], workloads=W),
            "models[0]: unknown model 'dense'. Did you mean 'dense-gqa'? Choose one "
            "of: dense-gqa, moe-gqa, moe-mla, vision, vision-multi, deepseek-v3.2, "
            "kimi-k2.5, llama-3.1-405b, qwen3-vl-235b",
            id="unknown model str",
        ),
        pytest.param(
            dict(models=[{**T, "max_num_seqs": 0}], workloads=W),
            "models[0].max_num_seqs: 0 is out of range for max_num_seqs. Use an "
            "integer from 1 to 100,000",
            id="max_num_seqs 0",
        ),
        pytest.param(
            dict(models=[{**T, "gpus": 1025}], workloads=W),
            "models[0].gpus: 1025 is out of range for GPUs per node. Use an integer "
            "from 0 to 1,024",
            id="gpus 1025",
        ),
        pytest.param(
            dict(models=[{**T, "nodes": 0}], workloads=W),
            "models[0].nodes: 0 is out of range for nodes. Use an integer from 1 to 1,024",
            id="nodes 0",
        ),
        pytest.param(
            dict(models=[{**T, "nodes": 1025}], workloads=W),
            "models[0].nodes: 1025 is out of range for nodes. Use an integer from 1 to 1,024",
            id="nodes 1025",
        ),
        pytest.param(
            dict(models=[{**T, "env": "A=1"}], workloads=W),
            'models[0].env: expected a table, got a string. Write env = { NAME = "value" }',
            id="env not table",
        ),
        pytest.param(
            dict(models=[], workloads=W),
            'models: no models given. Add at least one, e.g. models = ["dense-gqa"]',
            id="models []",
        ),
        pytest.param(
            dict(models=[T], workloads=[]),
            'workloads: no workloads given. Add at least one, e.g. workloads = ["text"]',
            id="workloads []",
        ),
        pytest.param(
            dict(models=[T, T], workloads=W),
            "models[1]: duplicate model name 'm'. Give each entry its own name",
            id="dup model",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"confidence": 0.4}]),
            "gates[0].confidence: confidence 0.4 is outside [0.5, 1): the percentile "
            "gates' bounds hold with this probability. Give e.g. confidence = 0.95 "
            "(0.99 needs more samples per percentile)",
            id="gate confidence 0.4",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"confidence": 1.0}]),
            "gates[0].confidence: confidence 1.0 is outside [0.5, 1): the percentile "
            "gates' bounds hold with this probability. Give e.g. confidence = 0.95 "
            "(0.99 needs more samples per percentile)",
            id="gate confidence 1",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"success_rate_min": 1.5}]),
            "gates[0].success_rate_min: 1.5 is out of range for a success fraction. "
            "Use a number at least 0 and at most 1",
            id="gate success 1.5",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"output_throughput_min": -1}]),
            "gates[0].output_throughput_min: -1 is out of range for a throughput "
            "floor. Use a number at least 0 and at most 1e+12",
            id="gate floor -1",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"output_throughput_min": 2e12}]),
            "gates[0].output_throughput_min: 2000000000000.0 is out of range for a "
            "throughput floor. Use a number at least 0 and at most 1e+12",
            id="gate floor 2e12",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"p99_ttft_ms_max": 0}]),
            "gates[0].p99_ttft_ms_max: 0 is out of range for a latency ceiling. Use a "
            "number above 0 and at most 1e+12",
            id="gate ceiling 0",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"p99_ttft_ms_max": 2e12}]),
            "gates[0].p99_ttft_ms_max: 2000000000000.0 is out of range for a latency "
            "ceiling. Use a number above 0 and at most 1e+12",
            id="gate ceiling 2e12",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"model": "n"}]),
            "gates[0].model: unknown model 'n'. Choose one of: m",
            id="gate model bad",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"model": "a b"}]),
            "gates[0].model: model name 'a b' cannot be used in a test id. Use "
            "letters, digits, '.', '_' and '-', starting with a letter or digit",
            id="gate model name bad",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates={"workload": "txt"}),
            "gates.workload: unknown workload 'txt'. Did you mean 'text'? Choose one of: text",
            id="gate workload",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"workers": 0}),
            "client.workers: expected 'auto' or a whole number of processes >= 1, got "
            '0. Write workers = "auto", or e.g. workers = 2',
            id="workers 0",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"workers": True}),
            "client.workers: expected 'auto' or a whole number of processes >= 1, got "
            'True. Write workers = "auto", or e.g. workers = 2',
            id="workers true",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"workers": "many"}),
            "client.workers: expected 'auto' or a whole number of processes >= 1, got "
            "'many'. Write workers = \"auto\", or e.g. workers = 2",
            id="workers str",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"cpu_layout": "x"}),
            "client.cpu_layout: cpu_layout 'x' is neither 'auto', 'shared' nor "
            "'SERVER/CLIENT' CPU lists (e.g. '0/1' or '0-6/7'). Write 'auto', 'shared' "
            "or e.g. '0/1'",
            id="cpu_layout bad",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"metrics_interval_s": 0.04}),
            "client.metrics_interval_s: 0.04 is out of range for seconds between "
            "/metrics samples. Use a number at least 0.05 and at most 60",
            id="metrics 0.04",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"metrics_interval_s": 61}),
            "client.metrics_interval_s: 61 is out of range for seconds between "
            "/metrics samples. Use a number at least 0.05 and at most 60",
            id="metrics 61",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"cpu_fraction": 0}),
            "client.cpu_fraction: 0 is out of range for a fraction of one core. Use a "
            "number above 0 and at most 1",
            id="cpu_fraction 0",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"schedule_lag_p99_ms": 2e6}),
            "client.schedule_lag_p99_ms: 2000000.0 is out of range for a lag in ms. "
            "Use a number above 0 and at most 1e+06",
            id="lag 2e6",
        ),
        pytest.param(
            dict(models=[T], workloads=W, requests_per_level=[1]),
            "requests_per_level: expected a table of concurrency -> requests, got a "
            'list. Write requests_per_level = { "1" = 20, "1000" = 1000 }',
            id="rpl not table",
        ),
        pytest.param(
            dict(models=[T], workloads=W, requests_per_level={"0": 5}),
            "requests_per_level.0: keys must be concurrency levels. Use quoted "
            'integers, e.g. "500" = 1000',
            id="rpl key 0",
        ),
        pytest.param(
            dict(models=[T], workloads=W, requests_per_level={"100001": 200000}),
            "requests_per_level.100001: keys must be concurrency levels. Use quoted "
            'integers, e.g. "500" = 1000',
            id="rpl key big",
        ),
        pytest.param(
            dict(models=[T], workloads=W, requests_per_level={True: 5}),
            "requests_per_level.True: keys must be concurrency levels. Use quoted "
            'integers, e.g. "500" = 1000',
            id="rpl key bool",
        ),
        pytest.param(
            dict(models=[T], workloads=W, requests_per_level={"8": 7}),
            "requests_per_level.8: 7 requests never reach 8 concurrent users. Use at "
            "least 8 requests for this level",
            id="rpl few",
        ),
        pytest.param(
            dict(models=[T], workloads=W, requests_per_level={"1": 0}),
            "requests_per_level.1: 0 is out of range for a request count. Use an "
            "integer from 1 to 10,000,000",
            id="rpl 0 req",
        ),
        pytest.param(
            dict(models=[T], workloads=W, runs=1001),
            "runs: 1001 is out of range for runs per level. Use an integer from 1 to 1,000",
            id="runs 1001",
        ),
        pytest.param(
            dict(models=[T], workloads=W, min_requests=0),
            "min_requests: 0 is out of range for minimum requests per level. Use an "
            "integer from 1 to 10,000,000",
            id="min_requests 0",
        ),
        pytest.param(
            dict(models=[T], workloads=W, warmup_requests=-1),
            "warmup_requests: -1 is out of range for warm-up requests. Use an integer "
            "from 0 to 10,000,000",
            id="warmup -1",
        ),
        pytest.param(
            dict(models=[T], workloads=W, min_duration_s=-1),
            "min_duration_s: -1 is out of range for a minimum level duration in "
            "seconds. Use a number at least 0 and at most 86400",
            id="min_duration -1",
        ),
        pytest.param(
            dict(models=[T], workloads=W, min_duration_s=86401),
            "min_duration_s: 86401 is out of range for a minimum level duration in "
            "seconds. Use a number at least 0 and at most 86400",
            id="min_duration 86401",
        ),
        pytest.param(
            dict(models=[T], workloads=W, report_dir=""),
            "report_dir: expected a folder path (a non-empty string), got a string ''. Quote it",
            id="report_dir empty",
        ),
        pytest.param(
            dict(models=[T], workloads=W, baseline_dir=3),
            "baseline_dir: expected a folder path (a non-empty string), got an integer 3. Quote it",
            id="baseline_dir int",
        ),
        pytest.param(
            dict(models=[{**T, "workloads": ["vision"]}], workloads=["text", "vision"]),
            "models[0].workloads[0]: model 'm' cannot take images but workload "
            "'vision' sends them. Remove the workload from this model or use a vision "
            "model",
            id="cannot images",
        ),
        pytest.param(
            dict(models=[T], workloads=["vision"]),
            "models[0]: model 'm' can serve none of the workloads (vision). Add a text "
            "workload or set this model's workloads",
            id="serve none",
        ),
        pytest.param(
            dict(models=[{**T, "workloads": ["txt"]}], workloads=W),
            "models[0].workloads[0]: unknown workload 'txt'. Did you mean 'text'? "
            "Choose one of: text",
            id="unknown wl of model",
        ),
        pytest.param(
            dict(models=[T], workloads=[{"name": "text", "image_size": 64}]),
            "workloads[0].image_size: image_size is set but this workload sends no "
            "images. Set images_per_request (or use a vision preset), or remove "
            "image_size",
            id="image_size no images",
        ),
        pytest.param(
            dict(models=[T], workloads=[{"name": "text", "images_per_request": 1}]),
            "workloads[0]: images need the chat endpoint (completions cannot carry "
            'images). Set endpoint = "chat" or images_per_request = 0',
            id="images not chat",
        ),
        pytest.param(
            dict(
                models=[{"name": "v", "tiny": "vision"}],
                workloads=[{"name": "vision", "images_per_request": 1001}],
            ),
            "workloads[0].images_per_request: 1001 is out of range for images per "
            "request. Use an integer from 0 to 1,000",
            id="images 1001",
        ),
        pytest.param(
            dict(models=[T], workloads=[{"name": "text", "output_tokens": 0}]),
            "workloads[0].output_tokens: 0 is out of range for output tokens. Use an "
            "integer from 1 to 10,000,000",
            id="output 0",
        ),
        pytest.param(
            dict(models=[T], workloads=[{"name": "w", "preset": "txt"}]),
            "workloads[0].preset: unknown workload preset 'txt'. Did you mean 'text'? "
            "Choose one of: text, vision, vision-3-images, vision-5-images, "
            "long-context-2k, long-context-4k, long-context-8k, long-output",
            id="preset bad",
        ),
        pytest.param(
            dict(models=[T], workloads=[{"name": "a b", "preset": "text"}]),
            "workloads[0].name: workload name 'a b' cannot be used in a test id. Use "
            "letters, digits, '.', '_' and '-', starting with a letter or digit",
            id="wl name bad",
        ),
        pytest.param(
            dict(models=[T], workloads=W, loadd={}),
            "loadd: unknown key. Did you mean 'load'? Known keys here: models, "
            "workloads, concurrency, runs, multiplier, min_requests, "
            "requests_per_level, warmup_requests, min_duration_s, report_dir, "
            "baseline_dir, gates, client, ab, baseline, history, load, slo, "
            "guardrails, suite_floor; remove or rename it",
            id="top unknown",
        ),
    ],
)
def test_refusals_in_full(
    doc: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert error(**doc) == message


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"kind": "ray", "start_head": True, "head_port": 65536},
            "models[0].launcher.head_port: 65536 is out of range for head_port. Use an integer "
            "from 1 to 65,535",
        ),
        (
            {"kind": "ray", "start_head": True, "num_cpus": 4097},
            "models[0].launcher.num_cpus: 4097 is out of range for num_cpus. Use an integer "
            "from 0 to 4,096",
        ),
        (
            {"kind": "slurm", "cpus_per_task": 0},
            "models[0].launcher.cpus_per_task: 0 is out of range for cpus_per_task. Use an "
            "integer from 1 to 4,096",
        ),
    ],
)
def test_launcher_bounds_refused(table: dict[str, Any], message: str) -> None:
    assert launcher_error(table) == message


def test_launcher_bounds_accepted() -> None:
    assert launcher({"kind": "slurm", "cpus_per_task": 1}).cpus_per_task == 1
    low = launcher({"kind": "ray", "start_head": True, "local_workers": 0, "num_cpus": 4096})
    assert (low.local_workers, low.num_cpus, low.start_head) == (0, 4096, True)
    assert launcher({"kind": "ray", "start_head": False, "address": "h:1"}).start_head is False


def test_a_workload_named_after_a_preset_takes_that_preset() -> None:
    (w,) = cfg(models=[TINY], workloads=[{"name": "long-output", "output_tokens": 1}]).workloads
    assert (w.name, w.preset, w.output_tokens) == ("long-output", "long-output", 1)
    (x,) = cfg(models=[TINY], workloads=[{"name": "text", "input_tokens": 10_000_000}]).workloads
    assert (x.name, x.input_tokens) == ("text", 10_000_000)


def test_ray_address_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    assert launcher({"kind": "ray"}) == LauncherConfig(kind="ray")


@pytest.mark.parametrize(
    ("doc", "read", "value"),
    [
        (dict(models=[{**T, "max_num_seqs": 1}]), lambda c: c.models[0].max_num_seqs, 1),
        (
            dict(models=[{**T, "max_num_seqs": 100_000}]),
            lambda c: c.models[0].max_num_seqs,
            100_000,
        ),
        (dict(models=[{**T, "gpus": 0}]), lambda c: c.models[0].gpus, 0),
        (dict(models=[{**T, "gpus": 1024}]), lambda c: c.models[0].gpus, 1024),
        (dict(models=[{**T, "nodes": 1024}]), lambda c: c.models[0].nodes, 1024),
        (dict(models=[T]), lambda c: (c.models[0].nodes, c.models[0].gpus), (1, None)),
        (
            dict(models=[T]),
            lambda c: (c.models[0].launcher, c.models[0].vllm_version, c.models[0].platform),
            (None, None, None),
        ),
        (
            dict(models=[T]),
            lambda c: (c.models[0].extra_args, c.models[0].launch_prefix, dict(c.models[0].env)),
            ((), (), {}),
        ),
        (
            dict(models=[T]),
            lambda c: (c.models[0].workloads, c.models[0].concurrency),
            (None, None),
        ),
        (
            dict(models=[{**T, "vllm_version": " v0.14.1 "}]),
            lambda c: c.models[0].vllm_version,
            "0.14.1",
        ),
        (dict(gates=[{"confidence": 0.5}]), lambda c: c.gates[0].limits, (("confidence", 0.5),)),
        (
            dict(gates=[{"confidence": 0.999}]),
            lambda c: c.gates[0].limits,
            (("confidence", 0.999),),
        ),
        (
            dict(gates=[{"success_rate_min": 1}]),
            lambda c: c.gates[0].limits,
            (("success_rate_min", 1.0),),
        ),
        (
            dict(gates=[{"output_throughput_min": 0, "p99_ttft_ms_max": 1e12}]),
            lambda c: c.gates[0].limits,
            (("output_throughput_min", 0.0), ("p99_ttft_ms_max", 1e12)),
        ),
        (dict(gates=[{"output_throughput_min": 1e12}]), lambda c: c.gates[0].limits[0][1], 1e12),
        (
            dict(gates={"model": "m", "concurrency": 4}),
            lambda c: (c.gates[0].model, c.gates[0].concurrency),
            ("m", (4,)),
        ),
        (
            dict(gates={"workload": "text"}),
            lambda c: (c.gates[0].workload, c.gates[0].model),
            ("text", None),
        ),
        (dict(gates=[]), lambda c: c.gates, ()),
        (dict(client={"workers": "auto"}), lambda c: c.client.workers, "auto"),
        (dict(client={"workers": 1}), lambda c: c.client.workers, 1),
        (dict(client={"metrics_interval_s": 0.05}), lambda c: c.client.metrics_interval_s, 0.05),
        (dict(client={"metrics_interval_s": 60}), lambda c: c.client.metrics_interval_s, 60.0),
        (dict(client={"cpu_fraction": 1}), lambda c: c.client.cpu_fraction, 1.0),
        (dict(client={"schedule_lag_p99_ms": 1e6}), lambda c: c.client.schedule_lag_p99_ms, 1e6),
        (dict(client={"cpu_layout": "shared"}), lambda c: c.client.cpu_layout, "shared"),
        (
            dict(requests_per_level={"1": 1, "100000": 100_000}),
            lambda c: c.requests_per_level,
            ((1, 1), (100_000, 100_000)),
        ),
        (dict(requests_per_level={"8": 8}), lambda c: c.requests_for(8), 8),
        (dict(runs=1000), lambda c: c.runs, 1000),
        (dict(min_requests=1), lambda c: c.min_requests, 1),
        (dict(warmup_requests=0), lambda c: c.warmup_requests, 0),
        (dict(min_duration_s=0), lambda c: c.min_duration_s, 0.0),
        (dict(min_duration_s=86_400), lambda c: c.min_duration_s, 86_400.0),
        (
            dict(workloads=[{"name": "text", "input_tokens": 1, "output_tokens": 10_000_000}]),
            lambda c: (c.workloads[0].input_tokens, c.workloads[0].output_tokens),
            (1, 10_000_000),
        ),
        (
            dict(workloads=[{"name": "text", "images_per_request": 0}]),
            lambda c: c.workloads[0].images_per_request,
            0,
        ),
        (
            dict(workloads=[{"name": "text", "endpoint": "chat"}]),
            lambda c: c.workloads[0].endpoint,
            "chat",
        ),
    ],
)
def test_values_at_the_bounds_are_accepted(doc: dict[str, Any], read: Any, value: object) -> None:
    assert read(cfg(**{"models": [T], "workloads": W, **doc})) == value


def test_images_up_to_the_limit_on_a_vision_model() -> None:
    w = {"name": "vis", "preset": "vision", "images_per_request": 1000}
    assert cfg(models=[VISION], workloads=[w]).workload("vis").images_per_request == 1000


def test_defaults_without_the_keys() -> None:
    from pytest_llmperf.config import DEFAULT_GATES
    from pytest_llmperf.config.defaults import DEFAULT_MODELS, DEFAULT_WORKLOADS

    bare = cfg()
    assert (bare.models, bare.workloads, bare.gates) == (
        DEFAULT_MODELS,
        DEFAULT_WORKLOADS,
        DEFAULT_GATES,
    )
    # with models: the text and vision presets, and no gates but the built-in floor
    mine = cfg(models=[T, VISION])
    assert [w.name for w in mine.workloads] == ["text", "vision"]
    assert mine.gates == () and mine.source == "llmperf.toml"
    assert mine.min_duration_s == bare.min_duration_s
    assert (mine.report_dir, mine.baseline_dir) == (Path(".llmperf"), Path("baselines"))


def test_a_document_that_is_not_a_table() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config([1], source="llmperf.toml")  # type: ignore[arg-type]
    assert str(err.value) == (
        "llmperf.toml: expected a table, got a list. Write it as a TOML table ([...])"
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param(
            dict(models=[{"name": "m", "path": ""}], workloads=W),
            "models[0].path: expected a model directory (a non-empty string), got a "
            "string ''. Quote it",
            id="path empty",
        ),
        pytest.param(
            dict(models=[{"name": "m", "tiny": "dense"}], workloads=W),
            "models[0].tiny: unknown tiny architecture 'dense'. Did you mean "
            "'dense-gqa'? Choose one of: dense-gqa, moe-gqa, moe-mla, vision, "
            "vision-multi",
            id="tiny unknown",
        ),
        pytest.param(
            dict(models=[{**T, "env": {"A": 1}}], workloads=W),
            "models[0].env.A: environment values must be strings, got an integer 1. "
            'Quote the value, e.g. VLLM_CPU_KVCACHE_SPACE = "4"',
            id="env value int",
        ),
        pytest.param(
            dict(models=[{**T, "extra_args": "--x"}], workloads=W),
            "models[0].extra_args: expected a list of arguments, got a string '--x'. "
            "Write [..., ...]",
            id="extra_args str",
        ),
        pytest.param(
            dict(models=[{**T, "launch_prefix": "x"}], workloads=W),
            "models[0].launch_prefix: expected a list of arguments, got a string 'x'. "
            "Write [..., ...]",
            id="launch_prefix str",
        ),
        pytest.param(
            dict(models=[{**T, "workloads": "text"}], workloads=W),
            "models[0].workloads: expected a list of workload names, got a string "
            "'text'. Write [..., ...]",
            id="model workloads str",
        ),
        pytest.param(
            dict(models=[{"name": 3, "tiny": "dense-gqa"}], workloads=W),
            "models[0].name: expected model name (a non-empty string), got an integer 3. Quote it",
            id="model name int",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"confidence": 1.5}]),
            "gates[0].confidence: 1.5 is out of range for a confidence. Use a number "
            "at least 0 and at most 1",
            id="confidence 1.5",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"workload": "a b"}]),
            "gates[0].workload: workload name 'a b' cannot be used in a test id. Use "
            "letters, digits, '.', '_' and '-', starting with a letter or digit",
            id="gate workload name",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates=[{"concurrency": [0]}]),
            "gates[0].concurrency[0]: 0 is out of range for a concurrency level. Use "
            "an integer from 1 to 100,000",
            id="gate concurrency 0",
        ),
        pytest.param(
            dict(models=[T], workloads=W, gates="x"),
            "gates: expected a list of gate tables, got a string 'x'. Write [..., ...]",
            id="gate tables str",
        ),
        pytest.param(
            dict(models=[T], workloads=W, client={"cpu_layout": 3}),
            "client.cpu_layout: expected a CPU layout (a non-empty string), got an "
            "integer 3. Quote it",
            id="cpu_layout int",
        ),
        pytest.param(
            dict(models="dense-gqa", workloads=W),
            "models: expected a list of models, got a string 'dense-gqa'. Write [..., ...]",
            id="models str",
        ),
        pytest.param(
            dict(models=[T], workloads="text"),
            "workloads: expected a list of workloads, got a string 'text'. Write [..., ...]",
            id="workloads str",
        ),
        pytest.param(
            dict(models=[T], workloads=[{"preset": "txt"}]),
            "workloads[0].preset: unknown workload preset 'txt'. Did you mean 'text'? "
            "Choose one of: text, vision, vision-3-images, vision-5-images, "
            "long-context-2k, long-context-4k, long-context-8k, long-output",
            id="workload preset key",
        ),
        pytest.param(
            dict(models=[T], workloads=[{"name": "text", "endpoint": 3}]),
            "workloads[0].endpoint: expected endpoint (a non-empty string), got an "
            "integer 3. Quote it",
            id="workload endpoint",
        ),
        pytest.param(
            dict(models=[T], workloads=W, baseline={"alpha": 2}),
            "baseline.alpha: 2 is out of range for alpha (the gate's family-wise "
            "false-alarm rate). Use a number above 0 and at most 0.5",
            id="baseline bad",
        ),
        pytest.param(
            dict(models=[T], workloads=W, suite_floor={"fraction": 0}),
            "suite_floor.fraction: 0 is out of range for the suite floor fraction. Use "
            "a number above 0 and at most 10",
            id="suite_floor bad",
        ),
        pytest.param(
            dict(models=[{**T, "concurrency": []}], workloads=W),
            "models[0].concurrency: no concurrency levels given. List at least one, "
            "e.g. [1, 16, 64]",
            id="model concurrency",
        ),
        pytest.param(
            dict(models=[T], workloads=W, concurrency="x"),
            "concurrency: expected a concurrency level (an integer), got a string 'x'. "
            "Write a whole number",
            id="top concurrency",
        ),
        pytest.param(
            dict(models=[T], workloads=W, multiplier=True),
            "multiplier: expected the request multiplier (a number), got a boolean "
            "True. Write a number",
            id="multiplier bool",
        ),
    ],
)
def test_more_refusals_in_full(doc: dict[str, Any], message: str) -> None:
    assert error(**doc) == message


def test_the_default_source_and_one_run() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"runs": 0})
    assert str(err.value) == (
        "<config>: runs: 0 is out of range for runs per level. Use an integer from 1 to 1,000"
    )
    assert cfg(models=[T], workloads=W, runs=1).runs == 1
    assert cfg(models=[T], workloads=W, runs=7).runs == 7


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            dict(models=[T], workloads=["text", "text"]),
            "workloads[1]: duplicate workload name 'text'. Give each entry its own name",
        ),
        (
            dict(models=[T], workloads=["vision", "vision-3-images"]),
            "models[0]: model 'm' can serve none of the workloads (vision, vision-3-images). "
            "Add a text workload or set this model's workloads",
        ),
        (
            dict(models=[{**T, "launcher": {"kind": "kubernetes"}}], workloads=W),
            "models[0].launcher.kind: unknown launcher kind 'kubernetes'. Choose one of: "
            "local, prefix, docker, podman, slurm, ray",
        ),
        (
            dict(models=[{**T, "launcher": {"kind": "docker", "image": "i", "network": "x"}}]),
            "models[0].launcher.network: unknown network 'x'. Choose one of: host, publish",
        ),
    ],
)
def test_names_kinds_and_networks_refused_in_full(doc: dict[str, Any], message: str) -> None:
    assert error(**{"workloads": W, **doc}) == message


def test_models_without_workloads_get_the_presets_not_the_shipped_sizes() -> None:
    from pytest_llmperf.config.defaults import DEFAULT_WORKLOADS

    mine = cfg(models=[T, VISION]).workloads
    assert [(w.name, w.input_tokens, w.output_tokens) for w in mine] == [
        ("text", PRESETS["text"].input_tokens, PRESETS["text"].output_tokens),
        ("vision", PRESETS["vision"].input_tokens, PRESETS["vision"].output_tokens),
    ]
    assert mine != DEFAULT_WORKLOADS  # the shipped default sizes its prompts for the CPU run


def test_only_a_leading_v_is_dropped_from_a_version() -> None:
    assert error(models=[{**T, "vllm_version": "X0.14.1"}], workloads=W) == (
        "models[0].vllm_version: 'X0.14.1' is not a version number. Write it like "
        'vllm_version = "0.14.1"'
    )


def test_an_environment_variable_without_a_name() -> None:
    # before 2 December this was refused as "environment values must be strings, got a
    # string 'x'", which pointed at the value
    assert error(models=[{**T, "env": {"": "x"}}], workloads=W) == (
        "models[0].env.: an environment variable needs a name, got ''. Name it, e.g. "
        'VLLM_CPU_KVCACHE_SPACE = "4"'
    )
    assert error(models=[{**T, "env": {"A": "1", "B": 2}}], workloads=W) == (
        "models[0].env.B: environment values must be strings, got an integer 2. Quote the "
        'value, e.g. VLLM_CPU_KVCACHE_SPACE = "4"'
    )
