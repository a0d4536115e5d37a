"""Open-loop load modes and SLOs from config, command line and marker; the capacity search.

The inner pytest sessions run against the load generator's measuring instrument (known TTFT and
ITL), because what is checked is that the schedule, the goodput and the client-bound verdict
reach results.json and the verdict; the real-vLLM figures come from benchmarks/open_loop.py and
tests/test_load_modes_vllm.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.config.load import LoadModes, with_rates
from pytest_llmperf.session.capacity import search_capacity
from pytest_llmperf.session.marker import case_from_marker

BASE = {"models": [{"name": "dense-gqa", "tiny": "dense-gqa"}], "workloads": ["text"]}


def cfg(**extra: Any) -> Any:
    return parse_config({**BASE, **extra}, source="llmperf.toml")


# -- config ------------------------------------------------------------------------------------


def test_rates_make_one_open_loop_case_each() -> None:
    c = cfg(load={"rates": [4, 0.5], "arrival": "constant", "max_concurrency": 8})
    cases = c.cases()
    assert [x.id for x in cases] == ["dense-gqa-text-r0.5", "dense-gqa-text-r4"]
    assert [x.load.rate for x in cases] == [0.5, 4.0]  # type: ignore[union-attr]
    assert {x.load.arrival for x in cases} == {"constant"}  # type: ignore[union-attr]
    assert [x.requests for x in cases] == [10, 40]  # ceil(rate x 10 s), at least 10
    assert {x.concurrency for x in cases} == {8}


def test_without_rates_the_matrix_stays_closed_loop() -> None:
    c = cfg()
    assert c.load == LoadModes() and all(x.load is None for x in c.cases())
    assert c.cases()[0].id.endswith("-c1")


@pytest.mark.parametrize(
    ("load", "where", "what"),
    [
        ({"rates": []}, "load.rates", "no rates given"),
        ({"rates": [0]}, "load.rates[0]", "out of range"),
        ({"rates": ["fast"]}, "load.rates[0]", "request rate"),
        ({"rates": [1, 1]}, "load.rates", "listed twice"),
        ({"rates": [1], "arrival": "bursty"}, "load.arrival", "arrival"),
        ({"arrival": "constant"}, "load", "no rates are given"),
        ({"rates": [1], "max_concurrency": 0}, "load.max_concurrency", "out of range"),
        ({"rates": [1], "rate": 2}, "load.rate", "Did you mean 'rates'"),
    ],
)
def test_bad_load_tables_name_the_key(load: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg(load=load)
    text = str(err.value)
    assert where in text and what in text, text


@pytest.mark.parametrize(
    ("slo", "where", "what"),
    [
        ({"ttft_ms": -1}, "slo.ttft_ms", "out of range"),
        ({"min_goodput_fraction": 0.9}, "slo", "no SLO is set"),
        ({"ttft_ms": 100, "min_goodput_fraction": 1.5}, "slo.min_goodput_fraction", "range"),
        ({"tbt_ms": 5}, "slo.tbt_ms", "unknown key"),
    ],
)
def test_bad_slo_tables_name_the_key(slo: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg(slo=slo)
    text = str(err.value)
    assert where in text and what in text, text


def test_slo_table() -> None:
    s = cfg(slo={"ttft_ms": 200, "tpot_ms": 20, "min_goodput_fraction": 0.95}).slo
    assert s.limits() == {"ttft_ms": 200.0, "tpot_ms": 20.0}
    assert s.min_goodput_fraction == 0.95


def test_command_line_rates_replace_the_configured_ones() -> None:
    c = with_rates(
        cfg(load={"rates": [1], "max_concurrency": 4}), ["2", "8"], source="--llmperf-rate"
    )
    assert c.load.rates == (2.0, 8.0) and c.load.max_concurrency == 4
    with pytest.raises(ConfigError, match="not a request rate"):
        with_rates(c, ["2", "x"], source="--llmperf-rate")
    assert with_rates(c, None, source="--llmperf-rate") is c


def test_marker_rate() -> None:
    case = case_from_marker(cfg(), {"rate": 3, "arrival": "constant", "requests": 12})
    assert case.load is not None and case.load.rate == 3.0 and case.load.arrival == "constant"
    assert case.id == "dense-gqa-text-r3" and case.requests == 12
    assert case_from_marker(cfg(), {"rate": 3}).requests == 30
    with pytest.raises(ConfigError, match="no rate is given"):
        case_from_marker(cfg(), {"max_concurrency": 4})
    with pytest.raises(ConfigError, match="out of range"):
        case_from_marker(cfg(), {"rate": -1})


# -- the capacity search (pure) ----------------------------------------------------------------


def knee(capacity: float) -> Any:
    """A server whose goodput fraction is 1 up to ``capacity`` req/s, then falls off."""
    calls: list[float] = []

    def measure(rate: float) -> float:
        calls.append(rate)
        return 1.0 if rate <= capacity else capacity / rate / 2

    measure.calls = calls  # type: ignore[attr-defined]
    return measure


def test_search_climbs_then_bisects_to_the_knee() -> None:
    m = knee(13.0)
    res = search_capacity(m, target=0.9, start_rate=1.0, tolerance=0.05, max_steps=12)
    assert [s.rate for s in res.steps[:5]] == [1, 2, 4, 8, 16]
    assert res.capacity_rate is not None and 13.0 / 1.05 <= res.capacity_rate <= 13.0
    assert res.lowest_failing_rate is not None and res.lowest_failing_rate > 13.0
    assert res.lowest_failing_rate / res.capacity_rate <= 1.05
    assert all(s.passed == (s.rate <= 13.0) for s in res.steps)
    assert res.bounded and "capacity at goodput fraction >= 0.9" in res.lines()[-1]


def test_search_descends_when_the_start_fails() -> None:
    res = search_capacity(knee(0.3), target=0.9, start_rate=4.0, tolerance=0.5, max_steps=10)
    assert [s.rate for s in res.steps[:5]] == [4, 2, 1, 0.5, 0.25]
    assert res.capacity_rate is not None and res.capacity_rate <= 0.3


def test_search_stops_at_an_untrusted_step() -> None:
    res = search_capacity(
        lambda r: 1.0 if r < 5 else None, target=0.9, start_rate=1.0, max_steps=10
    )
    assert res.capacity_rate == 4.0 and not res.bounded
    assert "client could not hold the schedule" in res.note
    assert res.steps[-1].fraction is None and not res.steps[-1].passed


def test_search_spends_at_most_max_steps() -> None:
    res = search_capacity(lambda r: 1.0, target=0.9, start_rate=1.0, max_steps=3)
    assert len(res.steps) == 3 and res.capacity_rate == 4.0 and not res.bounded


# -- pytest sessions against the measuring instrument ------------------------------------------

TOML = """\
warmup_requests = 2
[client]
loop_lag_p99_ms = 60000
{client}
[[models]]
name = "dense-gqa"
tiny = "dense-gqa"

