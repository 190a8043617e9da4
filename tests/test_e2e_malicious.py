"""Threshold keys under `security: malicious` end to end (issue 13): real node processes and a
real broker run keygen, the checked signing protocol (protocols.ecdsa_active), presignatures
with commitments, refresh and signing again; every signature is checked by libsecp256k1 and
eth-account.  Deviations inside the sessions are tests/adversarial/test_mpc_deviation.py's."""

import pytest

from tests.test_e2e_keys import keygen, tx, verified_by_others, with_policies

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_keygen_sign_presign_refresh_under_malicious(make_cluster):
    cluster = with_policies(make_cluster(parties=3, threshold=1, security="malicious"))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key = await keygen(c, "vault-m")
        signed = await c.run_job("sign", {"key_id": "vault-m", "tx": tx(0)})
        assert signed.ok, signed.error
        verified_by_others(signed.output, tx(0))
        assert signed.output["address"] == key["address"] and not signed.observations

        pre = await c.run_job("presign", {"key_id": "vault-m", "count": 2})
        assert pre.ok, pre.error
        only = pre.output["binding"].split(",")
        for i, presignature in enumerate(pre.output["ids"]):
            online = await c.run_job("sign", {"key_id": "vault-m", "tx": tx(1 + i),
                                              "presignature": presignature}, only=only)
            assert online.ok, online.error
            verified_by_others(online.output, tx(1 + i))

        refreshed = await c.run_job("refresh", {"key_id": "vault-m", "epoch": 1})
        assert refreshed.ok, refreshed.error
        again = await c.run_job("sign", {"key_id": "vault-m", "tx": tx(3)})
        assert again.ok, again.error
        verified_by_others(again.output, tx(3))


async def test_prices_median_mean_shares_and_totals_under_malicious(make_cluster):
    from tests.test_e2e_pricing import (RATE, SPOT, _assert_close, _days_book, _expected,
                                        _fresh_surfaces)
    from mpc_nodes.jobs.pricing import price_params, run_price
    cluster = make_cluster(parties=3, threshold=1, security="malicious")
    book = _days_book()
    _, refs = _expected(cluster, book, "median")
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        outcome = await run_price(c, price_params(book, "ETH", SPOT, RATE, greeks=True))
        assert outcome.ok, outcome.error  # protocols.pricing_active: checked by QuantLib
        assert outcome.output["breached"] == []
        _assert_close(outcome.output["values"], refs)
        sealed = await run_price(c, price_params(book, "ETH", SPOT, RATE, greeks=True,
                                                 reveal="coordinator", recipient="coordinator"))
        assert sealed.ok, sealed.error  # limb shares, recombined by the coordinator
        assert sealed.output["values"] == outcome.output["values"]
        totals = await run_price(c, price_params(book, "ETH", SPOT, RATE, portfolio=True))
        assert totals.ok, totals.error  # in GF(2^127 - 1), noise below 2^-24 as semi-honest
        want = sum(q * p for q, p in zip(book.quantities, outcome.output["values"]["price"]))
        assert abs(totals.output["portfolio"]["price"] - want) <= 1e-5 * SPOT
        _fresh_surfaces(cluster)  # a surface version serves one aggregation
        _, mean_refs = _expected(cluster, book, "mean")
        mean = await run_price(c, price_params(book, "ETH", SPOT, RATE, greeks=True,
                                               method="mean"))
        assert mean.ok, mean.error  # protocols.pricing_secure_active: checked by QuantLib
        assert mean.output["breached"] == []
        _assert_close(mean.output["values"], mean_refs)


async def test_a_book_larger_than_an_idle_links_buffer_prices_under_malicious(make_cluster):
    """A checked dealing of 600 options (about 90 KB a peer) may reach a warm link before the
    session takes it; the link must hold it (it closed above 64 KiB once)."""
    from mpc_nodes.jobs.options_csv import parse_options
    from mpc_nodes.jobs.pricing import price_params, run_price
    from tests.test_e2e_pricing import RATE, SPOT
    rows = [f"{'call' if i % 2 else 'put'},{2400 + i},{0.1 + (i % 40) / 20},1" for i in range(600)]
    book = parse_options("type,strike,expiry,quantity\n" + "\n".join(rows) + "\n")
    cluster = make_cluster(parties=3, threshold=1, security="malicious")
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        for _ in range(2):  # the second job runs on warm links
            outcome = await run_price(c, price_params(book, "ETH", SPOT, RATE))
            assert outcome.ok, outcome.error
            assert len(outcome.output["values"]["price"]) + len(outcome.output["breached"]) \
                == 600
