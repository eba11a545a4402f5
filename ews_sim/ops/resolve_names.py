"""ResolveNames: an address (any of a mailbox's addresses, optionally ``smtp:``-prefixed) or the start of one,
resolved against the organisation's directory to the mailbox's primary address.

One match answers ``Success`` with one ``Resolution``; several (a prefix matching more than one
mailbox) ``Warning`` ``ErrorNameResolutionMultipleResults`` with up to 100; none ``Error``
``ErrorNameResolutionNoResults``, as Exchange answers. With ``ReturnFullContactData`` each
resolution carries a directory contact whose ``EmailAddresses`` list the primary address
(``SMTP:``) and the others (``smtp:``), as Active Directory's proxy addresses do.
"""

from __future__ import annotations

from lxml import etree

from ews_sim import responses
from ews_sim.ops.base import Context, Operation
from ews_sim.store import Organisation
from ews_sim.xmlutil import attr, esc, mq, parse_bool

MAX_RESOLUTIONS = 100


def candidates(org: Organisation, entry: str) -> list[str]:
    """The primary addresses an unresolved entry names."""
    text = entry.strip()
    if text.lower().startswith("smtp:"):
        text = text[5:]
    wanted = text.lower()
    if "@" in wanted:
        return [org.primary(wanted)] if org.is_mailbox(wanted) else []
    known = [*org.mailboxes, *org.aliases]
    return sorted({org.primary(a) for a in known if a.partition("@")[0].startswith(wanted)})


def _resolution(org: Organisation, primary: str, full: bool) -> str:
    mailbox = (
        f"<t:Mailbox><t:Name>{esc(primary)}</t:Name><t:EmailAddress>{esc(primary)}</t:EmailAddress>"
        "<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType></t:Mailbox>"
    )
    contact = ""
    if full:
        addresses = org.addresses(primary)[:3]  # the schema has room for three
        entries = "".join(
            f"<t:Entry Key={attr(f'EmailAddress{n}')}>{'SMTP' if n == 1 else 'smtp'}:{esc(a)}</t:Entry>"
            for n, a in enumerate(addresses, start=1)
        )
        contact = (
            f"<t:Contact><t:DisplayName>{esc(primary)}</t:DisplayName><t:EmailAddresses>{entries}</t:EmailAddresses>"
            "<t:ContactSource>ActiveDirectory</t:ContactSource></t:Contact>"
        )
    return f"<t:Resolution>{mailbox}{contact}</t:Resolution>"


class ResolveNames(Operation):
    name = "ResolveNames"
    needs_mailbox = False

    def count(self, elem: etree._Element) -> int:
        return len(elem.findall(mq("UnresolvedEntry"))) or 1

    def run(self, ctx: Context, elem: etree._Element) -> str:
        full = parse_bool(elem.get("ReturnFullContactData"))
        messages = []
        for entry in elem.findall(mq("UnresolvedEntry")):
            found = candidates(ctx.org, entry.text or "")
            if not found:
                messages.append(
                    responses.message(self.name, code="ErrorNameResolutionNoResults", text="No results were found.")
                )
                continue
            shown = found[:MAX_RESOLUTIONS]
            body = "".join(_resolution(ctx.org, p, full) for p in shown)
            inner = (
                f'<m:ResolutionSet TotalItemsInView="{len(found)}" '
                f'IncludesLastItemInRange="{str(len(shown) == len(found)).lower()}">{body}</m:ResolutionSet>'
            )
            if len(found) == 1:
                messages.append(responses.message(self.name, inner=inner))
            else:
                messages.append(
                    responses.message(
                        self.name,
                        code="ErrorNameResolutionMultipleResults",
                        text="Multiple results were found.",
                        warning=True,
                        inner=inner,
                    )
                )
        return responses.response(self.name, messages)
