"""A crash never strands a key (issue 11, items 2 and 3): a party SIGKILLed at each moment of
a refresh -- in the session, after staging, when voting to commit, after committing -- and
restarted; a keygen that one party cannot store, or that loses a party after the session.
Afterwards `mpcnet keys status` shows what each party holds, `mpcnet keys repair` finishes
or rolls back the change, and the key signs (checked by libsecp256k1 and eth-account) and
refreshes again, with no hand-made job."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cluster_harness import wait_until
from tests.test_e2e_keys import tx, verified_by_others, with_policies

pytestmark = pytest.mark.e2e


def mpcnet(*args):
    return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], text=True,
                          capture_output=True, timeout=120, env=dict(os.environ))


def cli(cluster, *args):
    """`mpcnet ARGS --dir D --broker B --json` in a thread: (exit code, parsed output)."""
    async def run():
        done = await asyncio.to_thread(mpcnet, *args, "--dir", str(cluster.dir), "--broker",
                                       cluster.broker_url, "--json")
        return done.returncode, json.loads(done.stdout or "null")
    return run()


async def kill_at(cluster, i: int, kind: str, event: str, since: int,
                  timeout: float = 60.0) -> None:
    """SIGKILL party i as soon as its audit log records `event` ("request": it voted,
    "start", "result") for a job of `kind` requested after line `since`."""
    def recorded():
        events = cluster.audit_events(i)[since:]
        jobs = {e["job_id"] for e in events if e["event"] == "request" and e["kind"] == kind
                and e["accept"]}
        return any(e["event"] == event and e.get("job_id") in jobs for e in events)
    await wait_until(recorded, timeout, f"party{i} records {event} of a {kind} job",
                     interval=0.005)  # the moment matters: poll closely
    cluster.stop_node(i, signal.SIGKILL)


async def sign_checked(c, nonce: int):
    signed = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(nonce)})
    assert signed.ok, signed.error
    verified_by_others(signed.output, tx(nonce))
    return signed.output


async def repaired(cluster, c, key_id: str) -> dict:
    """`keys repair`, then `keys status` agrees: every party on one epoch, nothing left."""
    code, result = await cli(cluster, "keys", "repair", "--key", key_id)
    assert code == 0 and result["error"] is None, result
    code, status = await cli(cluster, "keys", "status", "--key", key_id)
    assert code == 0, status
    for state in status["states"].values():  # one epoch on disk, no vote outstanding
        assert list(state["epochs"]) in ([], [str(state["committed"])]), status
        assert state["promised"] == {}, status
    return status


async def refresh_killing_party2(cluster, c, kind: str, event: str) -> tuple[dict, float]:
    """Make key vault-1, refresh it to epoch 1 and SIGKILL party2 when its audit log records
    `event` of a `kind` job; return the key and the seconds from the kill to the failure."""
    key = (await c.run_job("keygen", {"key_id": "vault-1"})).output
    assert key and key["committed"], "keygen failed"
    since = len(cluster.audit_events(2))
    running = asyncio.ensure_future(c.run_job("refresh", {"key_id": "vault-1", "epoch": 1}))
    await kill_at(cluster, 2, kind, event, since)
    faulted = time.monotonic()
    outcome = await running
    assert not outcome.ok, "the refresh cannot complete without party2"
    return key, time.monotonic() - faulted


MOMENTS = [("refresh", "start"),       # in the session, before anything is staged
           ("refresh", "result"),      # staged here, not yet voted for commit
           ("key-commit", "request"),  # voted to commit (the promise is on disk)
           ("key-commit", "result")]   # committed here, the old epoch not yet dropped


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind,event", MOMENTS, ids=[f"{k}-{e}" for k, e in MOMENTS])
async def test_a_party_killed_during_refresh_never_strands_the_key(make_cluster, kind, event):
    cluster = with_policies(make_cluster(parties=3, threshold=1))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key, reported = await refresh_killing_party2(cluster, c, kind, event)
        cluster.start_node(2)
        await cluster.wait_online(c)
        back = time.monotonic()

        # before any repair: the old epoch signs, or every party that moved on refuses,
        # naming the repair -- never a signature that does not verify
        before = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(0)})
        refusals = [v.reason for v in before.votes if not v.accept]
        if kind == "refresh":  # no party can have committed: epoch 0 is in use
            assert before.ok, before.error
            verified_by_others(before.output, tx(0))
        else:
            assert before.ok or (refusals and all("keys repair" in r for r in refusals)), \
                (before.error, refusals)

        code, status = await cli(cluster, "keys", "status", "--key", "vault-1")
        assert set(status["states"]) == {"party0", "party1", "party2"}, status
        assert code == (0 if status["verdict"].startswith("consistent") else 1)
        after = await repaired(cluster, c, "vault-1")
        epoch = {s["committed"] for s in after["states"].values()}
        assert len(epoch) == 1, after  # every party at one epoch: 0 rolled back, 1 finished
        if kind == "key-commit":  # some party voted to commit: the refresh is finished
            assert epoch == {1}, after
        signed = await sign_checked(c, 1)
        assert signed["address"] == key["address"]
        print(f"{kind}/{event}: failure reported {reported:.1f}s after the fault; status,"
              f" repair and a signature {time.monotonic() - back:.1f}s after the restart")

        # and the key refreshes again from where it is (the epoch asked from the parties)
        code, again = await cli(cluster, "refresh", "--key", "vault-1")
        assert code == 0 and again["output"]["epoch"] == epoch.pop() + 1, again
        await sign_checked(c, 2)


@pytest.mark.timeout(240)
async def test_a_keygen_one_party_cannot_store_leaves_no_key_and_can_be_retried(make_cluster):
    cluster = with_policies(make_cluster(parties=3, threshold=1))
    # party2 cannot write the share file (as on a full disk): a directory is in its place
    blocker = cluster.dir / "party2" / "data" / "keys" / "vault-1" / "epoch-0.share"
    blocker.mkdir(parents=True)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        code, made = await cli(cluster, "keygen", "--label", "vault-1")
        assert code == 1 and not made["ok"], made
        assert "party2" in made["error"] and "not staged" in made["error"], made["error"]

        listing = json.loads(mpcnet("keys", "list", "--dir", str(cluster.dir), "--json").stdout)
        assert all(keys == [] for keys in listing.values()), listing  # no usable half key
        unusable = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(0)})
        assert not unusable.ok and all(  # an approval at most: no party holds a share
            not v.participates and "holds no share of key vault-1" in v.reason
            for v in unusable.votes), unusable.votes

        code, status = await cli(cluster, "keys", "status", "--key", "vault-1")
        assert code == 1 and status["verdict"] == "needs repair: key-abort epoch 0", status
        assert [s["epochs"] != {} for s in status["states"].values()] == [True, True, False]
        assert all(s["committed"] is None for s in status["states"].values())

        blocker.rmdir()
        await repaired(cluster, c, "vault-1")
        code, status = await cli(cluster, "keys", "status", "--key", "vault-1")
        assert code == 0 and status["verdict"] == "no party holds this key", status

        code, made = await cli(cluster, "keygen", "--label", "vault-1")  # the same key id
        assert code == 0 and made["ok"], made
        signed = await sign_checked(c, 0)
        assert signed["address"] == made["output"]["address"]


@pytest.mark.timeout(240)
async def test_a_keygen_that_loses_a_party_after_the_session_is_finished_by_repair(
        make_cluster):
    cluster = with_policies(make_cluster(parties=3, threshold=1))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        since = len(cluster.audit_events(2))
        running = asyncio.ensure_future(c.run_job("keygen", {"key_id": "vault-1"}))
        await kill_at(cluster, 2, "keygen", "result", since)  # staged, then gone
        outcome = await running
        assert not outcome.ok
        listing = json.loads(mpcnet("keys", "list", "--dir", str(cluster.dir), "--json").stdout)
        assert all(keys == [] for keys in listing.values()), listing
        cluster.start_node(2)
        await cluster.wait_online(c)
        status = await repaired(cluster, c, "vault-1")
        assert {s["committed"] for s in status["states"].values()} == {0}, status
        listing = json.loads(mpcnet("keys", "list", "--dir", str(cluster.dir), "--json").stdout)
        (address,) = {keys[0]["address"] for keys in listing.values()}
        signed = await sign_checked(c, 0)
        assert signed["address"] == address


@pytest.mark.timeout(240)
@pytest.mark.parametrize("event", ["request", "result"])
async def test_the_next_sign_repairs_an_unfinished_commit_by_itself(make_cluster, tmp_path,
                                                                    event):
    """A party killed while voting for or after making a commit, and restarted: the next
    `mpcnet sign` finishes the epoch change on the parties' signed votes and signs, with no
    operator step in between."""
    cluster = with_policies(make_cluster(parties=3, threshold=1))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key, _ = await refresh_killing_party2(cluster, c, "key-commit", event)
        cluster.start_node(2)
        await cluster.wait_online(c)
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(tx(0)))
    code, signed = await cli(cluster, "sign", "--key", "vault-1", "--tx", str(tx_file))
    assert code == 0 and signed["ok"], signed
    verified_by_others(signed["output"], tx(0))
    assert signed["output"]["address"] == key["address"]
    code, status = await cli(cluster, "keys", "status", "--key", "vault-1")
    committed = {s["committed"] for s in status["states"].values()}
    if event == "request" and committed == {0}:
        # killed after auditing its vote but before publishing it: the commit never started,
        # every party still uses epoch 0 (the sign was right to), and party2's promise is
        # left for a repair to finish
        assert status["verdict"].startswith("needs repair: key-commit epoch 1"), status
        status = await repaired(cluster, c, "vault-1")
        committed = {s["committed"] for s in status["states"].values()}
    assert committed == {1}, status