[[workloads]]
name = "text"
preset = "text"
input_tokens = 16
output_tokens = 8

[load]
rates = [20, 40]
arrival = "constant"
requests = 40

[slo]
ttft_ms = {ttft_slo}
e2el_ms = 5000
min_goodput_fraction = 0.9
"""


def session(pytester: pytest.Pytester, *extra: str, ttft_slo: int = 1000, client: str = "") -> Any:
    from pytest_llmperf.testing.instrument import running_instrument

    pytester.path.joinpath("llmperf.toml").write_text(TOML.format(ttft_slo=ttft_slo, client=client))
    with running_instrument() as inst:
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--llmperf",
            "--llmperf-endpoint",
            inst.base_url,
            "--llmperf-served-model",
            "instrument?ttft=0.05&itl=0.005",
            *extra,
            timeout=600,
        )
    data = json.loads(Path(pytester.path, ".llmperf", "results.json").read_text())
    return result, data


def test_open_loop_session_reports_rates_lag_and_goodput(pytester: pytest.Pytester) -> None:
    result, data = session(pytester)
    assert result.ret == 0, result.stdout.str()
    cases = {c["case_id"]: c for c in data["cases"]}
    assert set(cases) == {"dense-gqa-text-r20", "dense-gqa-text-r40"}
    for rate in (20, 40):
        c = cases[f"dense-gqa-text-r{rate}"]
        assert c["environment"]["load"] == {
            "mode": "open", "rate": rate, "arrival": "constant", "max_concurrency": None
        }  # fmt: skip
        (run,) = c["runs"]
        load = run["detail"]["load"]
        assert load["requested_rate"] == rate
        assert load["scheduled_rate"] == pytest.approx(rate, rel=1e-6)  # constant gaps
        assert load["achieved_rate"] == pytest.approx(rate, rel=0.1)
        assert load["schedule_lag_p99_ms"] >= 0
        assert run["metrics"]["schedule_lag_p99_ms"] == load["schedule_lag_p99_ms"]
        # TTFT 50 ms + 7 x 5 ms on the instrument: every request meets 1 s / 5 s
        assert run["metrics"]["goodput_fraction"] == 1.0
        assert run["detail"]["goodput"]["good"] == 40
        gate = next(g for g in c["gates"] if g["name"] == "goodput_fraction_min")
        assert gate["passed"] and gate["limit"] == 0.9
    assert "20/s" in result.stdout.str()  # the terminal table shows the rate as the level
    import jsonschema

    from pytest_llmperf.report import schema

    jsonschema.validate(data, schema() if callable(schema) else schema)  # rate ids, cap 0


def test_goodput_gate_fails_the_case(pytester: pytest.Pytester) -> None:
    result, data = session(pytester, "--llmperf-rate", "20", ttft_slo=10)
    assert result.ret == 1
    out = result.stdout.str()
    assert "goodput_fraction >= 0.9" in out and "FAIL" in out, out
    (c,) = data["cases"]
    assert c["case_id"] == "dense-gqa-text-r20"  # the command line replaced [load] rates
    assert c["runs"][0]["metrics"]["goodput_fraction"] == 0.0
    assert c["runs"][0]["detail"]["goodput"]["violations"]["ttft_ms"] == 40


def test_a_run_that_misses_its_schedule_is_client_bound(pytester: pytest.Pytester) -> None:
    result, data = session(
        pytester, "--llmperf-rate", "40", client="schedule_lag_p99_ms = 0.000001"
    )
    assert result.ret == 1
    (c,) = data["cases"]
    assert c["client_bound"] is True
    assert any("schedule lag p99" in r for r in c["client_reasons"]), c["client_reasons"]
