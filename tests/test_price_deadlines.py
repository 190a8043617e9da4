"""How long a price session may take (jobs.pricing.session_seconds): the checked mean's
deadline follows the rates bench_scaling measured, with room, at every party count."""

from mpc_nodes.jobs.pricing import result_timeout, session_seconds

MEASURED = {3: 273.0, 5: 34.0, 7: 2.6}  # options/s, bench_scaling 2026-11-30 (PERFORMANCE.md)


def test_the_checked_mean_may_take_four_times_its_measured_time_at_every_party_count():
    for n, rate in MEASURED.items():
        assert session_seconds(10_000, n) - 60 >= 4 * 10_000 / rate, n


def test_more_parties_get_more_time_and_the_coordinator_waits_longer_than_the_nodes():
    times = [session_seconds(1_000, n) for n in (3, 4, 5, 6, 7)]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert session_seconds(1_000) < session_seconds(1_000, 3)  # semi-honest or exact path
    assert result_timeout(1_000, 5) > session_seconds(1_000, 5)
