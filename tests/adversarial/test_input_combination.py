"""Attack 1: a curious coordinator combines jobs on the same private inputs to solve for them.

Each job alone reveals only its documented output (a mean, a median, prices at an aggregate
vol).  Several jobs over different participant subsets, or with different aggregations, of
the same private values give a system of equations the coordinator can solve.  The nodes bind
each version of a private input to one participant set and one aggregation
(mpc_nodes/input_usage.py); these tests run the attacks and check that they no longer work.
"""

import asyncio
import itertools
import re

import numpy as np
import pytest
import QuantLib as ql
import yaml

pytestmark = [pytest.mark.e2e]

PARTIES4 = ["party0", "party1", "party2", "party3"]
SPOT, RATE, STRIKE, EXPIRY = 3000.0, 0.03, 3000.0, 182 / 365


def set_inputs(cluster, name: str, values) -> None:
    """What an operator does: edit its own inputs.yaml (one value per party)."""
    for i, v in enumerate(values):
        path = cluster.dir / f"party{i}" / "inputs.yaml"
        doc = yaml.safe_load(path.read_text()) or {}
        doc[name] = v
        path.write_text(yaml.safe_dump(doc))


def set_flat_surfaces(cluster, vols) -> None:
    """Each operator's ETH surface, flat at its own private vol."""
    for i, vol in enumerate(vols):
        (cluster.dir / f"party{i}" / "data" / "surfaces" / "ETH.yaml").write_text(yaml.safe_dump(
            {"axis": "moneyness", "expiries": [0.05, 2.0], "points": [0.5, 2.0],
             "vols": [[vol, vol], [vol, vol]]}))


def price_params(method="median", reveal="all", strike=STRIKE, recipient=None, greeks=False):
    return {"underlying": "ETH", "spot": SPOT, "rate": RATE, "is_call": [True],
            "strikes": [strike], "expiries": [EXPIRY], "method": method, "reveal": reveal,
            "recipient": recipient, "greeks": greeks}


def implied_vol(price: float) -> float:
    """Invert BSM with QuantLib (independent of the protocol's own BSM code)."""
    today = ql.Date(1, 1, 2030)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    option = ql.EuropeanOption(ql.PlainVanillaPayoff(ql.Option.Call, STRIKE),
                               ql.EuropeanExercise(today + 182))
    vol = ql.SimpleQuote(0.5)
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(SPOT)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, RATE, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(),
                                                           ql.QuoteHandle(vol), dc)))
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return option.impliedVolatility(price, process, 1e-12, 500, 1e-4, 4.0)


def solve_subset_means(means: dict[tuple, float]) -> np.ndarray:
    """The attacker's algebra: each subset mean is one linear equation in the inputs."""
    rows = [[1.0 / len(s) if p in s else 0.0 for p in PARTIES4] for s in means]
    return np.linalg.lstsq(np.array(rows), np.array(list(means.values())), rcond=None)[0]


def refusals(outcome) -> str:
    """Every reason a failed job carries: refusing votes and participants' errors."""
    return " | ".join([v.reason for v in outcome.votes if not v.accept]
                      + list(outcome.party_errors.values()) + [outcome.error or ""])


def assert_discreet(reason: str, *values) -> None:
    """A refusal names the rule, never a private value, a digest or a file path."""
    for v in values:
        assert repr(v) not in reason and f"{v:g}" not in reason, reason
    assert "inputs.yaml" not in reason and "surfaces/" not in reason, reason
    assert not re.search(r"[0-9a-f]{32}", reason), reason


