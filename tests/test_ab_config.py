"""The [ab] section: variants in the config, chosen on the command line, planned per variant.

No vLLM here: parsing, clear errors, and ``pytest --llmperf-plan`` sessions (which start
nothing) to show the variants reach the engine's launch planner as two servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.config.ab import select

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "ab-cpu.toml"

BASE = {
    "models": [{"name": "dense", "tiny": "dense-gqa"}],
    "workloads": [{"name": "t", "preset": "text", "input_tokens": 64, "output_tokens": 32}],
}


def ab(**section: object) -> dict[str, object]:
    section.setdefault("model", "dense")
    section.setdefault("variants", [{"name": "a"}, {"name": "b", "max_num_seqs": 2}])
    return {**BASE, "ab": section}


def test_variants_apply_only_what_they_set() -> None:
    cfg = parse_config(
        ab(
            variants=[
                {"name": "old", "venv": "/opt/vllm031", "vllm_version": "0.31.0"},
                {"name": "new", "extra_args": ["--enable-chunked-prefill"], "env": {"X": "1"}},
            ],
            levels=[16, 1],
            runs=4,
        )
    )
    assert cfg.ab is not None and (cfg.ab.a, cfg.ab.b) == ("old", "new")
    assert cfg.ab.levels == (1, 16) and cfg.ab.runs == 4
    a, b = cfg.ab.pair(cfg.models[0])
    assert a.name == "dense-old" and b.name == "dense-new"
    assert a.launch_prefix == (
        "/opt/vllm031/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server",
    )
    assert b.launch_prefix == () and b.extra_args == ("--enable-chunked-prefill",)
    assert dict(b.env) == {"X": "1"} and dict(a.env) == {}
    assert cfg.ab.declared_version("old") == "0.31.0"


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"model": "nope"}, "ab.model"),
        ({"variants": [{"name": "a"}]}, "an A/B needs two"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "duplicate variant"),
        ({"variants": [{"name": "a"}, {"name": "b", "max_num_seq": 2}]}, "max_num_seqs"),
        ({"variants": [{"name": "a"}, {"name": "b", "vllm_version": "latest"}]}, "version"),
        ({"b": "a"}, "both 'a'"),
        ({"runs": 1}, "ab.runs"),
        ({"blocks": "random"}, "interleaved"),
        ({"metrics": ["tokens"]}, "ab.metrics"),
        (
            {"variants": [{"name": "a", "venv": "/v", "launch_prefix": ["x"]}, {"name": "b"}]},
            "both launch_prefix and venv",
        ),
    ],
)
def test_bad_sections_say_what_and_where(section: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(ab(**section))


def test_command_line_selects_two_declared_variants() -> None:
    cfg = parse_config(ab(variants=[{"name": "a"}, {"name": "b"}, {"name": "c"}]))
    assert cfg.ab is not None
    chosen = select(cfg.ab, ["c", "a"])
    assert (chosen.a, chosen.b) == ("c", "a")
    with pytest.raises(ConfigError, match="Did you mean 'c'"):
        select(cfg.ab, ["a", "cc"])
    with pytest.raises(ConfigError, match="Name two of a, b, c"):
        select(cfg.ab, ["a"])


def test_the_example_parses() -> None:
    import tomllib

    cfg = parse_config(tomllib.loads(EXAMPLE.read_text()), source=str(EXAMPLE))
    assert cfg.ab is not None and cfg.ab.variant(cfg.ab.b).max_num_seqs == 4


def test_plan_shows_both_variants_as_servers(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", llmperf=EXAMPLE.read_text())
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--llmperf", "--llmperf-plan", "--llmperf-vllm-version", "0.32.0"
    )
    text = res.stdout.str()
    assert "== dense-default" in text and "== dense-seqs4" in text
    assert "--max-num-seqs 4" in text


def test_unknown_variant_on_the_command_line_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", llmperf=EXAMPLE.read_text())
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--llmperf", "--llmperf-ab", "default,seqs5", "--llmperf-plan"
    )
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "Did you mean 'seqs4'" in res.stderr.str()


def test_llmperf_ab_without_a_section_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", llmperf='models = ["dense-gqa"]\n')
    res = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--llmperf", "--llmperf-ab", "a,b"
    )
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "has no [ab] section" in res.stderr.str()
