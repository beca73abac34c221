"""`torchsm hooks scan|install`."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env, warn
from torchsm.cli.complete import nova_names
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
    Exits 1 when it finds any.

    \b
    Folders are scanned recursively (not .git, node_modules, __pycache__); a symlinked
    folder is followed once, and a symlink loop is a note. Files of any size are read line
    by line; a line over 4 MiB is scanned in pieces (with a note). Binary files (a NUL byte
    in the first 8 KiB) are skipped with a note; bytes that are not UTF-8 are replaced and
    the rest scanned, with a note. Notes go to stderr as `torchsm: note: ...`.

    \b
    A file that cannot be read (permission denied, a read error, a symlink to nothing
    named on the command line) makes the scan incomplete: it never says "no dangerous
    patterns found" then, and exits 1 with `torchsm: error: scan incomplete: ...`."""
    from torchsm.hooks.scanner import scan as scan_files

    try:
        report = scan_files(list(paths))
    except FileNotFoundError as exc:
        raise TorchsmError(f"no such file: {exc.args[0]}") from None
    for note in report.notes:
        click.echo(f"torchsm: note: {note}", err=True)  # a Note quotes printably
    findings, unread = report.findings, len(report.unscanned)
    if findings:
        text = "\n".join(map(str, findings))
    else:
        text = None if unread else "no dangerous patterns found"
    env.emit([f.as_dict() for f in findings], text)
    count = len(findings)
    found = f"{count} dangerous pattern{'s' if count > 1 else ''} found"
    incomplete = (f"scan incomplete: {unread} file{'s' if unread > 1 else ''} could not be "
                  "read (see the notes)")
    if findings and unread:
        raise TorchsmError(f"{found}; {incomplete}")
    if findings:
        raise TorchsmError(found)
    if unread:
        raise TorchsmError(f"{incomplete}; no dangerous patterns in the rest")


@hooks.command()
@click.option("--nova", required=True, metavar="NAME", help="The Nova these hooks drive.",
              shell_complete=nova_names)
@click.option("--project", type=click.Path(file_okay=False), default=".", show_default=True,
              help="The project whose Claude Code settings get the hooks.")
@click.option("--scope", type=click.Choice(["local", "project", "user"]), default="local",
              show_default=True,
              help="local: PROJECT/.claude/settings.local.json (this machine's); project: "
                   "PROJECT/.claude/settings.json (shared with the team); user: your "
                   "settings for every project ($CLAUDE_CONFIG_DIR or ~/.claude).")
@common_options
@pass_env
def install(env: Env, nova: str, project: str, scope: str) -> None:
    """Merge torchsm's hook entries (every event) into Claude Code's settings: by default
    PROJECT/.claude/settings.local.json, as the commands hold this machine's paths.
    Keeps your own hooks and settings, writes a backup, and is safe to run again.

    \b
    Only entries torchsm wrote are replaced: they end in `# managed by torchsm hooks
    install`. The file is replaced atomically, through a symlink (the link stays), keeping
    its mode and owner; a new one is 0600; it is never left writable by group or others.
    A read-only file, a FIFO or a device is refused, and so is a PROJECT that does not
    exist (its .claude folder is created when missing). Each change keeps a backup in the
    torchsm home (HOME/backups/hooks/, the newest 5 per file), never where git picks it up;
    a run that changes nothing writes nothing. A hook beside torchsm's that `hooks scan`
    flags is named in a warning."""
    from pathlib import Path

    from torchsm import novas
    from torchsm.hooks import installer

    novas.status(env.home, env.config, nova)  # the Nova must exist in this home
    done = installer.install(Path(project).resolve(), nova, env.home.path, scope=scope)
    if done["changed"]:
        text = f"installed torchsm hooks for {nova} in {done['settings']}"
        if "target" in done:
            text += f" (through the symlink: written to {done['target']})"
        if done["backup"]:
            text += f" (backup: {done['backup']})"
        if "mode_was" in done:
            text += (f"\nmode {done['mode_was']} -> {done['mode']}: a file that runs commands "
                     "must not be writable by others")
    else:
        text = f"hooks for {nova} already installed in {done['settings']}"
    for line in done["warnings"]:
        warn(f"{line} (run `torchsm hooks scan {done['settings']}`: a runaway hook beside "
             "torchsm's still runs)")
    env.emit(done, text)
