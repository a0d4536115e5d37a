"""How tests/data/baseline-v1-hand-written.json was made: by the hand-written serialiser that
verdicts/baseline.py had before its records became msgspec structs (main a4c1f42), so that
tests/test_baseline_records.py can show today's reader loads such a file and writes it back
byte for byte. Run against that code, e.g.::

    mkdir /tmp/old && git archive a4c1f42 pytest_llmperf | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old python tests/data/make_baseline_v1_hand_written.py OUT.json
"""

import sys

from pytest_llmperf.verdicts import baseline as bl
from pytest_llmperf.verdicts import fingerprint as fpm

assert not hasattr(bl, "to_record"), "run this against the old code (see above)"
env = fpm.Fingerprint(
    platform="cpu",
    accelerator_model=None,
    accelerator_count=0,
    driver=None,
    runtime_version=None,
    vllm_version="0.32.0",
    torch_version="2.9.0+cpu",
    model_name=None,
    launch_argv=("vllm", "serve"),
    launch_env=fpm.redact_env({"HF_TOKEN": "hf_planted_secret", "VLLM_CPU_KVCACHE_SPACE": "4"}),
    plugin_version="0.1.0",
    host_cpu="AMD EPYC 9654 96-Core Processor",
    os_platform="Linux-6.8.0-x86_64-with-glibc2.39",
    hostname="ci-runner-7",
    cpu_layout="server 0-7, client 8-9",
)
case_fp = fpm.Fingerprint(
    platform="cpu",
    model_name="tiny:dense-gqa",
    model_revision="r1",
    weights_sha256="ab" * 32,
    launch_argv=("--max-num-seqs", "16", "--enforce-eager"),
    launch_env=fpm.redact_env({"API_KEY": "sk-planted", "OMP_NUM_THREADS": "8"}),
    workload=fpm.canonical_json({"name": "text", "input_tokens": 64, "output_tokens": 16}),
)
empty_wl = fpm.Fingerprint(platform="cpu", model_name="tiny:moe", workload="{}")
runs = {
    "test_perf[dense-gqa-text-c16]": [
        {
            "output_throughput": 101.5,
            "p99_e2el_ms": 812.25,
            "success_rate": 1.0,
            "p99_ttft_ms": float("nan"),
        },
        {
            "output_throughput": 99.0,
            "p99_e2el_ms": 790.0,
            "success_rate": 1.0,
            "p99_ttft_ms": float("nan"),
        },
        {"output_throughput": 1e-7, "p99_e2el_ms": 1e300, "success_rate": 1},
    ],
    "test_perf[moe-text-r2.5]": [
        {"request_throughput": 2.5, "mean_itl_s": 0.01, "colour_score": 3}
    ],
}
b = bl.from_runs(
    "smoke é",
    env,
    runs,
    case_fingerprints={
        "test_perf[dense-gqa-text-c16]": case_fp,
        "test_perf[moe-text-r2.5]": empty_wl,
    },
    direction_of=lambda n: "higher" if n == "colour_score" else bl.metric_direction(n),
    created="2026-12-02T16:20:00+00:00",
)
cases = dict(b.cases)
c = cases["test_perf[moe-text-r2.5]"]
m = dict(c.metrics)
m["request_throughput"] = bl.replace(
    m["request_throughput"], published={"mean": 2.5, "n": 5, "ci95_half_width": 0.25}
)
cases["test_perf[moe-text-r2.5]"] = bl.replace(c, metrics=m, note="published by hand: ünïcode ✓")
b = bl.replace(b, cases=cases, note="recorded by the old, hand-written serialiser (main a4c1f42)")
bl.save(b, sys.argv[1])
print(bl.load(sys.argv[1]).fingerprint_id)
