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


class BadOperatorToken(AuthError):
    """That operator token is not valid."""


class TooManyFailedSignIns(AuthError):
    """Too many failed sign-ins for this appid from this address; try again later."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            "too many failed sign-ins for this appid from this address; "
            f"try again in {retry_after} s"
        )


class NationNotAllowed(ValidationError):
    """The account may not call this nation."""

    def __init__(self, code: str) -> None:
        super().__init__("nationcode", f"nation {code!r} is not enabled for this account")


class UnknownService(ValidationError):
    """The `service` names no method ivrcast offers."""

    def __init__(self, service: str) -> None:
        super().__init__("service", f"unknown service {service!r}")


class TaskEnded(ConflictError):
    """The task has ended; it cannot be changed."""
