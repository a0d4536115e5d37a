"""Gamma arrivals and ramp-up as config keys, marker arguments and load-generator specs: the
parsed values, every refusal, the steady-state rate figures of a ramped run, and a session on
the scripted instrument whose sends follow the ramp (the schedule itself: test_arrivals.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.config.load import with_rates
from pytest_llmperf.core.records import RequestRecord
from pytest_llmperf.loadgen.spec import LoadSpec
from pytest_llmperf.metrics.goodput import schedule_figures
from pytest_llmperf.session.marker import case_from_marker

BASE = {"models": [{"name": "dense-gqa", "tiny": "dense-gqa"}], "workloads": ["text"]}


def cfg(**extra: Any) -> Any:
    return parse_config({**BASE, **extra}, source="llmperf.toml")


def test_gamma_and_ramp_keys_reach_every_case() -> None:
    c = cfg(load={"rates": [2, 8], "arrival": "gamma", "burstiness": 0.5, "ramp_up_s": 4})
    loads = [x.load for x in c.cases()]
    assert [(x.rate, x.arrival, x.burstiness, x.ramp_up_s) for x in loads] == [  # type: ignore[union-attr]
        (2.0, "gamma", 0.5, 4.0),
        (8.0, "gamma", 0.5, 4.0),
    ]
    plain = cfg(load={"rates": [2], "arrival": "gamma"}).cases()[0].load
    assert plain.burstiness == 1.0 and plain.ramp_up_s == 0.0  # type: ignore[union-attr]
    # the command line replaces the rates, not the shape
    again = with_rates(c, ["3"], source="--llmperf-rate")
    assert again.load.rates == (3.0,) and again.load.burstiness == 0.5
    assert again.load.ramp_up_s == 4.0 and again.load.arrival == "gamma"


@pytest.mark.parametrize(
    ("load", "where", "what"),
    [
        ({"rates": [1], "burstiness": 0.5}, "load.burstiness", "arrival is 'poisson'"),
        ({"rates": [1], "arrival": "constant", "burstiness": 2}, "load.burstiness", "gamma"),
        ({"rates": [1], "arrival": "gamma", "burstiness": 0}, "load.burstiness", "out of range"),
        ({"rates": [1], "arrival": "gamma", "burstiness": 1e3}, "load.burstiness", "range"),
        ({"rates": [1], "arrival": "gamma", "burstiness": "x"}, "load.burstiness", "gamma shape"),
        ({"rates": [1], "ramp_up_s": -1}, "load.ramp_up_s", "out of range"),
        ({"ramp_up_s": 5}, "load", "ramp_up_s shape an open loop, but no rates"),
        ({"arrival": "gamma", "burstiness": 2}, "load", "arrival, burstiness shape"),
        ({"rates": [1], "burstyness": 2}, "load.burstyness", "Did you mean 'burstiness'"),
        ({"rates": [1], "ramp_up": 2}, "load.ramp_up", "Did you mean 'ramp_up_s'"),
    ],
)
def test_bad_shapes_name_the_key(load: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg(load=load)
    text = str(err.value)
    assert where in text and what in text, text


def test_marker_gamma_and_ramp() -> None:
    case = case_from_marker(cfg(), {"rate": 4, "arrival": "gamma", "burstiness": 0.25})
    assert case.load is not None
    assert (case.load.arrival, case.load.burstiness, case.load.ramp_up_s) == ("gamma", 0.25, 0.0)
    ramped = case_from_marker(cfg(), {"rate": 4, "ramp_up_s": 2.5})
    assert ramped.load is not None and ramped.load.ramp_up_s == 2.5
    assert ramped.load.arrival == "poisson"
    # the config's shape is the marker's default
    c = cfg(load={"rates": [1], "arrival": "gamma", "burstiness": 3, "ramp_up_s": 1})
    inherited = case_from_marker(c, {"rate": 4}).load
    assert inherited is not None and (inherited.burstiness, inherited.ramp_up_s) == (3.0, 1.0)
    with pytest.raises(ConfigError, match="no rate is given"):
        case_from_marker(cfg(), {"burstiness": 0.5})
    with pytest.raises(ConfigError, match="no rate is given"):
        case_from_marker(cfg(), {"ramp_up_s": 3})
    with pytest.raises(ConfigError, match="burstiness shapes gamma arrivals"):
        case_from_marker(cfg(), {"rate": 4, "arrival": "constant", "burstiness": 0.5})
    with pytest.raises(ConfigError, match="ramp_up_s"):
        case_from_marker(cfg(), {"rate": 4, "ramp_up_s": -2})


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"mode": "open", "rate": 1.0, "burstiness": 0.5}, "burstiness shapes gamma"),
        ({"mode": "open", "rate": 1.0, "arrival": "gamma", "burstiness": 0.0}, "burstiness"),
        ({"mode": "open", "rate": 1.0, "ramp_up_s": -1.0}, "ramp_up_s must be >= 0"),
        ({"mode": "closed", "ramp_up_s": 2.0}, "a closed loop has no rate"),
        ({"mode": "open", "rate": 1.0, "arrival": "weibull"}, "'poisson', 'constant' or 'gamma'"),
        ({"metrics_interval_s": 0.0}, "metrics_interval_s must be > 0"),
        ({"metrics_interval_s": math.inf}, "metrics_interval_s must be > 0"),
    ],
)
def test_load_spec_refuses_bad_shapes(kw: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        LoadSpec(**kw)


def _rec(i: int, intended: float, start: float) -> RequestRecord:
    return RequestRecord(
        index=i,
        intended_start=intended,
        start=start,
        first_token=start + 0.05,
        end=start + 0.1,
        chunk_times=(start + 0.05,),
        chunk_tokens=(1,),
        prompt_tokens=16,
        completion_tokens=1,
        expected_output_tokens=1,
        status=200,
    )


def test_a_ramped_runs_rates_count_the_steady_part() -> None:
    from pytest_llmperf.loadgen.arrivals import arrival_offsets

    offsets = arrival_offsets(200, 10.0, "constant", ramp_up_s=6.0)
    records = [_rec(i, 100 + o, 100 + o + 0.001) for i, o in enumerate(offsets)]
    whole = schedule_figures(records, 10.0)
    steady = schedule_figures(records, 10.0, steady_from_s=6.0)
    assert whole.scheduled_rate < 9.0  # the ramp's 3 lost seconds
    assert steady.scheduled_rate == pytest.approx(10.0, rel=1e-9)
    assert steady.achieved_rate == pytest.approx(10.0, rel=1e-9)
    assert steady.backlog_at_schedule_end == whole.backlog_at_schedule_end
    # a ramp longer than the run: too few steady requests, the whole run is counted
    assert schedule_figures(records, 10.0, steady_from_s=1e4) == whole


TOML = """\
runs = 1
warmup_requests = 1
[client]
loop_lag_p99_ms = 60000
schedule_lag_p99_ms = 60000
[[models]]
name = "dense-gqa"
tiny = "dense-gqa"

