"""``[load]`` and ``[slo]`` parsing (``config.load``): the boundaries, the defaults and the
full error texts that mutation testing found unchecked (docs/mutation.md, config/load).

The defaults matter beyond the dataclasses: the capacity search builds ``OpenLoad(rate,
arrival, cap)`` and relies on the plain schedule (no ramp, shape 1), and a case's fingerprint
keeps only the load fields that differ from these defaults (``session.engine``), so a changed
default would change every open-loop baseline's fingerprint.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmperf.config import ConfigError, parse_config
from pytest_llmperf.config.load import (
    DEFAULT_CAPACITY_CONCURRENCY,
    DEFAULT_DURATION_S,
    LoadModes,
    OpenLoad,
    Slo,
    with_rates,
)

BASE = {"models": [{"name": "dense-gqa", "tiny": "dense-gqa"}], "workloads": ["text"]}


def cfg(**extra: Any) -> Any:
    return parse_config({**BASE, **extra}, source="llmperf.toml")


def error(**extra: Any) -> str:
    with pytest.raises(ConfigError) as err:
        cfg(**extra)
    return str(err.value)


# -- defaults ----------------------------------------------------------------------------------


def test_a_config_without_load_or_slo_gets_the_closed_loop_defaults() -> None:
    c = cfg()
    assert (DEFAULT_DURATION_S, DEFAULT_CAPACITY_CONCURRENCY) == (10.0, 64)
    assert vars(c.load) == {
        "rates": (),
        "arrival": "poisson",
        "max_concurrency": None,
        "duration_s": 10.0,
        "requests": None,
        "burstiness": 1.0,
        "ramp_up_s": 0.0,
        "capacity_fractions": (),
        "capacity_concurrency": 64,
    }
    assert not c.load.open_loop and c.load.loads() == ()
    assert vars(c.slo) == dict.fromkeys(
        ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms", "min_goodput_fraction")
    )
    assert not c.slo.any and c.slo.limits() == {}


def test_open_load_defaults_are_the_plain_schedule_the_capacity_search_sends() -> None:
    # session.capacity builds OpenLoad(rate, arrival, max_concurrency) and nothing else
    assert vars(OpenLoad(2.0, "constant", 4)) == {
        "rate": 2.0,
        "arrival": "constant",
        "max_concurrency": 4,
        "burstiness": 1.0,
        "ramp_up_s": 0.0,
        "capacity_fraction": None,
        "capacity_concurrency": 64,
        "capacity_rps": None,
    }
    assert OpenLoad(2.0).arrival == "poisson" and OpenLoad(2.0).max_concurrency is None


def test_a_rate_below_one_is_resolved_and_a_capacity_fraction_is_not() -> None:
    assert OpenLoad(0.5).resolved and OpenLoad(1e-3).resolved
    assert not OpenLoad(0.0, capacity_fraction=0.5).resolved
    loads = cfg(load={"rates": [0.25], "capacity_fractions": [2]}).load.loads()
    assert [(x.rate, x.resolved, x.label) for x in loads] == [
        (0.25, True, "r0.25"),
        (0.0, False, "cap2"),
    ]


def test_requests_per_run() -> None:
    modes = LoadModes(rates=(2.5,), duration_s=3.0)
    assert modes.requests_for(2.5) == 10  # ceil(7.5), raised to the floor of 10
    assert modes.requests_for(4.5) == 14  # ceil(13.5)
    assert LoadModes(duration_s=1.0, requests=3).requests_for(100.0) == 3
    c = cfg(load={"rates": [2], "requests": 25, "duration_s": 2.5})
    assert (c.load.requests, c.load.duration_s) == (25, 2.5)
    assert [x.requests for x in c.cases()] == [25]
    assert [x.requests for x in cfg(load={"rates": [8], "duration_s": 2.5}).cases()] == [20]


# -- [slo] ---------------------------------------------------------------------------------------


def test_every_slo_limit_is_read_and_reported() -> None:
    s = cfg(slo={"ttft_ms": 200, "tpot_ms": 20, "itl_ms": 50, "e2el_ms": 4000}).slo
    assert s.limits() == {"ttft_ms": 200.0, "tpot_ms": 20.0, "itl_ms": 50.0, "e2el_ms": 4000.0}
    assert s.min_goodput_fraction is None  # no goodput gate unless it is set
    assert Slo(itl_ms=5.0).limits() == {"itl_ms": 5.0} and Slo(itl_ms=5.0).any
    assert Slo(e2el_ms=9.0).limits() == {"e2el_ms": 9.0} and Slo(e2el_ms=9.0).any
    assert cfg(slo={"e2el_ms": 1e7, "min_goodput_fraction": 0}).slo.min_goodput_fraction == 0.0


def test_slo_refusals_in_full() -> None:
    assert error(slo={"ttft_ms": 0}) == (
        "llmperf.toml: slo.ttft_ms: 0 is out of range for a limit in ms. "
        "Use a number above 0 and at most 1e+07"
    )
    assert error(slo={"e2el_ms": 1.5e7}) == (
        "llmperf.toml: slo.e2el_ms: 15000000.0 is out of range for a limit in ms. "
        "Use a number above 0 and at most 1e+07"
    )
    assert cfg(slo={"ttft_ms": 0.5}).slo.ttft_ms == 0.5
    assert error(slo={"itl_ms": 5, "min_goodput_fraction": 1.01}) == (
        "llmperf.toml: slo.min_goodput_fraction: 1.01 is out of range for a fraction of "
        "requests. Use a number at least 0 and at most 1"
    )
    assert error(slo={"min_goodput_fraction": 0.5}) == (
        "llmperf.toml: slo: min_goodput_fraction gates on requests meeting the SLOs, but no SLO "
        "is set. Set at least one of ttft_ms, tpot_ms, itl_ms, e2el_ms"
    )


# -- [load] boundaries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("load", "field", "value"),
    [
        ({"rates": [1e5]}, "rates", (1e5,)),
        ({"rates": [1e-6]}, "rates", (1e-6,)),
        ({"rates": [1], "arrival": "gamma", "burstiness": 100}, "burstiness", 100.0),
        ({"rates": [1], "arrival": "gamma", "burstiness": 0.01}, "burstiness", 0.01),
        ({"rates": [1], "ramp_up_s": 0}, "ramp_up_s", 0.0),
        ({"rates": [1], "ramp_up_s": 0.5}, "ramp_up_s", 0.5),
        ({"rates": [1], "ramp_up_s": 86400}, "ramp_up_s", 86400.0),
        ({"rates": [1], "duration_s": 86400}, "duration_s", 86400.0),
        ({"rates": [1], "duration_s": 0.5}, "duration_s", 0.5),
        ({"rates": [1], "max_concurrency": 1}, "max_concurrency", 1),
        ({"rates": [1], "requests": 1}, "requests", 1),
        ({"capacity_fractions": [10]}, "capacity_fractions", (10.0,)),
        ({"capacity_fractions": [1], "capacity_concurrency": 1}, "capacity_concurrency", 1),
        ({"rates": [4, 1, 2]}, "rates", (1.0, 2.0, 4.0)),
        ({"capacity_fractions": [1, 0.5]}, "capacity_fractions", (0.5, 1.0)),
    ],
)
def test_bounds_that_are_accepted(load: dict[str, Any], field: str, value: object) -> None:
    assert getattr(cfg(load=load).load, field) == value


@pytest.mark.parametrize(
    ("load", "message"),
    [
        (
            {"rates": [1.5e5]},
            "load.rates[0]: 150000.0 is out of range for a request rate (requests/s). "
            "Use a number above 0 and at most 100000",
        ),
        (
            {"rates": ["fast"]},
            "load.rates[0]: expected a request rate (requests/s) (a number), got a string "
            "'fast'. Write a number",
        ),
        (
            {"rates": "1"},
            "load.rates: expected a list of request rates, got a string '1'. Write [..., ...]",
        ),
        (
            {"capacity_fractions": "0.5"},
            "load.capacity_fractions: expected a list of fractions of the measured capacity, "
            "got a string '0.5'. Write [..., ...]",
        ),
        (
            {"capacity_fractions": [1], "capacity_concurrency": 0},
            "load.capacity_concurrency: 0 is out of range for the closed-loop level whose "
            "throughput is the capacity. Use an integer from 1 to 100,000",
        ),
        (
            {"rates": [1], "arrival": "bursty"},
            "load.arrival: unknown arrival process 'bursty'. Choose one of: poisson, "
            "constant, gamma",
        ),
        (
            {"rates": [1], "arrival": "gamma", "burstiness": 100.5},
            "load.burstiness: 100.5 is out of range for a gamma shape (the gaps' CoV is "
            "1/sqrt(burstiness); 1 is Poisson). Use a number at least 0.01 and at most 100",
        ),
        (
            {"rates": [1], "ramp_up_s": 86400.5},
            "load.ramp_up_s: 86400.5 is out of range for seconds over which the rate climbs "
            "linearly from 0. Use a number at least 0 and at most 86400",
        ),
        (
            {"rates": [1], "duration_s": 0},
            "load.duration_s: 0 is out of range for seconds of schedule per run. Use a number "
            "above 0 and at most 86400",
        ),
        (
            {"rates": [1], "requests": 0},
            "load.requests: 0 is out of range for requests. Use an integer from 1 to 10,000,000",
        ),
        (
            {"rates": [1], "max_concurrency": 0},
            "load.max_concurrency: 0 is out of range for a concurrency cap. Use an integer from "
            "1 to 100,000",
        ),
        (
            {"max_concurrency": 4},
            "load: max_concurrency shape an open loop, but no rates are given. Add rates = "
            "[...] (requests/s) or remove them",
        ),
        (
            {"rates": []},
            "load.rates: no rates given. List rates in requests/s, e.g. rates = [1, 4]; or "
            "remove it",
        ),
        ({"rates": [2, 2.0]}, "load.rates: a rate is listed twice. List each request rate once"),
        (
            {"rates": [1], "burstiness": 2},
            "load.burstiness: burstiness shapes gamma arrivals, but arrival is 'poisson'. "
            'Set arrival = "gamma" or remove burstiness',
        ),
        (
            {"capacity_fractions": [10.5]},
            "load.capacity_fractions[0]: 10.5 is out of range for a fraction of the measured "
            "capacity. Use a number above 0 and at most 10",
        ),
        (
            {"capacity_fractions": []},
            "load.capacity_fractions: no fractions given. List them, e.g. capacity_fractions = "
            "[0.5, 1.0]",
        ),
        (
            {"capacity_fractions": [1, 1]},
            "load.capacity_fractions: a fraction is listed twice. List each fraction once",
        ),
        (
            {"capacity_concurrency": 8},
            "load.capacity_concurrency: capacity_concurrency sizes the capacity measurement, "
            "but no capacity_fractions are given. Add capacity_fractions = [...] or remove it",
        ),
    ],
)
def test_load_refusals_in_full(load: dict[str, Any], message: str) -> None:
    assert error(load=load) == f"llmperf.toml: {message}"


def test_load_without_rates_is_refused_for_each_shaping_key() -> None:
    for key, value in (("arrival", "constant"), ("max_concurrency", 2), ("ramp_up_s", 1)):
        assert f"load: {key} shape an open loop, but no rates" in error(load={key: value})


# -- --llmperf-rate --------------------------------------------------------------------------------


def test_command_line_rates_keep_every_other_load_key() -> None:
    c = cfg(
        load={
            "rates": [1],
            "arrival": "gamma",
            "burstiness": 2,
            "ramp_up_s": 3,
            "max_concurrency": 5,
            "requests": 30,
            "duration_s": 4,
        }
    )
    again = with_rates(c, [" 7 ", "2"], source="--llmperf-rate")
    assert vars(again.load) == {**vars(c.load), "rates": (2.0, 7.0)}
    plain = with_rates(cfg(load={"rates": [1], "arrival": "constant"}), ["3"], source="x")
    assert vars(plain.load) == {**vars(cfg().load), "rates": (3.0,), "arrival": "constant"}


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        (
            ["fast"],
            "--llmperf-rate: 'fast' is not a request rate. Give rates in requests/s or as "
            "capacity fractions, like 1,2.5,capacity*0.5",
        ),
        (
            [],
            "--llmperf-rate: no rates given. Give rates in requests/s or as capacity "
            "fractions, like 1,2.5,capacity*0.5",
        ),
        (
            ["0"],
            "--llmperf-rate: rates[0]: 0.0 is out of range for a request rate (requests/s). "
            "Use a number above 0 and at most 100000",
        ),
    ],
)
def test_command_line_rate_refusals_in_full(rates: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        with_rates(cfg(), rates, source="--llmperf-rate")
    assert str(err.value) == message
