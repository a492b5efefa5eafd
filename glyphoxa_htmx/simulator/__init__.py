"""Gateway simulator: plays the Glyphoxa v1 gateway and its workers against PostgreSQL.
Development, demo and test tooling only; never started in production.

Modules: ``server`` (GatewaySimulator), ``ddl`` (the gateway's/worker's table shapes),
``seed`` (past sessions for the demo), ``cli`` (``glyphoxa-web gateway-sim``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glyphoxa_htmx.simulator.server import GatewaySimulator

__all__ = ["GatewaySimulator"]


def __getattr__(name: str) -> Any:  # lazy: importing ddl must not start pulling in the server
    if name == "GatewaySimulator":
        from glyphoxa_htmx.simulator.server import GatewaySimulator

        return GatewaySimulator
    raise AttributeError(name)
