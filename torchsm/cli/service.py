"""`torchsm service install|uninstall|status`: `torchsm run NAME` as a systemd unit
(torchsm.service)."""

from __future__ import annotations

from pathlib import Path

import click

from torchsm.cli.common import Env, common_options, pass_env, warn
from torchsm.cli.run import agent_output_option


def _unit_options(command):
    command = click.option("--unit-dir", metavar="DIR", type=click.Path(file_okay=False),
                           help="Where the unit file goes (default: ~/.config/systemd/user "
                                "with --user, else /etc/systemd/system).")(command)
    return click.option("--user", "user_unit", is_flag=True,
                        help="A unit of your own systemd (systemctl --user): no root "
                             "needed; run `loginctl enable-linger` once so it runs "
                             "without a login.")(command)


@click.group()
@common_options
def service() -> None:
    """Run a Nova's supervisor (`torchsm run NAME`) as a systemd service, restarted when
    it fails. --user (recommended) installs it for your own systemd: no root needed,
    and `loginctl enable-linger $USER` keeps it running without a login."""


@service.command()
@click.argument("name")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- COMMAND [ARG...]")
@_unit_options
@click.option("--cwd", metavar="DIR", help="Run the agent in DIR (default: here).")
@click.option("--env", "pass_env", multiple=True, metavar="VAR",
              help="Also give the service this variable, with its value here (repeat "
                   "it; e.g. CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY).")
@agent_output_option
@common_options
@pass_env
def install(env: Env, name: str, command: tuple[str, ...], user_unit: bool,
            unit_dir: str | None, cwd: str | None, pass_env: tuple[str, ...],
            agent_output: str) -> None:
    """Write a systemd unit torchsm-NAME.service that runs `torchsm run NAME -- COMMAND`.

    \b
        torchsm service install torch --user --cwd ~/code/project --env CLAUDE_CODE_OAUTH_TOKEN \\
            -- claude -c -p {prompt} --output-format stream-json --verbose
        systemctl --user enable --now torchsm-torch
        loginctl enable-linger $USER      # --user: keep running without a login

    systemd restarts the supervisor when it fails (10 s apart; after 5 failures within
    10 minutes it gives up until `systemctl reset-failed`), and a stop reaches the agent:
    the supervisor stops it and records the session, then systemd kills whatever is
    left. The unit bakes in this home, PATH and HOME; those and each --env variable are
    written to HOME/service/NAME.env (0600), never to the unit, which anyone may read.
    Without --user it is a system unit (needs root) that runs as the home's owner.
    Installing again replaces the unit torchsm wrote; a unit file of someone else's is
    refused. Nothing is enabled or started: the next steps are printed.
    """
    from torchsm.supervisor import systemd as lib

    if not command:
        raise click.UsageError("no agent command given: torchsm service install NAME "
                               "[--user] -- COMMAND [ARG...]")
    spec = lib.prepare(env.home, env.config, name, command, user_unit=user_unit, cwd=cwd,
                       pass_env=pass_env, agent_output=agent_output)
    done = lib.install(spec, _unit_dir(unit_dir, user_unit),
                       lib.find_systemctl(user_unit))
    _warn(done["warnings"])
    env.emit(done, lambda: _installed_text(done))


def _installed_text(done: dict) -> str:
    verb = "wrote" if done["changed"] else "already installed:"
    return "\n".join([f"{verb} {done['path']}", f"environment: {done['env_file']} (0600)",
                      f"ExecStart={done['exec_start']}", "next:",
                      *(f"  {step}" for step in done["next"])])


@service.command()
@click.argument("name")
@_unit_options
@common_options
@pass_env
def uninstall(env: Env, name: str, user_unit: bool, unit_dir: str | None) -> None:
    """Stop and disable torchsm-NAME (where systemd runs), then remove its unit file and
    HOME/service/NAME.env. Exits 1 when it is not installed."""
    from torchsm.supervisor import systemd as lib

    done = lib.uninstall(env.home, name, _unit_dir(unit_dir, user_unit),
                         lib.find_systemctl(user_unit))
    _warn(done["warnings"])
    env.emit(done, "\n".join(f"removed {path}" for path in done["removed"]))


@service.command()
@click.argument("name")
@_unit_options
@common_options
@pass_env
def status(env: Env, name: str, user_unit: bool, unit_dir: str | None) -> None:
    """Whether torchsm-NAME is installed, what it runs, and (where systemd runs) whether
    it is active and enabled."""
    from torchsm.supervisor import systemd as lib

    found = lib.status(env.home, name, _unit_dir(unit_dir, user_unit),
                       lib.find_systemctl(user_unit))
    env.emit(found, lambda: _status_text(found))


def _status_text(found: dict) -> str:
    if not found["installed"]:
        return f"{found['unit']}: not installed ({found['path']})"
    lines = [f"{found['unit']}: installed at {found['path']}"
             + ("" if found["ours"] else " (not written by torchsm)"),
             f"ExecStart={found['exec_start']}",
             f"environment: {found['env_file'] or 'missing'}"]
    if found["active"] is not None:
        lines.append(f"active: {found['active']}, enabled: {found['enabled']}")
    return "\n".join(lines)


def _unit_dir(option: str | None, user_unit: bool) -> Path:
    from torchsm.supervisor.systemd import default_unit_dir

    return Path(option).absolute() if option else default_unit_dir(user_unit)


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        warn(warning)
