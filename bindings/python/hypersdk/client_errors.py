"""Exceptions of the HyperSDK REST client (hypersdk.client.HyperSDK), with the names, bases and
attributes the original HyperSDK Python SDK had, so that `except` clauses written for it still
match. They are separate from hypersdk.Error, which the library's own functions raise."""
from __future__ import annotations

from typing import Any, Optional


class HyperSDKError(Exception):
    """Base of every error the client raises."""


class AuthenticationError(HyperSDKError):
    """The daemon refused the credentials (HTTP 401): no or a wrong API key, an expired token,
    or a failed login."""

    def __init__(self, message: str, status_code: Optional[int] = None, response: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class JobNotFoundError(HyperSDKError):
    """The job, schedule or webhook named in the request does not exist (HTTP 404)."""

    def __init__(self, message: str, status_code: Optional[int] = None, response: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response


class APIError(HyperSDKError):
    """A request failed: the daemon answered with an error status (status_code, and the decoded
    error body in response), the connection failed (status_code None), or the daemon does not
    serve the route at all (status_code 404; route names it, e.g. "POST /cbt/enable")."""

    def __init__(self, message: str, status_code: Optional[int] = None, response: Any = None,
                 route: Optional[str] = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response
        self.route = route


class ValidationError(HyperSDKError):
    """A request was refused before it was sent (an argument of the wrong type or shape)."""


class WebSocketError(HyperSDKError):
    """Kept for compatibility with the original SDK; this client does not open WebSockets."""


__all__ = ["HyperSDKError", "AuthenticationError", "JobNotFoundError", "APIError", "ValidationError", "WebSocketError"]
