"""Postback bodies (the older seed's shapes, as valid JSON) and the per-mailbox answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator, model_validator

from api_shim.fields import (
    EMAIL_SCHEMA,
    Bool,
    CorrelationId,
    Email,
    EventId,
    ShortText,
    Text,
    UtcTime,
    end_after_start,
)


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

    _after_start = field_validator("endTime")(end_after_start)


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

    @field_validator("endTime")
    @classmethod
    def _after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        # The previous state is only a hint of which mailboxes held the event; its times are not checked.
        return end


class PostbackUpdate(Body):
    original: OriginalState | None = None
    # Declared after `original` and checked even when absent, so a missing event id is reported as `id`.
    id: EventId | None = Field(default=None, validate_default=True)
    new: EventState
    salesforceCorrelationId: CorrelationId | None = None

    @field_validator("id")
    @classmethod
    def _event_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "original" not in info.data:  # `original` itself is invalid: that error is the one to report
            return value
        original = info.data["original"]
        if not value and not (original and original.id):
            raise ValueError("is required, as original.id or a top-level id")
        return value

    @property
    def event_id(self) -> str | None:
        return (self.original.id if self.original else None) or self.id

    model_config = ConfigDict(
        json_schema_extra={
            # The event id is required, in one place or the other.
            "anyOf": [
                {"required": ["id"], "properties": {"id": {"type": "string"}}},
                {
                    "required": ["original"],
                    "properties": {
                        "original": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
                    },
                },
            ],
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
            ],
        }
    )


def _address(value: Any) -> Any:
    # The seed lists delete's attendees as bare strings; objects with an email are accepted too.
    return value.get("email") if isinstance(value, dict) else value


class PostbackDelete(Body):
    id: EventId
    organizerEmail: Email
    # Addresses as the seed shows them, or {"email"} objects as in creates.
    attendees: Annotated[
        list[Email],
        WithJsonSchema(
            {
                "type": "array",
                "maxItems": 1000,
                "items": {
                    "anyOf": [
                        EMAIL_SCHEMA,
                        {"type": "object", "required": ["email"], "properties": {"email": EMAIL_SCHEMA}},
                    ]
                },
            }
        ),
    ] = Field(default_factory=list, max_length=1000)
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
