"""A party cannot run code on the others through MPyC's pickled messages: the seam's
unpickler (mpyc_seam.SafePickle) builds data and numpy arrays only.  Real party processes."""

import pytest

from tests.mpc_harness import run_parties


@pytest.mark.heavy
@pytest.mark.timeout(120)
def test_a_pickle_that_would_run_code_is_refused_by_every_peer(tmp_path):
    target = tmp_path / "made-by-a-peer"
    with pytest.raises(RuntimeError) as failed:  # the honest parties' sessions stop
        run_parties("tests.mpc_targets:pickled_code", [[str(target)]] * 3, timeout=30)
    for honest in (1, 2):
        report = str(failed.value).split(f"party {honest} exited")[1].split("party ")[0]
        assert "a peer sent a pickle of posix.mkdir: only data and numpy arrays" in report
    assert not target.exists()
