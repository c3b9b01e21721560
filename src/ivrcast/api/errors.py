"""Errors that only exist at the API: authentication and requests that cannot be served."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


class BadRecordingLink(AuthError):
    """The recording link's signature does not match, or it has expired."""


class NationNotAllowed(AuthError):
    """The account may not call this nation: the vendor's 603, module not licensed."""

    def __init__(self, code: str) -> None:
        self.param = "nationcode"
        super().__init__(f"nationcode: nation {code!r} is not licensed for this account")


class WithDetails:
    """An error whose reply carries data beside its message: `details` joins `data`."""

    details: Mapping[str, Any]


class NoCallableNumbers(WithDetails, ValidationError):
    """Every submitted number is invalid: the vendor's 1021, illegal number.

    The request is well formed but there is nothing to dial, so no task is made; the
    reply lists the invalid numbers, as a partly valid batch's success does.
    """

    def __init__(self, invalid: list[dict[str, str]], invalidcount: int) -> None:
        super().__init__(
            "destnumber", f"none of the {invalidcount} numbers can be called (see invalid)"
        )
        self.details = {"accepted": 0, "invalid": invalid, "invalidcount": invalidcount}


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


class TaskPaused(ConflictError):
    """PauseTask on a task already paused."""


class TaskNotPaused(ConflictError):
    """ResumeTask on a task that is running, not paused."""
