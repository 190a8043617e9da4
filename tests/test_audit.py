"""Hash-chained audit logs: appends verify; any edit, deletion or reordering is located."""

import json

import pytest

from mpc_nodes.node.audit import AuditLog, verify_cluster, verify_log


def make_log(path, n=5):
    log = AuditLog(path)
    for i in range(n):
        log.append("result", job_id=f"job{i}", ok=True, output_digest=f"d{i}")
    return path


def test_chain_verifies_and_survives_reopen(tmp_path):
    path = make_log(tmp_path / "audit.log")
    AuditLog(path).append("request", job_id="x")
    report = verify_log(path)
    assert report.ok and report.entries == 6


@pytest.mark.parametrize("tamper, line, reason", [
    (lambda lines: lines.__setitem__(2, lines[2].replace('"d2"', '"d9"')), 3, "edited"),
    (lambda lines: lines.pop(1), 2, "sequence number"),
    (lambda lines: lines.insert(3, lines[3]), 5, "sequence number"),  # duplicated line
    # a cut line that still ends in a newline; a final line cut before its newline is a
    # torn tail, recovered (tests/test_full_disk.py)
    (lambda lines: lines.__setitem__(4, lines[4][:20] + "\n"), 5, "corrupt or truncated"),
    (lambda lines: lines.__setitem__(2, lines[2][:20]), 3, "corrupt or truncated"),
    (lambda lines: (lines.__setitem__(1, lines[2]), lines.__setitem__(2, lines[1])), 2,
     "sequence number"),
])
def test_tampering_is_detected_at_its_position(tmp_path, tamper, line, reason):
    path = make_log(tmp_path / "audit.log")
    lines = path.read_text().splitlines(keepends=True)
    tamper(lines)
    path.write_text("".join(lines))
    report = verify_log(path)
    assert not report.ok and report.bad_line == line and reason in report.reason
    with pytest.raises(ValueError, match=f"damaged at line {line}"):
        AuditLog(path)


def test_rewritten_entry_with_recomputed_hash_still_breaks_the_chain(tmp_path):
    path = make_log(tmp_path / "audit.log")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[1]["output_digest"] = "forged"  # attacker recomputes this line's hash...
    import hashlib
    body = {k: v for k, v in lines[1].items() if k != "hash"}
    lines[1]["hash"] = hashlib.sha256(lines[1]["prev"].encode() + b"\n" + json.dumps(
        body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    report = verify_log(path)  # ...but the next line no longer follows it
    assert not report.ok and report.bad_line == 3 and "prev hash differs" in report.reason


def test_cluster_cross_check_finds_disagreeing_results(tmp_path):
    a, b = AuditLog(tmp_path / "a.log"), AuditLog(tmp_path / "b.log")
    a.append("result", job_id="j1", ok=True, output_digest="aaa")
    b.append("result", job_id="j1", ok=True, output_digest="aaa")
    a.append("result", job_id="j2", ok=True, output_digest="bbb")
    b.append("result", job_id="j2", ok=True, output_digest="ccc")
    reports, disagreements = verify_cluster({"p0": a.path, "p1": b.path})
    assert all(r.ok for r in reports.values())
    assert disagreements == ["job j2: p0=bbb, p1=ccc"]


def test_cluster_cross_check_skips_per_party_outputs(tmp_path):
    """FROST rounds and sealed output shares differ per party by design."""
    a, b = AuditLog(tmp_path / "a.log"), AuditLog(tmp_path / "b.log")
    a.append("result", job_id="j1", ok=True, output_digest="aaa", shared=False)
    b.append("result", job_id="j1", ok=True, output_digest="bbb", shared=False)
    a.append("result", job_id="j2", ok=True, output_digest="ccc", shared=True)
    b.append("result", job_id="j2", ok=True, output_digest="ddd", shared=True)
    _, disagreements = verify_cluster({"p0": a.path, "p1": b.path})
    assert disagreements == ["job j2: p0=ccc, p1=ddd"]
