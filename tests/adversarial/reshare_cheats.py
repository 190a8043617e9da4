"""TEST-ONLY: old holders that deal dishonestly in a resharing (protocols.reshare), and an MPC
engine child whose resharings deal so, as an operator who patched its own engine could.

    MpcEngine(worker="tests.adversarial.reshare_cheats")   (run by tests.adversarial
    lying_node --engine-worker; the directory comes from env MPCNET_RESHARE_CHEAT_DIR)

Each resharing session that engine runs reads ``cheat`` in that directory: a name in
``CHEATS`` (the file absent: it deals honestly).  Other sessions run as the real engine's.
Imported (the party-process tests take the dealings from here), it changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import protocols.reshare
from protocols.reshare import Dealing


class WrongSubShare(Dealing):
    """Sends the new party at point 2 a sub-share off its commitments, and opens that same
    wrong value when accused."""

    def sub_share(self, x: int) -> int:
        return (super().sub_share(x) + (x == 2)) % self.curve.order


class OtherSecret(Dealing):
    """Deals λ_i·(s_i + 1), consistently: commitments that do not match its verification
    share."""

    @classmethod
    def fresh(cls, plan, dealer, share):
        return super().fresh(plan, dealer, share + 1)


class Equivocating(Dealing):
    """Deals its true λ_i·s_i on two polynomials: session parties of odd index get the
    commitments and sub-shares of the second, the others those of the first.  Every
    party's sub-share matches the commitments it got, so no complaint arises."""

    @classmethod
    def fresh(cls, plan, dealer, share):
        dealing = super().fresh(plan, dealer, share)
        object.__setattr__(dealing, "twin", Dealing.fresh(plan, dealer, share))
        object.__setattr__(dealing, "odd_points",
                           {x for pid, x in plan.receivers.items() if pid % 2})
        return dealing

    def commitments(self, to=None):
        return self.twin.commitments() if to is not None and to % 2 else super().commitments()

    def sub_share(self, x):
        return self.twin.sub_share(x) if x in self.odd_points else super().sub_share(x)


CHEATS = {"sub-share": WrongSubShare, "commitments": OtherSecret, "equivocate": Equivocating}

_honest = protocols.reshare.reshare


async def reshare(rt, plan: dict, share, dealing=Dealing):
    """protocols.reshare.reshare, dealing as the directory's ``cheat`` file says."""
    cheat = Path(os.environ["MPCNET_RESHARE_CHEAT_DIR"]) / "cheat"
    if cheat.exists():
        dealing = CHEATS[cheat.read_text().strip()]
    return await _honest(rt, plan, share, dealing)


if __name__ == "__main__":  # the engine child: a spec names its protocol by module and name
    reshare.__module__, reshare.__qualname__ = "protocols.reshare", "reshare"
    protocols.reshare.reshare = reshare
    from mpc_nodes.node import engine_worker
    engine_worker.main()
