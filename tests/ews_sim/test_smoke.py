from ews_sim.testing import SimClient, ews_account


def test_simulator_answers_exchangelib(sim: SimClient) -> None:
    account = ews_account(sim.ews_url, "alice@contoso.com")
    assert account.calendar.total_count == 0
    assert [e["operation"] for e in sim.log()] == ["GetFolder", "GetFolder"]
