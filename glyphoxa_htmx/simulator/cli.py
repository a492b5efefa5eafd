"""``glyphoxa-web gateway-sim``: run the gateway simulator in the foreground until Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

import click

from glyphoxa_htmx.embedded import libpq_url


@click.command("gateway-sim")
@click.option("--db", "database_url", envvar="DATABASE_URL", required=True, help="PostgreSQL URL (env DATABASE_URL).")
@click.option("--listen", default="127.0.0.1:50051", show_default=True, help="host:port for the gRPC listener.")
@click.option(
    "--secret",
    envvar="GATEWAY_SECRET",
    required=True,
    help="Management secret clients must send as x-mgmt-secret (env GATEWAY_SECRET).",
)
@click.option("--activation-delay", type=float, default=1.0, show_default=True, help="Seconds from pending to active.")
@click.option("--line-interval", type=float, default=3.0, show_default=True, help="Seconds between transcript lines.")
@click.option("--heartbeat-interval", type=float, default=5.0, show_default=True, help="Seconds between heartbeats.")
@click.option("--bots-disconnected", is_flag=True, help="Start with every tenant's bot disconnected.")
def gateway_sim(
    database_url: str,
    listen: str,
    secret: str,
    activation_delay: float,
    line_interval: float,
    heartbeat_interval: float,
    bots_disconnected: bool,
) -> None:
    """Run the Glyphoxa gateway simulator (development and demos only)."""
    from glyphoxa_htmx.simulator.server import GatewaySimulator

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sim = GatewaySimulator(
        libpq_url(database_url),
        secret=secret,
        listen=listen,
        activation_delay=activation_delay,
        line_interval=line_interval,
        heartbeat_interval=heartbeat_interval,
        bot_connected=not bots_disconnected,
    )
    done = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        sim.start()
        click.echo(f"gateway simulator listening on {sim.address} (Ctrl-C to stop)")
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        click.echo("stopping gateway simulator")
        sim.stop()
