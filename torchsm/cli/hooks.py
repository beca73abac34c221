"""`torchsm hooks scan|install`."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env
from torchsm.errors import TorchsmError


@click.group()
@common_options
def hooks() -> None:
    """Install torchsm's Claude Code hooks; scan hooks for runaway patterns."""


@hooks.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@common_options
@pass_env
def scan(env: Env, paths: tuple[str, ...]) -> None:
    """Find dangerous patterns in hook scripts and settings: agents started from hooks,
    scripts re-executing themselves, endless loops without sleep, API keys in clear.
    Exits 1 when it finds any."""
    from torchsm.hookscan import scan_paths

    try:
        findings = scan_paths(list(paths))
    except FileNotFoundError as exc:
        raise TorchsmError(f"no such file: {exc.args[0]}") from None
    env.emit([f.as_dict() for f in findings],
             "\n".join(map(str, findings)) if findings else "no dangerous patterns found")
    if findings:
        count = len(findings)
        raise TorchsmError(f"{count} dangerous pattern{'s' if count > 1 else ''} found")


@hooks.command()
@click.option("--nova", required=True, metavar="NAME", help="The Nova these hooks drive.")
@click.option("--project", type=click.Path(file_okay=False), default=".", show_default=True,
              help="The project whose .claude/settings.json gets the hooks.")
@common_options
@pass_env
def install(env: Env, nova: str, project: str) -> None:
    """Merge torchsm's hook entries (every event) into PROJECT/.claude/settings.json.
    Keeps your own hooks and settings, writes a backup, and is safe to run again."""
    from pathlib import Path

    from torchsm import hookinstall, novas

    novas.status(env.home, env.config, nova)  # the Nova must exist in this home
    done = hookinstall.install(Path(project).resolve(), nova, env.home.path)
    text = (f"installed torchsm hooks for {nova} in {done['settings']}"
            + (f" (backup: {done['backup']})" if done["backup"] else "")
            if done["changed"] else f"hooks for {nova} already installed in {done['settings']}")
    env.emit(done, text)
