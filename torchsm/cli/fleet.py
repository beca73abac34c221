"""`torchsm up`, `down`, `restart`, `ps`: the fleet of supervisors on one host, in the
manner of docker compose (torchsm.supervisor.fleet_commands, torchsm.observe.fleet_status)."""

from __future__ import annotations

import click

from torchsm.cli import colour
from torchsm.cli.common import AgentCommandAfterDashes, Env, common_options, pass_env, table
from torchsm.cli.complete import nova_names
from torchsm.cli.times import shown, text_clock


@click.command(cls=AgentCommandAfterDashes)
@click.argument("names", nargs=-1, metavar="[NAME...] [-- COMMAND [ARG...]]",
                shell_complete=nova_names)
@click.option("--foreground", is_flag=True,
              help="Keep the fleet in this process until SIGTERM or Ctrl-C (for a service "
                   "manager: `torchsm service install --fleet`), printing what the "
                   "supervisors print.")
@common_options
@pass_env
def up(env: Env, names: tuple[str, ...], foreground: bool) -> None:
    """Start a supervisor (`torchsm run NAME -- COMMAND`) for every Nova of the home, or
    the named ones, in the background, and return; the fleet keeps them running.

    \b
        torchsm up -- claude -c -p {prompt} --output-format stream-json --verbose
        torchsm up torch echo
        torchsm nova set torch --command 'python3 agent.py {prompt}'

    Written after NAME... and `--`, COMMAND is the agent command of each Nova that keeps
    none of its own (`nova add|set NAME --command`, which wins); the fleet remembers it,
    so a supervisor it restarts runs the same, and `up` again needs none. A supervisor
    that dies is restarted alone, after a backoff (1 s doubling to 300 s, jittered; afresh
    once it ran 2 minutes). With a keeper already running, `up NAME` adds NAME to it. A
    Nova whose supervisor runs outside the fleet (`torchsm run` by hand) is left alone.
    The keeper and its supervisors print to HOME/log/fleet.log.
    """
    from torchsm.supervisor import fleet_commands

    command = click.get_current_context().meta.get("agent_command")
    done = fleet_commands.up(env.home, env.config, list(names), command,
                             foreground=foreground)
    env.emit(done, lambda: _up_text(done))


def _up_text(done: dict) -> str:
    lines = [f"{name}: supervised outside the fleet (pid {pid}): left alone"
             for name, pid in done["outside"].items()]
    for name, member in done["novas"].items():
        pid = member.get("pid")
        lines.append(f"{name}: supervisor pid {pid}" if pid else
                     f"{name}: not running: {member.get('why') or 'not started yet'}")
    if done["keeper"]:
        lines.append(f"fleet keeper pid {done['keeper']} (`torchsm ps`, `torchsm down`)")
    return "\n".join(lines)


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME...]", shell_complete=nova_names)
@common_options
@pass_env
def down(env: Env, names: tuple[str, ...]) -> None:
    """Stop the fleet's supervisors cleanly (every one, and the keeper, or the named ones)
    and wait for them: each stops its agent (SIGTERM, then SIGKILL after [supervisor]
    stop_grace_s) and records the session. A supervisor started by hand is not touched."""
    from torchsm.supervisor import fleet_commands

    done = fleet_commands.down(env.home, env.config, list(names))
    env.emit(done, lambda: "\n".join([f"{name}: stopped" for name in done["stopped"]]
                                     + (["fleet keeper stopped"] if done["keeper"] and
                                        done["keeper_stopped"] else [])) or "no fleet runs")


@click.command()
@click.argument("name", shell_complete=nova_names)
@common_options
@pass_env
def restart(env: Env, name: str) -> None:
    """Stop Nova NAME's supervisor in the fleet cleanly and start it again at once."""
    from torchsm.supervisor import fleet_commands

    done = fleet_commands.restart(env.home, env.config, name)
    pid = done["novas"][name].get("pid")
    env.emit(done, f"{name}: supervisor pid {pid} (was {done['before'] or '-'})")


@click.command()
@common_options
@pass_env
def ps(env: Env) -> None:
    """List every Nova and its supervisor: PID, BY (fleet, or outside: started by hand),
    UPTIME, RESTARTS (by the fleet), STATE, the SESSION running and its AGE, and the NEXT
    START and why (REASON, as `status` says it)."""
    from torchsm.observe.fleet_status import ps_rows

    rows = ps_rows(env.home, env.config)
    clock = text_clock()
    env.emit(rows, lambda: table(
        [[r["nova"], r["pid"], r["by"], _seconds(r["uptime_s"]), r["restarts"], r["state"],
          r["session"], _seconds(r["session_age_s"]), shown(r["next_start"], clock), r["why"]]
         for r in rows],
        ["NOVA", "PID", "BY", "UPTIME", "RESTARTS", "STATE", "SESSION", "AGE", "NEXT START",
         "REASON"], {"STATE": colour.state}) if rows else (
            "no Novas (add one with `torchsm nova add NAME`)"))


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    value = int(value)
    return f"{value // 3600}h{value % 3600 // 60:02d}m" if value >= 3600 else \
        f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"
