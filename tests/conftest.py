import os

import pytest
from hypothesis import settings

from tests.cluster_harness import LocalCluster, mosquitto_available, mosquitto_binary

# Property-based tests, one knob for all: `make test` and `make check` replay the same
# examples every run (derandomised: CI must not fail on a new draw), MPCNET_FUZZ_REPLAY per
# property (default 50); `make soak` sets MPCNET_FUZZ_EXAMPLES and draws that many fresh ones.
if os.environ.get("MPCNET_FUZZ_EXAMPLES"):
    settings.register_profile("fresh", deadline=None,
                              max_examples=int(os.environ["MPCNET_FUZZ_EXAMPLES"]))
    settings.load_profile("fresh")
else:
    settings.register_profile("replay", derandomize=True, database=None, deadline=None,
                              max_examples=int(os.environ.get("MPCNET_FUZZ_REPLAY") or 50))
    settings.load_profile("replay")

BROKERS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("mosquitto", id="mosquitto", marks=pytest.mark.skipif(
        not mosquitto_available(), reason="no Mosquitto answering on 127.0.0.1:1883")),
]

# brokers a test can stop and restart
RESTARTABLE_BROKERS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("mosquitto-private", id="mosquitto", marks=pytest.mark.skipif(
        mosquitto_binary() is None, reason="no mosquitto binary installed")),
]


@pytest.fixture
def make_cluster(tmp_path):
    """Factory for real local clusters; every process is killed at teardown."""
    made = []

    def make(parties=3, threshold=1, broker="embedded", start=True, **options):
        cluster = LocalCluster(tmp_path / f"c{len(made)}", parties, threshold, broker, **options)
        made.append(cluster)
        return cluster.start() if start else cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """Factory for clusters shared by the tests of one module, one per set of options,
    started on first use and killed after the module.  Only for tests that just run jobs:
    none kills, restarts, corrupts or reconfigures a party, and each uses key ids and
    private input versions of its own (a node binds an input version to one aggregation)."""
    made: dict[tuple, LocalCluster] = {}

    def get(parties=3, threshold=1, broker="embedded", **options):
        key = (parties, threshold, broker, tuple(sorted(options.items())))
        if key not in made:
            made[key] = LocalCluster(tmp_path_factory.mktemp("shared"), parties, threshold,
                                     broker, **options)
            made[key].start()
        return made[key]

    yield get
    for cluster in made.values():
        cluster.close()
