"""Item 10: a hostile file cannot stall a node.

The attack: a surface file of 50,000 nested brackets.  Before, PyYAML worked for seconds
and raised an uncaught RecursionError on the node's event loop, the node missed votes on
healthy jobs and wrote megabytes of traceback.  Now every file and message a node parses
is bounded in size and nesting before (or while) it is parsed, and slow parses run in a
worker thread.  Also three small CSV problems of the options file and surfaces.
"""

import datetime as dt
import json

import pytest

from mpc_nodes import governance
from mpc_nodes.config import ConfigError, read_yaml_mapping
from mpc_nodes.wire.envelope import EnvelopeError, Verifier, envelope_fields, seal
from mpc_nodes.node.inputs import InputError, load_input
from mpc_nodes.wire.messages import JobRequest
from mpc_nodes.jobs.options_csv import OptionsError, parse_options
from mpc_nodes.wire.parsing import MAX_DEPTH, MAX_YAML_BYTES
from mpc_nodes.node.volsurface import MAX_FILE_BYTES, SurfaceBook, SurfaceError, parse_surface

BRACKETS = "[" * 50_000 + "]" * 50_000
DAY = dt.date(2026, 11, 25)


@pytest.mark.parametrize("text", [BRACKETS, "vols: " + BRACKETS, "- " * 50_000 + "x",
                                  "{a: " * 5_000 + "1" + "}" * 5_000])
def test_deeply_nested_surface_yaml_is_refused_with_a_reason(text):
    with pytest.raises(SurfaceError, match="nested|levels"):
        parse_surface(text, "ETH", "yaml")


def test_nesting_within_the_bound_still_parses_as_yaml():
    from mpc_nodes.wire.parsing import load_yaml
    # the mapping, MAX_DEPTH - 2 lists and the scalar: MAX_DEPTH nodes deep
    assert load_yaml("x: " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2)) is not None


