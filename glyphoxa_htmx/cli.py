"""`glyphoxa-web`: run the app on its embedded defaults, manage admins, seed demo data, and
run the gateway simulator standalone."""

from __future__ import annotations

import logging
import secrets
import sys

import click

from glyphoxa_htmx.config import ConfigError, load_settings

log = logging.getLogger("glyphoxa_htmx.cli")


@click.group()
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
    try:
        settings.validate()
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    logs.setup(settings.log_level, settings.log_json)
    host = host or settings.host
    port = port or settings.port
    settings.database_url = resolve_database_url(settings)
    simulator = None
    if not settings.gateway_grpc_addr and settings.gateway_simulator and not settings.production:
        from glyphoxa_htmx.simulator.server import GatewaySimulator
        from glyphoxa_htmx.embedded import libpq_url

        settings.gateway_secret = secrets.token_urlsafe(24)
        simulator = GatewaySimulator(
            libpq_url(settings.database_url), secret=settings.gateway_secret, listen="127.0.0.1:0",
            activation_delay=settings.sim_activation_delay, line_interval=settings.sim_line_interval,
        )
        # The simulator creates the gateway-owned tables, like the gateway does on start.
        simulator.start()
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
    click.echo(f"Glyphoxa Web on http://{host}:{port}  (dev sign-in: {'on' if settings.dev_login else 'off'})")
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        if simulator is not None:
            simulator.stop()


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
def create_admin(discord_id: str | None, user_id: str | None, email: str | None) -> None:
    """Promote an existing user (who has signed in once) to super admin."""
    from glyphoxa_htmx.core.errors import NotFound
    from glyphoxa_htmx.services import users

    app = _app_for_cli()
    with app.app_context():
        try:
            user = users.promote_to_admin(discord_id=discord_id, user_id=user_id, email=email)
        except (NotFound, ValueError) as exc:
            click.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
            sys.exit(1)
        click.echo(f"{user.name} ({user.id}) is now a super admin")


@main.command("seed")
def seed_cmd() -> None:
    """Create the demo table (idempotent)."""
    from glyphoxa_htmx.seed import seed_demo

    app = _app_for_cli()
    with app.app_context():
        seed_demo()
    click.echo("demo data ready")


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


try:  # the simulator's standalone command
    from glyphoxa_htmx.simulator.cli import gateway_sim

    main.add_command(gateway_sim, "gateway-sim")
except ImportError:  # pragma: no cover - only while the simulator is being built
    pass


if __name__ == "__main__":  # pragma: no cover
    main()
