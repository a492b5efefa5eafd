"""Domain errors raised by services; the web layer turns them into pages, blocks or toasts."""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    default_message = "That request could not be handled."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


class NotFound(DomainError):
    """Also used for another tenant's resource: never reveal that it exists."""

    status = 404
    default_message = "We couldn't find that."


class Forbidden(DomainError):
    status = 403
    default_message = "Your role doesn't allow that. Ask the owner of this table."


class Conflict(DomainError):
    status = 409
    default_message = "That changed in the meantime. Reload and try again."


class Unavailable(DomainError):
    status = 503
    default_message = "A service we depend on is unavailable. Try again in a moment."


class ValidationError(DomainError):
    """Field errors for a form: ``errors`` maps field name -> message; '' is a form-level error."""

    status = 422
    default_message = "Please fix the highlighted fields."

    def __init__(self, errors: dict[str, str], message: str | None = None):
        super().__init__(message)
        self.errors = errors