[[workloads]]
name = "text"
preset = "text"
input_tokens = 16
output_tokens = 8

[load]
rates = [20]
arrival = "gamma"
burstiness = 4
ramp_up_s = 1.0
requests = 40
"""


def test_a_ramped_gamma_session_sends_on_its_schedule(pytester: pytest.Pytester) -> None:
    from pytest_llmperf.loadgen.arrivals import arrival_offsets
    from pytest_llmperf.testing.instrument import running_instrument

    pytester.path.joinpath("llmperf.toml").write_text(TOML)
    with running_instrument() as inst:
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--llmperf",
            "--llmperf-endpoint",
            inst.base_url,
            "--llmperf-served-model",
            "instrument?ttft=0.05&itl=0.02",
            timeout=300,
        )
    # passed, or failed as client-bound by late reads on a busy host: the schedule is the point
    outcome = result.parseoutcomes()
    assert outcome.get("passed", 0) + outcome.get("failed", 0) == 1, result.stdout.str()
    report = Path(pytester.path, ".llmperf")
    (c,) = json.loads((report / "results.json").read_text())["cases"]
    assert c["environment"]["load"] == {
        "mode": "open", "rate": 20, "arrival": "gamma", "max_concurrency": None,
        "burstiness": 4, "ramp_up_s": 1.0,
    }  # fmt: skip
    load = c["runs"][0]["detail"]["load"]
    assert (load["arrival"], load["burstiness"], load["ramp_up_s"]) == ("gamma", 4, 1.0)
    # the records' due times are the engine's schedule (run 1: seed 0), ramp included
    (path,) = (report / "records").glob("*.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    due = sorted(r["intended_start"] for r in rows if "intended_start" in r)
    want = arrival_offsets(40, 20.0, "gamma", 0, burstiness=4, ramp_up_s=1.0)
    assert [d - due[0] for d in due] == pytest.approx(want, abs=1e-6)
    # the rates count the steady part, after the ramp
    steady = [o for o in want if o >= 1.0]
    assert load["scheduled_rate"] == pytest.approx(
        (len(steady) - 1) / (steady[-1] - steady[0]), rel=1e-6
    )


# -- rate sweeps from the measured capacity ------------------------------------------------


def test_capacity_fractions_make_one_case_each_after_the_rates() -> None:
    c = cfg(load={"rates": [2], "capacity_fractions": [1.0, 0.25], "capacity_concurrency": 8})
    cases = c.cases()
    assert [x.id for x in cases] == [
        "dense-gqa-text-r2",
        "dense-gqa-text-cap0.25",
        "dense-gqa-text-cap1",
    ]
    cap = cases[1].load
    assert cap is not None and not cap.resolved and cap.capacity_fraction == 0.25
    assert cap.capacity_concurrency == 8 and cases[0].load.resolved  # type: ignore[union-attr]
    only = cfg(load={"capacity_fractions": [0.5]})
    assert only.load.open_loop and only.load.capacity_concurrency == 64
    assert [x.id for x in only.cases()] == ["dense-gqa-text-cap0.5"]


@pytest.mark.parametrize(
    ("load", "where", "what"),
    [
        ({"capacity_fractions": []}, "load.capacity_fractions", "no fractions given"),
        ({"capacity_fractions": [0]}, "load.capacity_fractions[0]", "out of range"),
        ({"capacity_fractions": [11]}, "load.capacity_fractions[0]", "out of range"),
        ({"capacity_fractions": [0.5, 0.5]}, "load.capacity_fractions", "listed twice"),
        ({"capacity_fractions": "0.5"}, "load.capacity_fractions", "fractions"),
        ({"capacity_concurrency": 8}, "load.capacity_concurrency", "no capacity_fractions"),
        (
            {"capacity_fractions": [1], "capacity_concurrency": 0},
            "load.capacity_concurrency",
            "out of range",
        ),
        ({"capacity_fraction": [1]}, "load.capacity_fraction", "Did you mean"),
    ],
)
def test_bad_capacity_keys_name_the_key(load: dict[str, Any], where: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg(load=load)
    text = str(err.value)
    assert where in text and what in text, text


def test_command_line_capacity_fractions() -> None:
    c = with_rates(cfg(load={"rates": [1]}), ["capacity*0.5", "4"], source="--llmperf-rate")
    assert c.load.rates == (4.0,) and c.load.capacity_fractions == (0.5,)
    assert [x.id for x in c.cases()][-1] == "dense-gqa-text-cap0.5"
    kept = cfg(load={"capacity_fractions": [1], "capacity_concurrency": 16})
    again = with_rates(kept, ["Capacity*0.25"], source="--llmperf-rate")
    assert again.load.capacity_fractions == (0.25,) and again.load.capacity_concurrency == 16
    assert again.load.rates == ()
    with pytest.raises(ConfigError, match="not a request rate"):
        with_rates(kept, ["capacity*x"], source="--llmperf-rate")


def test_rate_option_help_names_the_capacity_form(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = " ".join(result.stdout.str().split())  # help lines wrap at the terminal width
    assert "--llmperf-rate=1,4" in text and "capacity*F" in text, text
    # what the help offers is what the option parses
    c = with_rates(cfg(), ["capacity*0.5", "capacity*1"], source="--llmperf-rate")
    assert c.load.capacity_fractions == (0.5, 1.0)


def test_marker_capacity_fraction() -> None:
    case = case_from_marker(cfg(), {"capacity_fraction": 0.5, "capacity_concurrency": 4})
    assert case.id == "dense-gqa-text-cap0.5" and case.load is not None
    assert (case.load.capacity_fraction, case.load.capacity_concurrency) == (0.5, 4)
    with pytest.raises(ConfigError, match="both set the rate"):
        case_from_marker(cfg(), {"rate": 1, "capacity_fraction": 0.5})
    with pytest.raises(ConfigError, match="no capacity_fraction"):
        case_from_marker(cfg(), {"rate": 1, "capacity_concurrency": 4})
    with pytest.raises(ConfigError, match="out of range"):
        case_from_marker(cfg(), {"capacity_fraction": 0})


CAPACITY_TOML = """\
runs = 1
warmup_requests = 1
min_requests = 24
[client]
loop_lag_p99_ms = 60000
schedule_lag_p99_ms = 60000
[[models]]
name = "dense-gqa"
tiny = "dense-gqa"

