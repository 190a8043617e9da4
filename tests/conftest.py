import os

import pytest
from hypothesis import settings

from tests.cluster_harness import LocalCluster, mosquitto_available, mosquitto_binary

# property-based tests replay the same examples on every `make test` (CI must not fail on a
# new draw); `make soak` sets MPCNET_FUZZ_EXAMPLES and draws fresh ones
settings.register_profile("replay", derandomize=True, database=None)
if "MPCNET_FUZZ_EXAMPLES" not in os.environ:
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
