"""Environment fingerprint: stable id, readable diff, secrets kept out, weights hash cached."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from pytest_llmperf.plan.platforms import Accelerators
from pytest_llmperf.verdicts import fingerprint as fp_mod
from pytest_llmperf.verdicts.fingerprint import (
    CONTEXT_FIELDS,
    FIELDS,
    Fingerprint,
    context_diff,
    diff,
    gather,
    weights_sha256,
)

MI325X = Fingerprint(
    platform="rocm",
    accelerator_model="AMD Instinct MI325X",
    accelerator_count=8,
    driver="6.10.5",
    runtime_version="6.4.2",
    vllm_version="0.14.1",
    model_name="meta-llama/Llama-3.1-405B-Instruct-FP8",
    launch_argv=("vllm", "serve", "--tensor-parallel-size", "8"),
    launch_env=(("VLLM_ROCM_USE_AITER", "1"),),
    workload='{"input_tokens":500,"output_tokens":100}',
)


def test_round_trip_through_json() -> None:
    text = json.dumps(MI325X.to_dict())
    back = Fingerprint.from_dict(json.loads(text))
    assert back == MI325X
    assert back.id() == MI325X.id()
    assert json.loads(text)["workload"] == {"input_tokens": 500, "output_tokens": 100}


def test_id_is_stable_and_sensitive() -> None:
    assert MI325X.id() == Fingerprint.from_dict(MI325X.to_dict()).id()
    assert len(MI325X.id()) == 16
    assert dataclasses.replace(MI325X, driver="7.0").id() != MI325X.id()
    assert dataclasses.replace(MI325X, accelerator_count=4).id() != MI325X.id()
    # Context and minor driver/runtime updates keep the id (and so the baseline's file name).
    for change in (
        {"driver": "6.12"},
        {"runtime_version": "6.3.1"},
        {"plugin_version": "9.9.9", "os_platform": "Linux-6.8.0-x86_64", "hostname": "box2"},
    ):
        assert dataclasses.replace(MI325X, **change).id() == MI325X.id(), change


def test_diff_names_key_fields_and_honours_ignore() -> None:
    other = dataclasses.replace(MI325X, driver="7.0.1", vllm_version="0.15.0")
    assert diff(MI325X, other) == {
        "driver": ("6.10.5", "7.0.1"),
        "vllm_version": ("0.14.1", "0.15.0"),
    }
    assert diff(MI325X, other, ignore=("driver",)) == {"vllm_version": ("0.14.1", "0.15.0")}
    assert diff(MI325X, MI325X) == {}


def test_context_is_never_a_difference_but_is_reported_as_a_change() -> None:
    other = dataclasses.replace(
        MI325X, plugin_version="0.2.0", os_platform="Linux-6.8", hostname="b", driver="6.12.1"
    )
    assert diff(MI325X, other) == {}
    changed = context_diff(MI325X, other)
    assert set(changed) == {*CONTEXT_FIELDS, "driver"}
    assert changed["driver"] == ("6.10.5", "6.12.1")
    # A key field the user allowed to differ is a change too, not silence.
    gpus = dataclasses.replace(MI325X, accelerator_count=4)
    assert context_diff(MI325X, gpus) == {}
    assert context_diff(MI325X, gpus, ignore=("accelerator_count",)) == {
        "accelerator_count": (8, 4)
    }


def test_diff_rejects_unknown_ignore_field() -> None:
    with pytest.raises(ValueError, match="known fields"):
        diff(MI325X, MI325X, ignore=("gpu",))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({}, "platform"),
        ({"platform": "cpu", "accelerator_count": "8"}, "accelerator_count"),
        ({"platform": "cpu", "launch_argv": "vllm serve"}, "launch_argv"),
        ({"platform": "cpu", "launch_env": {"A": 1}}, "launch_env"),
        ({"platform": "cpu", "driver": 550}, "driver"),
    ],
)
def test_from_dict_rejects_wrong_types(data: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Fingerprint.from_dict(data)


def test_from_dict_ignores_fields_from_a_newer_plugin() -> None:
    assert Fingerprint.from_dict({"platform": "cpu", "numa_layout": "2x48"}).platform == "cpu"


def test_gather_redacts_secrets_and_records_versions(tmp_path: Path) -> None:
    acc = Accelerators("cpu", None, 0, None, None, "AMD EPYC 9654")
    fp = gather(
        model_name="tiny",
        launch_argv=["vllm", "serve", "tiny"],
        launch_env={"HF_TOKEN": "hf_secret", "VLLM_CPU_KVCACHE_SPACE": "4"},
        workload={"output_tokens": 16, "input_tokens": 64},
        accelerators=acc,
        weights_cache=tmp_path / "cache.json",
    )
    assert dict(fp.launch_env) == {"HF_TOKEN": "<redacted>", "VLLM_CPU_KVCACHE_SPACE": "4"}
    assert "hf_secret" not in json.dumps(fp.to_dict())
    assert fp.workload == '{"input_tokens":64,"output_tokens":16}'
    assert fp.host_cpu == "AMD EPYC 9654"
    assert fp.plugin_version and fp.os_platform
    assert set(fp.to_dict()) == set(FIELDS)


def test_weights_hash_is_cached_by_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model-00001.safetensors").write_bytes(b"a" * 1000)
    (model / "model-00002.safetensors").write_bytes(b"b" * 1000)
    (model / "config.json").write_text("{}")
    cache = tmp_path / "cache.json"
    first = weights_sha256(model, cache)
    assert first is not None and len(first) == 64

    calls: list[Path] = []
    real = fp_mod._hash_file
    monkeypatch.setattr(fp_mod, "_hash_file", lambda p: calls.append(p) or real(p))
    assert weights_sha256(model, cache) == first
    assert calls == []  # served from the cache

    shard = model / "model-00002.safetensors"
    shard.write_bytes(b"c" * 1000)
    os.utime(shard, ns=(1, 1))
    changed = weights_sha256(model, cache)
    assert changed != first
    assert calls == [shard]


def test_weights_hash_survives_a_corrupt_cache(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.safetensors").write_bytes(b"x")
    cache = tmp_path / "cache.json"
    cache.write_text("{torn")
    assert weights_sha256(model, cache) is not None
    assert weights_sha256(tmp_path / "empty-dir", cache) is None


def test_workload_must_be_json_text() -> None:
    with pytest.raises(ValueError, match="canonical_json"):
        Fingerprint(platform="cpu", workload="500 in / 100 out")
