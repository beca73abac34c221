"""`torchsm logs NAME [-f] [--session N] [-n K]`: what a Nova's agent printed."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, json_line, pass_env, printable, warn
from torchsm.cli.complete import nova_names
from torchsm.cli.numbers import count

FOLLOW_LINES = 10  # shown before following, as `tail -f` does, unless -n says otherwise


@click.command()
@click.argument("name", shell_complete=nova_names)
@click.option("--follow", "-f", is_flag=True,
              help="Then print lines as they are written (across rotations) until Ctrl-C; "
                   "with --session, until that session ends.")
@click.option("--session", "session_id", type=count(), metavar="N",
              help="Only session N's part (its id in `torchsm sessions`).")
@click.option("--lines", "-n", "limit", type=count(0), metavar="K",
              help=f"Only the last K lines (default: all; {FOLLOW_LINES} with --follow).")
@common_options
@pass_env
def logs(env: Env, name: str, follow: bool, session_id: int | None, limit: int | None) -> int:
    """Show what Nova NAME's agent printed, stdout and stderr, session by session: each
    session's part opens with `=== session ID ...` and closes with `=== session ID ended
    ...`. Read from HOME/log/NAME.log and its rotated files ([logs] in torchsm.toml)."""
    from torchsm.agent import log as agent_log

    agent_log.check_session(env.home, env.config, name, session_id)
    chosen = agent_log.SessionFilter(session_id) if session_id is not None else None
    current = agent_log.open_current(env.home, name)
    if current is None and not agent_log.old_files(env.home, name):
        _no_log(env, name, session_id, follow)
        if not follow:
            return 0
    kept = (line for line in agent_log.kept_lines(env.home, name, current)
            if chosen is None or chosen.keeps(line))
    shown = agent_log.last(kept, FOLLOW_LINES if follow and limit is None else limit)
    if not follow:
        return _show_all(env, name, session_id, shown)
    try:
        _show_lines(env, shown)
        for line in agent_log.follow(env.home, name, current,
                                     stop=lambda: chosen is not None and chosen.ended):
            if chosen is None or chosen.keeps(line):
                _show_lines(env, [line])
    except KeyboardInterrupt:  # Ctrl-C is how following ends
        pass
    return 0


def _no_log(env: Env, name: str, session_id: int | None, follow: bool) -> None:
    said = f"{name} has no log yet: none of its sessions has run here"
    if follow:
        warn(f"{said}; waiting for one")
    else:
        env.emit({"nova": name, "session": session_id, "lines": []}, said)


def _show_all(env: Env, name: str, session_id: int | None, shown: list[str]) -> int:
    if not shown and session_id is not None and not env.json:
        click.echo(f"nothing of session {session_id} is left in {name}'s log (rotated out)")
        return 0
    env.emit({"nova": name, "session": session_id, "lines": [s.rstrip("\n") for s in shown]},
             lambda: "".join(shown).rstrip("\n"))
    return 0


def _show_lines(env: Env, lines: list[str]) -> None:
    """Lines as they come (with --json one JSON string a line, for a reader that takes
    each as it comes); flushed, so a pipe sees them at once."""
    for line in lines:
        text = line.rstrip("\n")
        click.echo(json_line(text) if env.json else printable(text))
    click.get_text_stream("stdout").flush()