def test_an_oversized_surface_file_is_refused_before_it_is_read(tmp_path):
    (tmp_path / "ETH.csv").write_text("moneyness,1,2\n" + "1,0.5,0.5\n" * (MAX_FILE_BYTES // 8))
    with pytest.raises(SurfaceError, match="larger than"):
        SurfaceBook(tmp_path).get("ETH")


def test_a_bad_surface_file_is_parsed_once_until_it_changes(tmp_path, monkeypatch):
    (tmp_path / "ETH.yaml").write_text(BRACKETS)
    book = SurfaceBook(tmp_path)
    calls = []
    import mpc_nodes.node.volsurface as vs
    parse = vs.parse_surface
    monkeypatch.setattr(vs, "parse_surface", lambda *a: calls.append(1) or parse(*a))
    for _ in range(3):
        with pytest.raises(SurfaceError):
            book.get("ETH")
    assert len(calls) == 1


@pytest.mark.parametrize("text", [BRACKETS, "x: " + BRACKETS, "x:\n" + "- " * 50_000 + "1"])
def test_inputs_and_policy_yaml_are_bounded_in_depth(tmp_path, text):
    path = tmp_path / "inputs.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match="nested|levels"):
        load_input(path, "x")
    with pytest.raises(ConfigError, match="nested|levels"):
        read_yaml_mapping(path)  # policy.yaml, node.yaml and the roster are read by it too


def test_inputs_and_policy_yaml_are_bounded_in_size(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("x: 1\n" + "# padding\n" * (MAX_YAML_BYTES // 10))
    with pytest.raises(ConfigError, match="larger than"):
        read_yaml_mapping(path)


def _roster_and_key(tmp_path):
    from mpc_nodes.deploy.cluster import init_cluster
    from mpc_nodes.config import load_roster
    from mpc_nodes.pki import load_identity, read_passphrase
    root = tmp_path / "c"
    init_cluster(root, parties=3, threshold=1)
    roster = load_roster(root / "roster.yaml")
    cdir = root / "coordinator"
    from mpc_nodes.config import load_coordinator_config
    cfg = load_coordinator_config(cdir / "coordinator.yaml")
    key = load_identity(cdir / cfg.identity_key, read_passphrase(cfg.passphrase,
                                                                 cdir / "coordinator.yaml"))
    return roster, key, cfg.name


def test_a_signed_message_nested_too_deep_is_refused_before_it_is_decoded(tmp_path):
    roster, key, name = _roster_and_key(tmp_path)
    deep = {"a": 1}
    for _ in range(100):  # within pydantic's own limit (200), beyond ours
        deep = {"a": [deep]}
    req = JobRequest(job_id="0" * 32, kind="ping", params=deep, coordinator=name,
                     issued_at=0.0, expires_at=1.0, **governance.request_binding(roster))
    raw = seal(key, f"coordinator/{name}", roster.cluster_id, "t", req).raw
    with pytest.raises(EnvelopeError, match="nests .* levels deep"):
        Verifier(roster).open(raw, "t")


def test_an_embedded_vote_of_brackets_is_an_envelope_error_not_a_recursion_error():
    # a start carries votes as strings; the node reads each one's sender before verifying
    with pytest.raises(EnvelopeError, match="nests 8000 levels deep"):
        envelope_fields(("[" * 8000 + "]" * 8000).encode())
    assert envelope_fields(json.dumps({"sender": "party/a"}).encode())["sender"] == "party/a"


# -- the three small CSV problems -----------------------------------------------------

def test_an_expiry_in_scientific_notation_is_years():
    book = parse_options("type,strike,expiry\ncall,3000,1e-3\n", valuation=DAY)
    assert book.expiries == [1e-3]


@pytest.mark.parametrize("cell", ["3_000", "0x10", "inf", "nan", "1e", "--1", " 3 000"])
def test_a_strike_must_be_a_plain_decimal(cell):
    with pytest.raises(OptionsError, match="line 2: strike"):
        parse_options(f"type,strike,expiry\ncall,{cell},0.5\n", valuation=DAY)


def test_a_surface_csv_number_must_be_a_plain_decimal():
    with pytest.raises(SurfaceError, match="not a number"):
        parse_surface("strike,1_000,2000\n0.5,0.5,0.5\n", "ETH", "csv")


def test_a_byte_order_mark_is_ignored_and_a_bad_header_printed_readably():
    book = parse_options("\ufefftype,strike,expiry\ncall,3000,0.5\n", valuation=DAY)
    assert book.strikes == [3000.0]
    with pytest.raises(OptionsError) as bad:
        parse_options("\ufefftype,strike,\u200bexpiry\ncall,3000,0.5\n", valuation=DAY)
    assert "\ufeff" not in str(bad.value) and "\u200b" not in str(bad.value)
    assert "got type, strike, '\\u200bexpiry'" in str(bad.value)


def test_a_surface_csv_with_a_byte_order_mark_parses():
    s = parse_surface("\ufeffmoneyness,0.9,1.1\n0.5,0.6,0.7\n", "ETH", "csv")
    assert s.axis == "moneyness"


# -- end to end --------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_a_node_with_a_hostile_surface_keeps_voting(make_cluster, curious_factory):
    cluster = make_cluster(parties=3)
    surfaces = cluster.dir / "party0" / "data" / "surfaces"
    (surfaces / "ETH.yaml").write_text(BRACKETS)
    eth = {"underlying": "ETH", "spot": 3000.0, "rate": 0.03, "is_call": [True],
           "strikes": [3000.0], "expiries": [0.5]}
    async with curious_factory(cluster) as cc:
        for _ in range(3):  # the bad file, asked about again and again
            votes = await cc.votes("price", eth)
            assert votes["party0"].accept is False
            assert "ETH surface file is invalid" in votes["party0"].reason
            assert votes["party1"].accept and votes["party2"].accept
            healthy = await cc.votes("price", eth | {"underlying": "BTC", "strikes": [60000.0]})
            assert len(healthy) == 3 and all(v.accept for v in healthy.values())
            ping = await cc.votes("ping", {"rounds": 1})
            assert len(ping) == 3 and all(v.accept for v in ping.values())
    log = cluster.log(0)
    assert "Traceback" not in log and "RecursionError" not in log
    assert "nested 50000 levels deep" in log  # the reason, once, in the operator's log
    assert len(log) < 100_000
