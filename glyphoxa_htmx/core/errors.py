"""Domain errors raised by services; the web layer turns them into pages, blocks or toasts."""

from __future__ import annotations

from glyphoxa_htmx.core.i18n import lazy_gettext


class DomainError(Exception):
    status = 400
    default_message = lazy_gettext("That request could not be handled.")

    def __init__(self, message: str | None = None):
        # Translated now (the request's language): a lazy default would fail in JSON (toasts).
        text = str(message or self.default_message)
        super().__init__(text)
        self.message = text


class NotFound(DomainError):
    """Also used for another tenant's resource: never reveal that it exists."""

    status = 404
    default_message = lazy_gettext("We couldn't find that.")


class Forbidden(DomainError):
    status = 403
    default_message = lazy_gettext("Your role doesn't allow that. Ask the owner of this table.")


class Conflict(DomainError):
    status = 409
    default_message = lazy_gettext("That changed in the meantime. Reload and try again.")


class Unavailable(DomainError):
    status = 503
    default_message = lazy_gettext("A service we depend on is unavailable. Try again in a moment.")


class ValidationError(DomainError):
    """Field errors for a form: ``errors`` maps field name -> message; '' is a form-level error."""

    status = 422
    default_message = lazy_gettext("Please fix the highlighted fields.")

    def __init__(self, errors: dict[str, str], message: str | None = None):
        super().__init__(message)
        self.errors = errors