@pytest.mark.timeout(240)
async def test_means_over_three_party_subsets_do_not_solve_for_the_inputs(shared_cluster,
                                                                          curious_factory):
    cluster = shared_cluster(parties=4)
    truth = [0.6137, 0.5521, 0.7208, 0.4874]
    set_inputs(cluster, "x", truth)
    async with curious_factory(cluster) as cc:
        outcomes = {s: await cc.run("aggregate", {"input": "x", "method": "mean"},
                                    participants=list(s))
                    for s in itertools.combinations(PARTIES4, 3)}
    means = {s: o.output["value"] for s, o in outcomes.items() if o.ok}
    recovered = solve_subset_means(means)
    assert not np.allclose(recovered, truth, atol=1e-4), "the coordinator solved the inputs"
    assert list(means) == [("party0", "party1", "party2")]
    assert means[("party0", "party1", "party2")] == pytest.approx(np.mean(truth[:3]), abs=1e-7)
    for subset, outcome in list(outcomes.items())[1:]:
        reason = refusals(outcome)
        assert "bound to participants party0, party1, party2" in reason, reason
        assert_discreet(reason, *truth)


@pytest.mark.timeout(240)
async def test_median_and_mean_of_one_input_are_not_both_revealed(make_cluster,
                                                                  curious_factory):
    cluster = make_cluster(parties=3, threshold=1)
    x, y, z = [0.52, 0.61, 0.74], [0.43, 0.47, 0.58], [0.31, 0.39, 0.34]
    for name, values in (("x", x), ("y", y), ("z", z)):
        set_inputs(cluster, name, values)
    async with curious_factory(cluster) as cc:
        median = await cc.run("aggregate", {"input": "x", "method": "median"})
        mean = await cc.run("aggregate", {"input": "x", "method": "mean"})
        assert median.ok and median.output["value"] == pytest.approx(0.61, abs=1e-7)
        # party0 would compute party2's input as 3*mean - own - median
        if mean.ok:
            assert 3 * mean.output["value"] - x[0] - median.output["value"] != pytest.approx(
                x[2], abs=1e-6), "a party learnt another party's input"
        assert not mean.ok and mean.participants == []  # refused at the vote, before any MPC
        reason = refusals(mean)
        assert "bound to aggregation 'median'" in reason, reason
        assert_discreet(reason, *x)

        # the other order on another input
        first = await cc.run("aggregate", {"input": "y", "method": "mean"})
        second = await cc.run("aggregate", {"input": "y", "method": "median"})
        assert first.ok and not second.ok
        assert "bound to aggregation 'mean'" in refusals(second)

        # both requested at once, so both are accepted before either is bound: the node
        # binds at execution, and the second job is refused there
        racing = await asyncio.gather(
            cc.run("aggregate", {"input": "z", "method": "median"}),
            cc.run("aggregate", {"input": "z", "method": "mean"}))
        assert sum(o.ok for o in racing) <= 1, [o.output for o in racing]
        assert "bound to aggregation" in " ".join(refusals(o) for o in racing if not o.ok)


@pytest.mark.timeout(300)
async def test_price_means_over_subsets_do_not_invert_to_the_vols(shared_cluster,
                                                                  curious_factory):
    cluster = shared_cluster(parties=4)
    truth = [0.60, 0.57, 0.66, 0.63]  # within the breaker limit (range < 0.25 x aggregate)
    set_flat_surfaces(cluster, truth)
    async with curious_factory(cluster) as cc:
        outcomes = {s: await cc.run("price", price_params("mean"), participants=list(s))
                    for s in itertools.combinations(PARTIES4, 3)}
    means = {s: implied_vol(o.output["values"]["price"][0])
             for s, o in outcomes.items() if o.ok}
    assert not np.allclose(solve_subset_means(means), truth, atol=1e-4)
    assert list(means) == [("party0", "party1", "party2")]
    assert means[("party0", "party1", "party2")] == pytest.approx(np.mean(truth[:3]), abs=1e-5)
    for outcome in list(outcomes.values())[1:]:
        reason = refusals(outcome)
        assert "the ETH surface is bound to participants party0, party1, party2" in reason
        assert_discreet(reason, *truth)


