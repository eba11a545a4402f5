"""The token endpoint's answers (RFC 6749, section 5), which also carry the contract's error fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    refresh_token: str
    scope: str

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "dsa_q8Xn...",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": "dsr_Zp3v...",
                    "scope": "availability sync",
                }
            ]
        }
    )


class TokenError(BaseModel):
    error: str = Field(
        description="RFC 6749: invalid_request, invalid_client, invalid_grant, unsupported_grant_type, invalid_scope"
    )
    error_description: str
    errorCode: str
    message: str
    details: list[dict[str, str]] = Field(default_factory=list)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_grant",
                    "error_description": "the refresh token was used before; its whole family is revoked",
                    "errorCode": "ErrorUnauthorized",
                    "message": "the refresh token was used before; its whole family is revoked",
                    "details": [],
                }
            ]
        }
    )


FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type", "refresh_token"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["refresh_token"]},
                        "refresh_token": {"type": "string"},
                        "client_id": {"type": "string", "description": "Or HTTP Basic client authentication"},
                        "client_secret": {"type": "string"},
                        "scope": {"type": "string", "description": "Space-separated; at most the client's scopes"},
                    },
                },
                "example": {
                    "grant_type": "refresh_token",
                    "refresh_token": "dsr_Zp3v...",
                    "client_id": "dsc_4f1c...",
                    "client_secret": "...",
                },
            }
        },
    }
}
