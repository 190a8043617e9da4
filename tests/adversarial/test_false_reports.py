"""A lying operator's report that an honest party cheated stays that operator's claim.

Under `security: malicious` a party that catches a bad signature share reports it beside its
result (JobResult.observations), outside the compared output: the coordinator can neither
check it nor should it act on it alone.  Here party0 invents such a report about an honest
party on every signature: the signature is still released, no party is failed or called
dissenting, and the coordinator shows the report as party0's word."""

import pytest

from tests.adversarial.harness import start_liar
from tests.test_e2e_keys import keygen, tx, verified_by_others, with_policies

LIAR = '''
def lie(leaf, message, node):
    if leaf != "results" or not message.ok or "raw" not in (message.output or {}):
        return message
    made_up = "party1 sent a signature share that does not match its commitments; signed without it"
    return message.model_copy(update={"observations": [made_up]})
'''

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_an_invented_cheater_report_is_shown_as_a_claim_and_changes_nothing(make_cluster):
    cluster = with_policies(make_cluster(parties=3, threshold=1, security="malicious"))
    start_liar(cluster, 0, LIAR)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        await keygen(c, "vault-claims")
        signed = await c.run_job("sign", {"key_id": "vault-claims", "tx": tx(0)})
    assert signed.ok, signed.error
    verified_by_others(signed.output, tx(0))
    assert not signed.party_errors and not signed.party_notes  # nobody failed or dissented
    assert signed.observations == {"party0": [
        "party1 sent a signature share that does not match its commitments; signed without it"]}
    assert "party1" not in str(signed.output)
