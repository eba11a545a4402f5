"""The pure decision: which copies go, and whether to create, update, send, leave or wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from downsync.core import plan
from downsync.core.model import Found, ItemRef

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def found(item_id: str, fingerprint: str | None = "fp", tenant: str | None = "t1", uid: str | None = None) -> Found:
    return Found(ItemRef(item_id, "ck"), tenant, fingerprint, uid)


def decide(
    items: list[Found], fingerprint: str | None = "fp", meeting: bool = False, **kwargs: object
) -> plan.Decision:
    args = {"known_id": None, "unsettled_until": None, "now": NOW, **kwargs}
    return plan.decide(meeting=meeting, fingerprint=fingerprint, found=items, **args)  # type: ignore[arg-type]


def test_an_empty_mailbox_gets_a_create() -> None:
    assert decide([]).action == plan.CREATE


def test_no_create_while_an_earlier_write_may_still_land() -> None:
    later = NOW + timedelta(seconds=30)
    decision = decide([], unsettled_until=later)
    assert (decision.action, decision.wait_until) == (plan.WAIT, later)
    assert decide([], unsettled_until=NOW - timedelta(seconds=1)).action == plan.CREATE


def test_a_copy_found_while_unsettled_is_used_not_waited_for() -> None:
    decision = decide([found("a", "old")], unsettled_until=NOW + timedelta(seconds=30))
    assert decision.action == plan.UPDATE and decision.target == found("a", "old")


def test_the_right_copy_is_kept_and_extras_removed_silently() -> None:
    decision = decide([found("b", "old"), found("a", "fp"), found("c", "fp")])
    assert decision.action == plan.NOTHING and decision.target.ref.id == "a"  # type: ignore[union-attr]
    assert set(decision.remove) == {ItemRef("b", "ck"), ItemRef("c", "ck")} and decision.cancel == ()


def test_the_known_copy_wins_among_equals() -> None:
    decision = decide([found("a", "old"), found("z", "old")], known_id="z")
    assert decision.target.ref.id == "z" and decision.remove == (ItemRef("a", "ck"),)  # type: ignore[union-attr]


def test_a_sent_meeting_is_kept_over_a_draft_and_the_draft_goes_silently() -> None:
    decision = decide([found("a", None), found("b", "old")], meeting=True)
    assert decision.action == plan.SEND and decision.target.ref.id == "b"  # type: ignore[union-attr]
    assert decision.remove == (ItemRef("a", "ck"),) and decision.cancel == ()


def test_a_draft_alone_is_sent() -> None:
    assert decide([found("a", None)], meeting=True).action == plan.SEND


def test_two_sent_meetings_of_different_uids_the_extra_is_cancelled() -> None:
    decision = decide([found("a", "fp", uid="u1"), found("b", "old", uid="u2")], meeting=True)
    assert decision.action == plan.NOTHING and decision.cancel == (ItemRef("b", "ck"),)
    same = decide([found("a", "fp", uid="u1"), found("b", "old", uid="u1")], meeting=True)
    assert same.remove == (ItemRef("b", "ck"),) and same.cancel == ()


def test_removing_a_meeting_cancels_what_was_sent_and_drops_drafts() -> None:
    decision = decide([found("a", "fp"), found("b", None)], fingerprint=None, meeting=True)
    assert decision.cancel == (ItemRef("a", "ck"),) and decision.remove == (ItemRef("b", "ck"),)
    assert decide([found("a")], fingerprint=None).remove == (ItemRef("a", "ck"),)


def test_an_appointment_tagged_before_tenants_is_rewritten_to_carry_the_tenant() -> None:
    assert decide([found("a", "fp", tenant=None)]).action == plan.UPDATE
    # A meeting already right is adopted as it is: rewriting it would e-mail every attendee.
    assert decide([found("a", "fp", tenant=None)], meeting=True).action == plan.NOTHING


def test_only_items_the_tenant_may_touch_are_considered() -> None:
    items = [found("mine"), found("other", tenant="t2"), found("legacy", tenant=None)]
    assert [f.ref.id for f in plan.ours(items, "t1", None, adopt_legacy=False)] == ["mine"]
    assert [f.ref.id for f in plan.ours(items, "t1", "legacy", adopt_legacy=False)] == ["mine", "legacy"]
    assert [f.ref.id for f in plan.ours(items, "t1", None, adopt_legacy=True)] == ["mine", "legacy"]
