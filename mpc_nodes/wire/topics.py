"""MQTT topic layout.  Each node publishes only under its own subtree, which makes broker ACLs
simple: a node may write ``mpcnet/<cluster>/nodes/<name>/#``, a coordinator ``mpcnet/<cluster>/jobs``.
"""

PREFIX = "mpcnet"


def jobs(cluster: str) -> str:
    """Job requests, starts and aborts from coordinators."""
    return f"{PREFIX}/{cluster}/jobs"


def node(cluster: str, party: str, leaf: str) -> str:
    """A node's own topic: leaf is 'status' (retained presence), 'votes', 'results',
    'answers' (job states it gives when asked) or 'heartbeat' (the node's own probe that its
    subscriptions still deliver)."""
    return f"{PREFIX}/{cluster}/nodes/{party}/{leaf}"


def all_nodes(cluster: str, leaf: str) -> str:
    """Subscription filter for one leaf of every node."""
    return f"{PREFIX}/{cluster}/nodes/+/{leaf}"


def party_of(topic: str) -> tuple[str, str] | None:
    """(party name, leaf) for a node topic, or None."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == PREFIX and parts[2] == "nodes":
        return parts[3], parts[4]
    return None
