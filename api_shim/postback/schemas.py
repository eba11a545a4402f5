"""Postback bodies (the older seed's shapes, as valid JSON) and the per-mailbox answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_shim.fields import Bool, CorrelationId, Email, EventId, ShortText, Text, UtcTime


class Body(BaseModel):
    # Unknown fields are ignored so newer callers keep working.
    model_config = ConfigDict(extra="ignore")


class AttendeeIn(Body):
    email: Email
    isRequired: Bool = True


class EventState(Body):
    organizerEmail: Email
    subject: ShortText = ""
    body: Text = ""
    location: ShortText | None = None
    startTime: UtcTime
    endTime: UtcTime
    attendees: list[AttendeeIn] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _times(self) -> EventState:
        if self.endTime < self.startTime:
            raise ValueError("endTime must be after startTime")
        return self


class PostbackCreate(EventState):
    id: EventId
    salesforceCorrelationId: CorrelationId | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "abcde-fghij-klmno-pqrst-uvwxyzfb3f11e",
                    "organizerEmail": "test@domain.com",
                    "body": "some text description",
                    "subject": "some subject",
                    "location": "meeting room 'Red'",
                    "startTime": "2020-10-16T10:00:00Z",
                    "endTime": "2020-10-20T23:00:00Z",
                    "salesforceCorrelationId": "ac3b40b4-2c33-463b-8bfe-8bcf077d7539",
                    "attendees": [
                        {"email": "attendee1@domain.com", "isRequired": "true"},
                        {"email": "attendee2@domain.com", "isRequired": "false"},
                    ],
                }
            ]
        }
    )


class OriginalState(EventState):
    id: EventId | None = None
    organizerEmail: Email | None = None  # type: ignore[assignment]
    startTime: UtcTime | None = None  # type: ignore[assignment]
    endTime: UtcTime | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _times(self) -> OriginalState:
        return self


class PostbackUpdate(Body):
    id: EventId | None = None
    original: OriginalState | None = None
    new: EventState
    salesforceCorrelationId: CorrelationId | None = None

    @model_validator(mode="after")
    def _event_id(self) -> PostbackUpdate:
        if not self.event_id:
            raise ValueError("the event id is required, as original.id or a top-level id")
        return self

    @property
    def event_id(self) -> str | None:
        return (self.original.id if self.original else None) or self.id

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "original": {
                        "id": "abcde-fghij-klmno-pqrst-uvwxyzfb3f11e",
                        "organizerEmail": "test@domain.com",
                        "subject": "some subject",
                        "startTime": "2020-10-16T10:00:00Z",
                        "endTime": "2020-10-20T23:00:00Z",
                        "attendees": [{"email": "attendee1@domain.com", "isRequired": "true"}],
                    },
                    "new": {
                        "organizerEmail": "test@domain.com",
                        "subject": "moved",
                        "startTime": "2020-10-17T10:00:00Z",
                        "endTime": "2020-10-17T11:00:00Z",
                        "attendees": [{"email": "attendee2@domain.com", "isRequired": "false"}],
                    },
                    "salesforceCorrelationId": "ac3b40b4-2c33-463b-8bfe-8bcf077d7539",
                }
            ]
        }
    )


def _address(value: Any) -> Any:
    # The seed lists delete's attendees as bare strings; objects with an email are accepted too.
    return value.get("email") if isinstance(value, dict) else value


class PostbackDelete(Body):
    id: EventId
    organizerEmail: Email
    attendees: list[Email] = Field(default_factory=list, max_length=1000)
    salesforceCorrelationId: CorrelationId | None = None

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("attendees"), list):
            data = {**data, "attendees": [_address(a) for a in data["attendees"]]}
        return data

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "abcde-fghij-klmno-pqrst-uvwxyzfb3f11e",
                    "organizerEmail": "organizer@domain.com",
                    "attendees": ["test1@domain.com", "test2@domain.com"],
                }
            ]
        }
    )


class MailboxResult(BaseModel):
    email: str
    errorCode: str

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "test@domain.com", "errorCode": "NoError"}]})
