"""Meeting bodies (the newer seed's shapes, as valid JSON) and answers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api_shim.fields import Bool, CorrelationId, Email, EventId, ShortText, Text, UtcTime, end_after_start

EXAMPLE_ATTENDEES = [
    {"email": "attendee1@domain.com", "isRequired": "true"},
    {"email": "attendee2@domain.com", "isRequired": "false"},
]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MeetingAttendee(Body):
    email: Email
    isRequired: Bool


class MeetingCreate(Body):
    id: EventId
    organizerEmail: Email
    body: Text
    subject: ShortText
    location: ShortText
    startTime: UtcTime
    endTime: UtcTime
    attendees: list[MeetingAttendee] = Field(max_length=500)
    salesforceCorrelationId: CorrelationId | None = None

    _after_start = field_validator("endTime")(end_after_start)

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "id": "f9b58255-8e2e-81e2-a6db-27461fa3f11e",
                    "organizerEmail": "organizer@domain.com",
                    "body": "meeting description",
                    "subject": "meeting subject",
                    "location": "meeting room 1",
                    "startTime": "2020-10-16T10:00:00Z",
                    "endTime": "2020-10-16T11:00:00Z",
                    "salesforceCorrelationId": "ac7b40b4-2c33-723b-8aaie-8bpf077z7539",
                    "attendees": EXAMPLE_ATTENDEES,
                }
            ]
        },
    )


class MeetingPatch(Body):
    """Only the fields present change; ``attendees``, when present, replaces the list."""

    id: EventId
    organizerEmail: Email
    body: Text | None = None
    subject: ShortText | None = None
    location: ShortText | None = None
    startTime: UtcTime | None = None
    endTime: UtcTime | None = None
    attendees: list[MeetingAttendee] | None = Field(default=None, max_length=500)
    salesforceCorrelationId: CorrelationId | None = None

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "id": "f9b58255-8e2e-81e2-a6db-27461fa3f11e",
                    "organizerEmail": "organizer@domain.com",
                    "subject": "New subject",
                    "attendees": [*EXAMPLE_ATTENDEES, {"email": "attendee3@domain.com", "isRequired": "true"}],
                }
            ]
        },
    )


class MeetingDelete(Body):
    id: EventId
    organizerEmail: Email
    salesforceCorrelationId: CorrelationId | None = None

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"id": "f9b54553-8e2a-47r2-a6db-27425fb3f11e", "organizerEmail": "organizer@domain.com"}]
        },
    )


class MeetingResult(BaseModel):
    email: str
    errorCode: str


class AttendeeView(BaseModel):
    email: str
    isRequired: str
    response: str


class MeetingView(BaseModel):
    id: str
    organizerEmail: str
    body: str
    subject: str
    location: str | None
    startTime: str
    endTime: str
    attendees: list[AttendeeView]
