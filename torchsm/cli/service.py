"""`torchsm service install|uninstall|status`: `torchsm run NAME` as a systemd unit
(torchsm-NAME.service), or with --fleet the fleet's keeper, `torchsm up --foreground`
(torchsm.service)."""

from __future__ import annotations

from pathlib import Path

import click

from torchsm.cli.common import AgentCommandAfterDashes, Env, common_options, pass_env, warn
from torchsm.cli.complete import nova_names
from torchsm.cli.run import agent_output_option

NAME_OR_FLEET = "[NAME | --fleet]"


def _unit_options(command, metavar: str = NAME_OR_FLEET):
    command = click.option("--unit-dir", metavar="DIR", type=click.Path(file_okay=False),
                           help="Where the unit file goes (default: ~/.config/systemd/user "
                                "with --user, else /etc/systemd/system).")(command)
    command = click.option("--user", "user_unit", is_flag=True,
                           help="A unit of your own systemd (systemctl --user): no root "
                                "needed; run `loginctl enable-linger` once so it runs "
                                "without a login.")(command)
    command = click.option("--fleet", is_flag=True,
                           help="The fleet's unit torchsm.service (`torchsm up "
                                "--foreground`) instead of one Nova's.")(command)
    return click.argument("name", required=False, metavar=metavar,
                          shell_complete=nova_names)(command)


def _nova_or_fleet(name: str | None, fleet: bool) -> str | None:
    """The Nova whose unit is meant, or None for the fleet's."""
    if (name is None) == (not fleet):
        raise click.UsageError("give either a Nova's NAME or --fleet")
    return name


@click.group()
@common_options
def service() -> None:
    """Run a Nova's supervisor (`torchsm run NAME`), or with --fleet the whole fleet
    (`torchsm up --foreground`), as a systemd service, restarted when it fails. --user
    (recommended) installs it for your own systemd: no root needed, and `loginctl
    enable-linger $USER` keeps it running without a login."""


@service.command(cls=AgentCommandAfterDashes)
@lambda command: _unit_options(command, f"{NAME_OR_FLEET} -- COMMAND [ARG...]")
@click.option("--cwd", metavar="DIR", help="Run the agent (the fleet: every supervisor) "
              "in DIR (default: here).")
@click.option("--env", "pass_env", multiple=True, metavar="VAR",
              help="Also give the service this variable, with its value here (repeat "
                   "it; e.g. CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY).")
@agent_output_option
@common_options
@pass_env
def install(env: Env, name: str | None, fleet: bool, user_unit: bool, unit_dir: str | None,
            cwd: str | None, pass_env: tuple[str, ...], agent_output: str) -> None:
    """Write a systemd unit torchsm-NAME.service that runs `torchsm run NAME -- COMMAND`;
    with --fleet, torchsm.service that runs `torchsm up --foreground [-- COMMAND]` (the
    Novas' own commands win; COMMAND is needed unless each Nova keeps one).

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

    The fleet's unit (one per host: its name is no Nova's) restarts the keeper when it
    fails; the keeper restarts a supervisor that dies alone, with backoff. Its stop
    gives each supervisor stop_grace_s + 30 s (TimeoutStopSec: 15 s more).
    """
    from torchsm.supervisor import systemd as lib

    command = tuple(click.get_current_context().meta.get("agent_command", ()))
    if _nova_or_fleet(name, fleet) is None:
        if agent_output != "auto":
            raise click.UsageError("--agent-output is for one Nova's unit, not --fleet")
        spec = lib.prepare_fleet(env.home, env.config, command, user_unit=user_unit,
                                 cwd=cwd, pass_env=pass_env)
    else:
        if not command:
            raise click.UsageError("no agent command given: torchsm service install NAME "
                                   "[--user] -- COMMAND [ARG...]")
        spec = lib.prepare(env.home, env.config, name, command, user_unit=user_unit,
                           cwd=cwd, pass_env=pass_env, agent_output=agent_output)
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
@_unit_options
@common_options
@pass_env
def uninstall(env: Env, name: str | None, fleet: bool, user_unit: bool,
              unit_dir: str | None) -> None:
    """Stop and disable torchsm-NAME (where systemd runs), then remove its unit file and
    HOME/service/NAME.env (--fleet: torchsm.service and HOME/service/_fleet.env). Exits
    1 when it is not installed."""
    from torchsm.supervisor import systemd as lib

    done = lib.uninstall(env.home, _nova_or_fleet(name, fleet), _unit_dir(unit_dir, user_unit),
                         lib.find_systemctl(user_unit))
    _warn(done["warnings"])
    env.emit(done, "\n".join(f"removed {path}" for path in done["removed"]))


@service.command()
@_unit_options
@common_options
@pass_env
def status(env: Env, name: str | None, fleet: bool, user_unit: bool,
           unit_dir: str | None) -> None:
    """Whether torchsm-NAME (--fleet: torchsm.service) is installed, what it runs, and
    (where systemd runs) whether it is active and enabled."""
    from torchsm.supervisor import systemd as lib

    found = lib.status(env.home, _nova_or_fleet(name, fleet), _unit_dir(unit_dir, user_unit),
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
