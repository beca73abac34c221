"""`torchsm serve [--port 8787] [--since DURATION]`."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env
from torchsm.cli.numbers import DURATION

REFRESH_S = 30


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True,
              help="The port on 127.0.0.1 (0: any free one).")
@click.option("--since", "since", default=None, metavar="DURATION", type=DURATION,
              help="The window: 30m, 6h, 2d, ... [default: the dashboard's, the home's "
                   "age from 1h to 24h; the metrics', 24h]")
@click.option("--utc", is_flag=True, help="The dashboard's times in UTC.")
@common_options
@pass_env
def serve(env: Env, port: int, since: str | None, utc: bool) -> None:
    """Serve the dashboard on http://127.0.0.1:PORT/ (only this machine can reach it),
    refreshed every 30 s, and the metrics in the Prometheus text format on /metrics
    (as `torchsm metrics --format prometheus`, over the same window); /healthz says ok.
    Only requests for localhost or a loopback address are answered (421 otherwise).
    Prints the address; runs until Ctrl-C (exit 0). A port in use is one error line,
    exit 1."""
    from torchsm.observe.http_server import open_server
    from torchsm.usage.report import parse_duration

    window = None if since is None else parse_duration(since)
    server = open_server(env.home, env.config, port, window, REFRESH_S, utc=utc)
    click.echo(f"serving http://127.0.0.1:{server.server_address[1]}/ and /metrics"
               " (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how it is meant to stop
    finally:
        server.server_close()
