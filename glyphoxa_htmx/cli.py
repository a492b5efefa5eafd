"""`glyphoxa-web`: run the app on its embedded defaults, manage admins, seed demo data, and
run the gateway simulator standalone."""

from __future__ import annotations

import atexit
import logging
import secrets
import signal
import sys

import click

from glyphoxa_htmx.config import ConfigError, load_settings

log = logging.getLogger("glyphoxa_htmx.cli")


class _Main(click.Group):
    """Start-up failures an operator must fix (a bad DATABASE_URL, ...) print one line, exit 1."""

    def invoke(self, ctx):
        from glyphoxa_htmx.bootstrap import StartupError, exit_on_startup_error

        try:
            return super().invoke(ctx)
        except StartupError as exc:
            exit_on_startup_error(exc)


@click.group(cls=_Main)
def main() -> None:
    """Glyphoxa Web management plane."""


def _app_for_cli():
    from glyphoxa_htmx.app import create_app

    try:
        return create_app(load_settings())
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@main.command()
@click.option("--host", default=None, help="Interface to bind (default HOST or 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default PORT or 5000).")
def run(host: str | None, port: int | None) -> None:
    """Run the app for development: embedded PostgreSQL, gateway simulator, demo data."""
    from glyphoxa_htmx.app import create_app, resolve_database_url
    from glyphoxa_htmx.bootstrap import ensure_gateway_tables_for_dev, migrate_db
    from glyphoxa_htmx.core import logs

    settings = load_settings()
    # SIGTERM (e.g. to `make run`'s process group) unwinds like Ctrl-C, so the cleanup below runs.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    from glyphoxa_htmx.embedded import stop_embedded

    atexit.register(stop_embedded)  # also when start-up fails half-way (idempotent)
    try:
        settings.validate()
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    logs.setup(settings.log_level, settings.log_json)
    host = host or settings.host
    port = port or settings.port
    settings.host = host  # dev sign-in needs a loopback bind (or GLYPHOXA_DEV_LOGIN=1): judge the real one
    settings.database_url = resolve_database_url(settings)
    from glyphoxa_htmx.bootstrap import check_database

    check_database(settings.database_url)
    simulator = None
    if not settings.gateway_grpc_addr and settings.gateway_simulator and not settings.production:
        from glyphoxa_htmx.embedded import libpq_url
        from glyphoxa_htmx.simulator.server import GatewaySimulator

        settings.gateway_secret = secrets.token_urlsafe(24)
        simulator = GatewaySimulator(
            libpq_url(settings.database_url),
            secret=settings.gateway_secret,
            listen="127.0.0.1:0",
            activation_delay=settings.sim_activation_delay,
            line_interval=settings.sim_line_interval,
        )
        # The simulator creates the gateway-owned tables, like the gateway does on start.
        simulator.start()
        assert simulator.address is not None  # set by start()
        settings.gateway_grpc_addr = simulator.address
        click.echo(f"gateway simulator listening on {simulator.address}")
    app = create_app(settings)
    app.extensions["glyphoxa.simulator"] = simulator
    migrate_db(app)
    if not settings.production:
        ensure_gateway_tables_for_dev(app)
    from glyphoxa_htmx.bootstrap import check_gateway_tables

    check_gateway_tables(app)
    if settings.seed_demo:
        from glyphoxa_htmx.seed import seed_demo

        with app.app_context():
            seed_demo()
    click.echo(f"Glyphoxa Web on http://{host}:{port}  (dev sign-in: {'on' if settings.dev_login_enabled else 'off'})")
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if simulator is not None:
            simulator.stop()
        stop_embedded()
        click.echo("stopped")


def _exit_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


@main.command("migrate")
def migrate_cmd() -> None:
    """Apply database migrations for the web schema."""
    from glyphoxa_htmx.bootstrap import migrate_db

    migrate_db(_app_for_cli())
    click.echo("migrations applied")


@main.command("create-admin")
@click.option("--discord-id", default=None)
@click.option("--user-id", default=None)
@click.option("--email", default=None)
@click.option("--name", default=None, help="The user's exact name (as on the dev sign-in page), if unique.")
def create_admin(discord_id: str | None, user_id: str | None, email: str | None, name: str | None) -> None:
    """Promote an existing user (who has signed in once) to super admin."""
    from glyphoxa_htmx.bootstrap import database_startup
    from glyphoxa_htmx.core.errors import NotFound
    from glyphoxa_htmx.services import users

    app = _app_for_cli()
    with database_startup(app.config["SQLALCHEMY_DATABASE_URI"], "create-admin"), app.app_context():
        try:
            user = users.promote_to_admin(discord_id=discord_id, user_id=user_id, email=email, name=name)
        except (NotFound, ValueError) as exc:
            click.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
            sys.exit(1)
        click.echo(f"{user.name} ({user.id}) is now a super admin")


