"""The root of every error ivrcast raises on purpose.

Each layer has one family below the root; layers add their own subclasses in their
own packages. The API maps the whole tree to reply codes in one place
(`ivrcast.api.envelope`).

    IvrcastError
    ├── ConfigError            bad configuration, named by its dotted key
    ├── ValidationError        a request parameter is invalid (carries `param`)
    ├── AuthError              credentials missing, wrong, disabled or expired
    ├── NotFoundError          a named thing does not exist for this account
    ├── ConflictError          the request is valid but the thing's state forbids it
    ├── StoreError             the database failed or an invariant was broken
    ├── VoiceError             audio could not be fetched, decoded or accepted
    ├── SipError               SIP signalling failed (parse errors, transport)
    └── CallbackError          a call record could not be delivered
"""

from __future__ import annotations


class IvrcastError(Exception):
    """An ivrcast error."""

    def __init__(self, message: str | None = None) -> None:
        # The docstring is the default message, so a bare `raise SomeError()` still
        # says something useful.
        self.message = message or (type(self).__doc__ or type(self).__name__).strip()
        super().__init__(self.message)

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross process boundaries (voices are transcoded in worker processes).
        # Pickle's default would call `cls(*args)`, which subclasses with their own
        # constructor arguments cannot take: rebuild from the message and the attributes.
        return _rebuild, (type(self), self.message, self.__dict__)


def _rebuild(cls: type[IvrcastError], message: str, state: dict[str, object]) -> IvrcastError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigError(IvrcastError):
    """The configuration is invalid."""


class ValidationError(IvrcastError):
    """A request parameter is invalid."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


class AuthError(IvrcastError):
    """The credentials are not valid."""


class NotFoundError(IvrcastError):
    """The requested object does not exist."""


class ConflictError(IvrcastError):
    """The request is valid but cannot be carried out in the object's current state."""


class StoreError(IvrcastError):
    """The database operation failed."""


class VoiceError(IvrcastError):
    """The voice could not be used."""


class SipError(IvrcastError):
    """SIP signalling failed."""


class CallbackError(IvrcastError):
    """The call record could not be delivered."""
