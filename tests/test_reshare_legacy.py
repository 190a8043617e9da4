"""Share files from before resharing name no holders (their holders are taken to be the roster's
parties, in order).  `reshare` re-shares such a key among the same parties, which records its
holders, and then leaves it alone; the key still signs (libsecp256k1, eth-account)."""

import pytest

from keyshare import KeyStore
from mpc_nodes.jobs.reshare import reshare_key
from tests.test_e2e_keys import tx, verified_by_others, with_policies

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def stores(cluster) -> list[KeyStore]:
    return [KeyStore(cluster.dir / f"party{i}" / "data" / "keys",
                     (cluster.dir / f"party{i}" / "passphrase").read_bytes().strip(),
                     cluster.roster.cluster_id, i) for i in range(3)]


async def test_a_key_from_before_resharing_gets_its_holders_recorded(make_cluster):
    cluster = with_policies(make_cluster(parties=3, threshold=1))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key = (await c.run_job("keygen", {"key_id": "vault-1"})).output
        assert key and key["committed"]
        for store in stores(cluster):  # as an earlier version wrote them
            meta, share = store.load("vault-1")
            assert meta.holders == ["party0", "party1", "party2"]
            store._write_share(meta.model_copy(update={"holders": []}), share)
            assert store.load("vault-1")[0].holders == []

        moved = await reshare_key(c, "vault-1")
        assert moved.ok and not moved.output.get("unchanged"), moved.error
        assert moved.output["public_key"] == key["public_key"] and moved.output["epoch"] == 1
        for store in stores(cluster):
            assert store.load("vault-1")[0].holders == ["party0", "party1", "party2"]
        again = await reshare_key(c, "vault-1")
        assert again.ok and again.output["unchanged"]

        signed = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(0)})
        assert signed.ok, signed.error
        verified_by_others(signed.output, tx(0))
        assert signed.output["address"] == key["address"]
