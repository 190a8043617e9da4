import pytest

from tests.cluster_harness import LocalCluster, mosquitto_available, mosquitto_binary

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