@pytest.mark.timeout(300)
async def test_price_medians_over_subsets_methods_and_modes(shared_cluster, curious_factory):
    cluster = shared_cluster(parties=4)
    # within the breaker limit (range < 0.25 x aggregate); other surfaces than the test
    # above, on the same cluster (a node binds a surface to one aggregation)
    vols = [0.61, 0.58, 0.67, 0.64]
    set_flat_surfaces(cluster, vols)
    first_set = ["party0", "party1", "party2"]
    async with curious_factory(cluster) as cc:
        first = await cc.run("price", price_params("median"), participants=first_set)
        assert first.ok, first.error
        assert implied_vol(first.output["values"]["price"][0]) == pytest.approx(0.61, abs=1e-6)
        # another odd subset, and the even set (whose median is a mean of the middle two)
        for subset in (["party1", "party2", "party3"], PARTIES4):
            other = await cc.run("price", price_params("median"), participants=subset)
            assert not other.ok, "a second median over another subset was revealed"
            assert "bound to participants party0, party1, party2" in refusals(other)
        # another aggregation of the same surfaces over the same set: refused at the vote
        for method in ("trimmed", "mean"):
            other = await cc.run("price", price_params(method), participants=first_set)
            assert not other.ok and other.participants == []
            assert "bound to aggregation 'median'" in refusals(other)
        # the same aggregate again, at another strike, with Greeks, or revealed to the
        # coordinator only: allowed, it is the same aggregate surface
        again = await cc.run("price", price_params("median", strike=3300.0, greeks=True),
                             participants=first_set)
        assert again.ok, again.error
        sealed = await cc.run("price", price_params("median", reveal="coordinator",
                                                    recipient=cc.c.config.name),
                              participants=first_set)
        assert sealed.ok, sealed.error
        # operators update their surfaces: a new version may be used afresh
        set_flat_surfaces(cluster, [v + 0.02 for v in vols])
        fresh = await cc.run("price", price_params("mean"), participants=PARTIES4[1:])
        assert fresh.ok, fresh.error


@pytest.mark.timeout(300)
async def test_repeated_jobs(make_cluster, curious_factory):
    cluster = make_cluster(parties=4, threshold=1)
    truth = [0.6137, 0.5521, 0.7208, 0.4874]
    set_inputs(cluster, "x", truth)
    first_set = ["party0", "party1", "party2"]
    async with curious_factory(cluster) as cc:
        first = await cc.run("aggregate", {"input": "x", "method": "mean"},
                             participants=first_set)
        assert first.ok, first.error
        # the same job again (same input version, set and method) reveals the same output
        again = await cc.run("aggregate", {"input": "x", "method": "mean"},
                             participants=first_set)
        assert again.ok, again.error
        assert again.output["value"] == pytest.approx(first.output["value"], abs=2 ** -30)

        # the binding is durable: after a restart, another set is still refused
        cluster.stop_node(1)
        await cluster.wait_offline(cc.c, "party1")
        cluster.start_node(1)
        await cluster.wait_online(cc.c)
        other = await cc.run("aggregate", {"input": "x", "method": "mean"},
                             participants=["party1", "party2", "party3"])
        assert not other.ok
        reason = refusals(other)
        assert "party1: private input 'x' is bound to participants" in reason, reason
        median = await cc.run("aggregate", {"input": "x", "method": "median"},
                              participants=first_set)
        assert not median.ok and "bound to aggregation 'mean'" in refusals(median)

        # the same values under another name are the same private data
        set_inputs(cluster, "x_copy", truth)
        copy = await cc.run("aggregate", {"input": "x_copy", "method": "median"},
                            participants=first_set)
        assert not copy.ok and "bound to aggregation 'mean'" in refusals(copy)

        # operators change their inputs: a new version is used afresh, with a new set
        set_inputs(cluster, "x", [v + 0.01 for v in truth])
        fresh = await cc.run("aggregate", {"input": "x", "method": "median"},
                             participants=["party1", "party2", "party3"])
        assert fresh.ok, fresh.error
        assert fresh.output["value"] == pytest.approx(0.5621, abs=1e-7)
        # and a ping never touches private inputs
        assert (await cc.run("ping", {"rounds": 2}, participants=["party0", "party3"])).ok
