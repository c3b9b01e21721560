"""Errors that only exist at the API: authentication and requests that cannot be served."""

from __future__ import annotations

from ivrcast.errors import AuthError, ConflictError, ValidationError


class BadCredentials(AuthError):
    """appid not authorized: unknown appid, wrong accesskey, or disabled account."""


class AccountExpired(AuthError):
    """appid authorization expired."""


class IpNotAllowed(AuthError):
    """IP not authorized."""


class TokenInvalid(AuthError):
    """token invalid, log in again."""


class NationNotAllowed(ValidationError):
    """The account may not call this nation."""

    def __init__(self, code: str) -> None:
        super().__init__("nationcode", f"nation {code!r} is not enabled for this account")


class UnknownService(ValidationError):
    """The `service` names no method ivrcast offers."""

    def __init__(self, service: str) -> None:
        super().__init__("service", f"unknown service {service!r}")


class BodyTooLarge(ValidationError):
    """The request body passed its limit; counted as it streams, whatever it declared."""

    def __init__(self, limit: int) -> None:
        super().__init__("body", f"the request is larger than the limit of {limit} bytes")


class BodyTooSlow(ValidationError):
    """The request body stopped arriving, or took longer than its deadline."""

    def __init__(self, seconds: float, *, deadline: bool) -> None:
        what = "did not complete within" if deadline else "paused for more than"
        super().__init__("body", f"the request {what} {seconds:g} seconds")


class TaskEnded(ConflictError):
    """The task has ended; it cannot be changed."""
