"""The mail adapter against a real local SMTP server (aiosmtpd) that requires STARTTLS with a
certificate made for this run; a server without STARTTLS is refused (never plaintext)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import make_settings


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode(),
                "tls": session.ssl is not None,
            }
        )
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "glyphoxa test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def smtp_server(certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), tls_context=context, require_starttls=True)
    controller.start()
    yield controller, inbox
    controller.stop()


@pytest.fixture
def plain_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def _app(database_url, **overrides):
    from glyphoxa_htmx.app import create_app

    return create_app(make_settings(database_url, **overrides))


def test_mail_goes_over_starttls(database_url, smtp_server, certificate):
    from glyphoxa_htmx.adapters import mail

    controller, inbox = smtp_server
    app = _app(
        database_url,
        smtp_url=f"smtp://127.0.0.1:{controller.port}",
        smtp_ca_file=str(certificate[0]),
        mail_from="Glyphoxa <billing@glyphoxa.test>",
    )
    with app.app_context():
        mail.send("dm@example.test", "Your Glyphoxa payment failed", "Please update your card.")
    (msg,) = inbox.messages
    assert msg["tls"] is True and msg["to"] == ["dm@example.test"] and msg["from"] == "billing@glyphoxa.test"
    assert "Subject: Your Glyphoxa payment failed" in msg["data"] and "Please update your card." in msg["data"]


def test_untrusted_certificate_is_refused(database_url, smtp_server):
    from glyphoxa_htmx.adapters import mail

    controller, inbox = smtp_server
    app = _app(database_url, smtp_url=f"smtp://127.0.0.1:{controller.port}")  # no CA for the self-signed cert
    with app.app_context(), pytest.raises(mail.MailError):
        mail.send("dm@example.test", "x", "y")
    assert inbox.messages == []


def test_server_without_starttls_is_refused(database_url, plain_server):
    from glyphoxa_htmx.adapters import mail

    controller, inbox = plain_server
    app = _app(database_url, smtp_url=f"smtp://127.0.0.1:{controller.port}")
    with app.app_context(), pytest.raises(mail.MailError, match="STARTTLS"):
        mail.send("dm@example.test", "x", "y")
    assert inbox.messages == []


def test_embedded_default_writes_to_the_instance_directory(database_url, tmp_path):
    from glyphoxa_htmx.adapters import mail

    app = _app(database_url, instance_dir=str(tmp_path))
    with app.app_context():
        mail.send("dm@example.test", "Hello", "Body text")
    (file,) = (tmp_path / "mail").glob("*.eml")
    text = file.read_text()
    assert "To: dm@example.test" in text and "Subject: Hello" in text and "Body text" in text