[[workloads]]
name = "text"
preset = "text"
input_tokens = 16
output_tokens = 8

[load]
capacity_fractions = [0.5]
capacity_concurrency = 4
arrival = "constant"
requests = 24
"""


def test_a_capacity_fraction_runs_at_that_share_of_the_measured_capacity(
    pytester: pytest.Pytester,
) -> None:
    """On the scripted instrument (TTFT 50 ms, 7 gaps of 20 ms: about 0.19 s per request),
    four requests in flight give about 21 requests/s; the fraction's case runs at half what
    the closed-loop case measured, and both cases are in results.json."""
    from pytest_llmperf.testing.instrument import running_instrument

    pytester.path.joinpath("llmperf.toml").write_text(CAPACITY_TOML)
    with running_instrument() as inst:
        result = pytester.runpytest_subprocess(
            "-p",
            "no:cacheprovider",
            "--llmperf",
            "--llmperf-endpoint",
            inst.base_url,
            "--llmperf-served-model",
            "instrument?ttft=0.05&itl=0.02",
            timeout=300,
        )
    data = json.loads(Path(pytester.path, ".llmperf", "results.json").read_text())
    cases = {c["case_id"]: c for c in data["cases"]}
    assert set(cases) == {"dense-gqa-text-c4", "dense-gqa-text-cap0.5"}, result.stdout.str()
    measured = cases["dense-gqa-text-c4"]["runs"][0]["metrics"]["request_throughput"]
    assert 10 < measured < 25  # 4 / 0.19 s at most; less on a busy host
    frac = cases["dense-gqa-text-cap0.5"]
    load = frac["runs"][0]["detail"]["load"]
    assert load["capacity_request_throughput"] == pytest.approx(measured)
    assert load["requested_rate"] == pytest.approx(round(0.5 * measured, 4))
    assert load["capacity_fraction"] == 0.5 and load["capacity_concurrency"] == 4
    assert load["scheduled_rate"] == pytest.approx(load["requested_rate"], rel=1e-6)
    # the fingerprint names the fraction, not the nightly-changing rate
    assert frac["environment"]["load"] == {
        "mode": "open", "arrival": "constant", "max_concurrency": None,
        "capacity_fraction": 0.5, "capacity_concurrency": 4,
    }  # fmt: skip
    assert "0.5xcap" in result.stdout.str()