@main.command("adopt-tenant")
@click.argument("tenant_id")
@click.option(
    "--owner-discord-id", default=None, help="Discord user id of the owner: they join on their first sign-in."
)
@click.option("--name", default=None, help="Display name of the table (default: the tenant id).")
@click.option("--link", is_flag=True, help="Also print a one-time, signed, expiring invite link.")
@click.option("--expires-days", default=14, show_default=True, type=int, help="Days until the invitation expires.")
def adopt_tenant(tenant_id: str, owner_discord_id: str | None, name: str | None, link: bool, expires_days: int) -> None:
    """Adopt an existing gateway tenant: give it a table here and invite its owner (scripted migrations)."""
    from glyphoxa_htmx.core.errors import DomainError, ValidationError
    from glyphoxa_htmx.services import adoption

    app = _app_for_cli()
    with app.app_context():
        try:
            adopted = adoption.adopt(
                None,
                tenant_id,
                {
                    "name": name or tenant_id,
                    "owner_discord_id": owner_discord_id,
                    "link": link,
                    "expires_days": expires_days,
                },
                via="cli",
            )
        except ValidationError as exc:
            for field, message in exc.errors.items():
                click.echo(f"error: {('--' + field.replace('_', '-') + ': ') if field else ''}{message}", err=True)
            sys.exit(1)
        except DomainError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        click.echo(f"{adopted.tenant.id} is now managed here as “{adopted.tenant.name}”")
        if adopted.invitation.discord_id:
            click.echo(f"owner: Discord user {adopted.invitation.discord_id} joins on their first Discord sign-in")
        if adopted.link_token:
            from flask import url_for

            base = app.extensions["glyphoxa.settings"].public_url.rstrip("/")
            with app.test_request_context():
                path = url_for("auth.invite", token=adopted.link_token)
            click.echo(f"invite link (once, until {adopted.invitation.expires_at:%Y-%m-%d %H:%M} UTC): {base}{path}")


@main.group("i18n")
def i18n_group() -> None:
    """Translation catalogues (German in translations/de/parts/*.po)."""


@i18n_group.command("check")
@click.option("--locale", default="de", show_default=True)
@click.option("--unused/--no-unused", default=False, help="Also list translations nothing uses.")
def i18n_check(locale: str, unused: bool) -> None:
    """List strings that are untranslated, or visible but not marked for translation; exit 1 if any."""
    from glyphoxa_htmx.i18n_catalog import check

    report = check(locale)
    for line in report.lines():
        if unused or not line.startswith("unused translation"):
            click.echo(line)
    click.echo(
        f"{len(report.missing)} untranslated, {len(report.unmarked)} unmarked, "
        f"{len(report.conflicts)} conflicting, {len(report.unused)} unused",
        err=True,
    )
    sys.exit(0 if report.ok else 1)


@i18n_group.command("compile")
@click.option("--locale", default="de", show_default=True)
def i18n_compile(locale: str) -> None:
    """Merge translations/<locale>/parts/*.po into the compiled catalogue the app loads."""
    from glyphoxa_htmx.i18n_catalog import write_compiled

    click.echo(str(write_compiled(locale)))


@main.command("seed")
def seed_cmd() -> None:
    """Create the demo table (idempotent)."""
    from glyphoxa_htmx.bootstrap import database_startup
    from glyphoxa_htmx.seed import seed_demo

    app = _app_for_cli()
    with database_startup(app.config["SQLALCHEMY_DATABASE_URI"], "seeding"), app.app_context():
        seed_demo()
    click.echo("demo data ready")


@main.command("rewrap-secrets")
@click.option("--rotate", is_flag=True, help="Create a new key version first (local keyring or Vault Transit).")
def rewrap_secrets(rotate: bool) -> None:
    """Re-encrypt every stored provider key with the newest key version (Vault's rewrap, or
    decrypt + encrypt for the local keyring). Old versions keep decrypting until you retire them."""
    from glyphoxa_htmx.adapters.secrets import SecretsError
    from glyphoxa_htmx.core.deps import secrets
    from glyphoxa_htmx.services import providers

    app = _app_for_cli()
    with app.app_context():
        backend = secrets()
        try:
            if rotate:
                click.echo(f"{backend.label}: new key version {backend.rotate()}")
            changed, same = providers.rewrap_all()
        except SecretsError as exc:
            click.echo(f"error: {exc.message} ({exc.details})", err=True)
            sys.exit(1)
        click.echo(f"{backend.label}: {changed} key(s) rewrapped, {same} already on the newest version")


@main.command("billing-sweep")
def billing_sweep_cmd() -> None:
    """Downgrade tables whose 7-day past-due grace has ended (run it hourly, e.g. from cron)."""
    from glyphoxa_htmx.services import billing

    app = _app_for_cli()
    with app.app_context():
        done = billing.sweep()
    for tenant_id, before, after in done:
        click.echo(f"{tenant_id}: {before} -> {after}")
    click.echo(f"{len(done)} table(s) changed")


@main.command("voice-samples-cleanup")
def voice_samples_cleanup_cmd() -> None:
    """Finish voice-sample deletes (and abandoned uploads) whose storage step failed: object
    first, then row (run it now and then, e.g. hourly from cron)."""
    from glyphoxa_htmx.services import voice_samples

    app = _app_for_cli()
    with app.app_context():
        done, failed = voice_samples.cleanup()
    click.echo(f"{done} sample(s) removed, {failed} still failing")
    if failed:
        sys.exit(1)


try:  # the simulator's standalone command
    from glyphoxa_htmx.simulator.cli import gateway_sim

    main.add_command(gateway_sim, "gateway-sim")
except ImportError:  # pragma: no cover - only while the simulator is being built
    pass


if __name__ == "__main__":  # pragma: no cover
    main()
