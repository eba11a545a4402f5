"""Sample calendar data for the demo organisation, so a first look shows busy time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ews_sim.control import item_json
from ews_sim.ops.create_item import new_uid
from ews_sim.server import Simulator
from ews_sim.store import Attendee, CalendarItem, new_item_id


def seed_demo(sim: Simulator, domain: str = "demo.test") -> list[dict[str, object]]:
    """Busy, tentative and out-of-office time for alice and bob over the next working days."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    plan = [
        ("alice", "Customer call", 1, 9, 1, "Busy"),
        ("alice", "Team sync", 1, 13, 2, "Tentative"),
        ("bob", "Site visit", 2, 8, 4, "Busy"),
        ("bob", "Vacation", 3, 0, 24, "OOF"),
    ]
    seeded = []
    for user, subject, day, hour, hours, free_busy in plan:
        email = f"{user}@{domain}"
        start = today + timedelta(days=day, hours=hour)
        item = CalendarItem(
            item_id=new_item_id(),
            mailbox=email,
            uid=new_uid(),
            start=start,
            end=start + timedelta(hours=hours),
            subject=subject,
            free_busy=free_busy,
            organizer=Attendee(email=email, name=email, response="Organizer"),
        )
        sim.org.add_item(item)
        seeded.append(item_json(item))
    return seeded
