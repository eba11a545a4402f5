"""SOAP envelopes, faults and response messages, written as Exchange writes them."""

from __future__ import annotations

from dataclasses import dataclass

from ews_sim.xmlutil import SOAP, E, M, T, attr, esc

MESSAGES = {
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
    "ErrorImpersonateUserDenied": "The account does not have permission to impersonate the requested user.",
    "ErrorNonExistentMailbox": "The SMTP address has no mailbox associated with it.",
    "ErrorMailRecipientNotFound": "No mailbox with such guid.",
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorIrresolvableConflict": "The send or update operation could not be performed because the change key passed "
    "in the request does not match the current change key for the item.",
    "ErrorSchemaValidation": "The request failed schema validation.",
    "ErrorMailboxDataArrayTooBig": "Mailbox data array is too big. The maximum allowed is 100.",
    "ErrorTimeIntervalTooBig": "The time duration specified for FreeBusyViewOptions.TimeWindow is too big.",
    "ErrorInvalidTimeInterval": "The time duration specified for FreeBusyViewOptions.TimeWindow is invalid.",
    "ErrorInvalidRequest": "The request is invalid.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorInvalidOperation": "The operation is not valid for this item.",
    "ErrorTimeZone": "The time zone isn't valid.",
}

# Request-level problems that Exchange reports as a SOAP fault rather than per response message.
FAULT_CODES = {
    "ErrorServerBusy",
    "ErrorImpersonateUserDenied",
    "ErrorNonExistentMailbox",
    "ErrorSchemaValidation",
    "ErrorMailboxDataArrayTooBig",
    "ErrorTimeIntervalTooBig",
    "ErrorInvalidTimeInterval",
    "ErrorInvalidServerVersion",
    "ErrorInvalidRequest",
    "ErrorAccessDenied",
    "ErrorInternalServerError",
    "ErrorInternalServerTransientError",
}


def message_text(code: str) -> str:
    return MESSAGES.get(code, f"The request failed with {code}.")


@dataclass
class Build:
    major: int = 15
    minor: int = 1
    build: int = 2507
    revision: int = 6

    @classmethod
    def parse(cls, text: str) -> Build:
        parts = [int(p) for p in text.split(".")] + [0, 0, 0, 0]
        return cls(*parts[:4])

    @property
    def api_version(self) -> str:
        # Exchange 2016 and later report a dated schema version rather than a product name.
        if (self.major, self.minor) >= (15, 1):
            return "V2017_07_11"
        if self.major == 15:
            return "Exchange2013_SP1"
        return "Exchange2010_SP2"

    def header(self) -> str:
        return (
            f'<h:ServerVersionInfo MajorVersion="{self.major}" MinorVersion="{self.minor}" '
            f'MajorBuildNumber="{self.build}" MinorBuildNumber="{self.revision}" Version="{self.api_version}" '
            f'xmlns:h="{T}" xmlns="{T}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>'
        )


def envelope(body: str, build: Build | None) -> bytes:
    header = f"<s:Header>{build.header()}</s:Header>" if build else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}">{header}'
        f'<s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</s:Body></s:Envelope>'
    ).encode()


def fault(code: str, text: str | None = None, values: dict[str, str] | None = None, extra_xml: str = "") -> str:
    """A SOAP fault carrying the EWS code in ``detail``, with ``MessageXml`` values as Exchange adds them."""
    text = text or message_text(code)
    msg_xml = ""
    if values or extra_xml:
        inner = "".join(f"<t:Value Name={attr(k)}>{esc(v)}</t:Value>" for k, v in (values or {}).items())
        msg_xml = f'<t:MessageXml xmlns:t="{T}">{inner}{extra_xml}</t:MessageXml>'
    return (
        f'<s:Fault><faultcode xmlns:a="{T}">a:{code}</faultcode>'
        f'<faultstring xml:lang="en-US">{esc(text)}</faultstring>'
        f'<detail><e:ResponseCode xmlns:e="{E}">{code}</e:ResponseCode>'
        f'<e:Message xmlns:e="{E}">{esc(text)}</e:Message>{msg_xml}</detail></s:Fault>'
    )


def message(op: str, inner: str = "", code: str = "NoError", text: str | None = None, warning: bool = False) -> str:
    """One ``<m:{op}ResponseMessage>``; ``inner`` follows the common part (Items, Folders, RootFolder...)."""
    if code == "NoError":
        return (
            f'<m:{op}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
            f"{inner}</m:{op}ResponseMessage>"
        )
    klass = "Warning" if warning else "Error"
    return (
        f'<m:{op}ResponseMessage ResponseClass="{klass}">'
        f"<m:MessageText>{esc(text or message_text(code))}</m:MessageText>"
        f"<m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"
        f"{inner}</m:{op}ResponseMessage>"
    )


def response(op: str, messages: list[str]) -> str:
    return (
        f'<m:{op}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>{"".join(messages)}'
        f"</m:ResponseMessages></m:{op}Response>"
    )
