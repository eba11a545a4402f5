"""Deciding what one mailbox needs, from what a search found there: pure code, no I/O.

Given the desired state (or None: the mailbox must not hold the event), the tagged items found, and
whether an earlier write may still land, ``decide`` says which copies go, and whether to create, update,
send, leave alone, or wait. The converge service carries the decision out and asks again after each
write, so every step is decided on what the mailbox holds then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from downsync.core.model import Found, ItemRef

CREATE = "create"
UPDATE = "update"  # appointments: rewrite the fields
SEND = "send"  # meetings: rewrite and send to the attendees
WAIT = "wait"  # an earlier create may still land: no second one before it no longer can
NOTHING = "nothing"


@dataclass(frozen=True)
class Decision:
    action: str
    target: Found | None = None  # the item updated, sent or kept
    remove: tuple[ItemRef, ...] = ()  # extra copies removed silently (appointments, unsent drafts)
    cancel: tuple[ItemRef, ...] = ()  # sent meetings whose attendees must hear it is off
    wait_until: datetime | None = None


def ours(found: Sequence[Found], tenant: str, known_id: str | None, adopt_legacy: bool) -> list[Found]:
    """The items this tenant may touch: its own, and one written before tags named the tenant when the store
    recorded it for this placement (or no other tenant has this event id)."""
    return [
        f
        for f in found
        if f.tenant == tenant
        or (f.tenant is None and (adopt_legacy or (known_id is not None and f.ref.id == known_id)))
    ]


def _rank(item: Found, fingerprint: str | None, known_id: str | None) -> tuple[bool, bool, bool, bool, str]:
    # Keep a sent meeting over a draft (a draft is never sent while a sent copy exists), then the copy already
    # right, then the one the store knows, then a tenant-tagged one; the id makes the choice the same for everyone.
    return (
        item.fingerprint is None,
        item.fingerprint != fingerprint,
        item.ref.id != known_id,
        item.tenant is None,
        item.ref.id,
    )


def decide(
    *,
    meeting: bool,
    fingerprint: str | None,
    found: Sequence[Found],
    known_id: str | None,
    unsettled_until: datetime | None,
    now: datetime,
) -> Decision:
    """``fingerprint`` is the desired state's, None when the mailbox must not hold the event; ``found`` are this
    tenant's tagged items; ``unsettled_until`` is when a write of an earlier try can no longer land."""
    if fingerprint is None:
        if meeting:
            sent = tuple(f.ref for f in found if f.fingerprint is not None)
            drafts = tuple(f.ref for f in found if f.fingerprint is None)
            return Decision(NOTHING, remove=drafts, cancel=sent)
        return Decision(NOTHING, remove=tuple(f.ref for f in found))

    ranked = sorted(found, key=lambda f: _rank(f, fingerprint, known_id))
    keep, extra = (ranked[0], ranked[1:]) if ranked else (None, [])
    remove = tuple(f.ref for f in extra if not meeting or f.fingerprint is None or f.uid == getattr(keep, "uid", None))
    cancel = tuple(f.ref for f in extra if f.ref not in remove)
    if keep is None:
        if unsettled_until is not None and now < unsettled_until:
            return Decision(WAIT, wait_until=unsettled_until)
        return Decision(CREATE)
    if keep.fingerprint == fingerprint and keep.tenant is not None:
        return Decision(NOTHING, target=keep, remove=remove, cancel=cancel)
    if meeting:
        if keep.fingerprint == fingerprint:
            # Written before tags named the tenant and already right: nothing to send, it is adopted as it is.
            return Decision(NOTHING, target=keep, remove=remove, cancel=cancel)
        return Decision(SEND, target=keep, remove=remove, cancel=cancel)
    return Decision(UPDATE, target=keep, remove=remove, cancel=cancel)
