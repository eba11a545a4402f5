"""Availability: the caller's list of attendees and the busy slots answered for each."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api_shim.fields import Bool, Email


class AttendeeQuery(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"email": "test1@domain.com", "serviceResourceId": "123", "isOrganizer": True}]
        },
    )

    email: Email
    serviceResourceId: str | None = Field(default=None, max_length=255)
    isOrganizer: Bool | None = None


class Slot(BaseModel):
    timeMin: str
    timeMax: str


class AttendeeAvailability(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "test1@domain.com",
                    "serviceResourceId": "123",
                    "errorCode": "NoError",
                    "unavailableTimeslots": [{"timeMin": "2020-10-16T10:00:00Z", "timeMax": "2020-10-16T12:00:00Z"}],
                }
            ]
        }
    )

    email: str
    serviceResourceId: str | None = None
    errorCode: str
    unavailableTimeslots: list[Slot]
