"""The one mail adapter. ``send(to, subject, body)``:

* ``SMTP_URL`` set (``smtp://user:pass@host:587``): SMTP with STARTTLS, required — a server that
  doesn't offer it is an error, never a silent plaintext send (``smtp+plain://`` opts out, for a
  relay on localhost only). ``SMTP_CA_FILE`` adds a CA bundle for a private server certificate.
* unset (the embedded default): each message is written as an ``.eml`` file to
  ``<instance>/mail/`` and logged (recipient and subject only), so development needs no server.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from glyphoxa_htmx.core.deps import settings

log = logging.getLogger(__name__)


class MailError(RuntimeError):
    """The message could not be handed over (the caller decides whether that fails its work)."""


def _message(to: str, subject: str, body: str, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain="glyphoxa")
    msg.set_content(body)
    return msg


def send(to: str, subject: str, body: str) -> None:
    cfg = settings()
    msg = _message(to, subject, body, cfg.mail_from)
    if not cfg.smtp_url:
        folder = Path(cfg.instance_dir) / "mail"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        path.write_bytes(msg.as_bytes())
        log.info("mail written", extra={"to": to, "subject": subject, "file": str(path)})
        return
    url = urlsplit(cfg.smtp_url)
    if url.scheme not in {"smtp", "smtp+plain"}:
        raise MailError(f"SMTP_URL scheme must be smtp:// or smtp+plain:// (got {url.scheme}://)")
    try:
        with smtplib.SMTP(url.hostname or "localhost", url.port or 587, timeout=10) as smtp:
            smtp.ehlo()
            if url.scheme == "smtp":
                if not smtp.has_extn("starttls"):
                    raise MailError("the SMTP server doesn't offer STARTTLS; refusing to send in plaintext")
                context = ssl.create_default_context(cafile=cfg.smtp_ca_file or None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if url.username:
                smtp.login(unquote(url.username), unquote(url.password or ""))
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"sending mail failed: {exc.__class__.__name__}: {exc}") from exc
    log.info("mail sent", extra={"to": to, "subject": subject})
