"""Every optional ``[ab]`` key reaches ``ABConfig``, and each refusal names its key.

Pure parsing (no vLLM, no sessions): ``config.ab.parse_ab`` through ``parse_config``.
"""

from __future__ import annotations

import pytest

from pytest_llmperf.config import ConfigError, parse_config

BASE = {
    "models": [{"name": "dense", "tiny": "dense-gqa"}],
    "workloads": [
        {"name": "t", "preset": "text", "input_tokens": 64, "output_tokens": 32},
        {"name": "u", "preset": "text", "input_tokens": 32, "output_tokens": 16},
    ],
}
VARIANTS = [{"name": "a"}, {"name": "b", "max_num_seqs": 2}, {"name": "c"}]


def ab(**section: object) -> dict[str, object]:
    section.setdefault("model", "dense")
    section.setdefault("variants", VARIANTS)
    return {**BASE, "ab": section}


def test_every_optional_key_is_carried_through() -> None:
    cfg = parse_config(
        ab(
            a="c",
            b="a",
            workload="u",
            levels=[4, 1],
            runs=3,
            extra_blocks=0,
            blocks="fresh",
            metrics=["p99_ttft_ms", "output_throughput"],
            tolerance=0.2,
            tolerances={"p99_ttft_ms": 0.5, "output_throughput": 0.01},
            alpha=0.1,
            requests=40,
            matrix=True,
        )
    )
    got = cfg.ab
    assert got is not None
    assert (got.a, got.b, got.workload, got.levels) == ("c", "a", "u", (1, 4))
    assert (got.runs, got.extra_blocks, got.blocks) == (3, 0, "fresh")
    assert got.metrics == ("p99_ttft_ms", "output_throughput")
    assert got.tolerance == 0.2 and got.alpha == 0.1 and got.requests == 40
    assert got.tolerances == (("p99_ttft_ms", 0.5), ("output_throughput", 0.01))
    assert got.matrix is True
    assert [v.name for v in got.variants] == ["a", "b", "c"]


def test_unset_keys_keep_their_defaults() -> None:
    cfg = parse_config(ab())
    got = cfg.ab
    assert got is not None
    assert (got.a, got.b, got.workload, got.levels, got.requests) == ("a", "b", None, None, None)
    assert (got.tolerances, got.matrix, got.blocks) == ((), False, "interleaved")


DROP = object()  # a key the test removes from the section


@pytest.mark.parametrize(
    ("section", "where", "what", "todo"),
    [
        ({"model": DROP}, "ab", "needs the model", "add model = 'dense'"),
        ({"variants": DROP}, "ab", "needs its variants", "add [[ab.variants]] tables"),
        ({"a": "b", "b": "b"}, "ab.b", "a and b are both 'b'", "name two different variants"),
        ({"a": "z"}, "ab.a", "'z'", "a, b, c"),
        ({"workload": "v"}, "ab.workload", "'v'", "t, u"),
        ({"metrics": []}, "ab.metrics", "no metrics", "name at least one of"),
        ({"metrics": ["p99_ttft_ms", "x"]}, "ab.metrics[1]", "'x'", "p99_ttft_ms"),
        ({"tolerances": 0.1}, "ab.tolerances", "expected a table", "p99_ttft_ms = 0.1"),
        ({"tolerances": {"x": 0.1}}, "ab.tolerances.x", "'x'", "metric"),
        ({"tolerances": {"p99_ttft_ms": 11}}, "ab.tolerances.p99_ttft_ms", "11", ""),
        ({"tolerance": -0.1}, "ab.tolerance", "-0.1", ""),
        ({"alpha": 0}, "ab.alpha", "0", ""),
        ({"extra_blocks": -1}, "ab.extra_blocks", "-1", ""),
        ({"requests": 0}, "ab.requests", "0", ""),
        ({"matrix": "yes"}, "ab.matrix", "expected true or false", "write matrix = true"),
    ],
)
def test_each_refusal_names_its_key(
    section: dict[str, object], where: str, what: str, todo: str
) -> None:
    raw = ab(**section)
    table = raw["ab"]
    assert isinstance(table, dict)
    for key in [k for k, v in section.items() if v is DROP]:
        del table[key]
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    text = str(err.value)
    assert where in text and what in text and todo.lower() in text.lower(), text
