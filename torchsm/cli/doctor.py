"""`torchsm doctor`."""

from __future__ import annotations

import click

from torchsm.cli.common import Env, common_options, pass_env, printable
from torchsm.errors import TorchsmError


@click.command()
@click.option("--project", type=click.Path(file_okay=False), default=".", show_default=True,
              help="The project whose .claude/settings.json hooks are checked and scanned.")
@click.option("--claude", metavar="PATH",
              help="The Claude Code binary (default: `claude` on PATH).")
@common_options
@pass_env
def doctor(env: Env, project: str, claude: str | None) -> None:
    """Check the installation: the home and its permissions, the config, the schema at
    head, the mirror, the hooks installed in PROJECT (and `hooks scan` of them), a live
    supervisor per Nova, the Claude Code binary and its version. Prints what to do about
    each problem; exits 1 when there is any.

    \b
    --json prints {"ok": ..., "checks": [{"name", "ok", "detail", "fix"}, ...]}."""
    from pathlib import Path

    from torchsm.observe.doctor import run_checks

    checks = run_checks(env.home, Path(project).resolve(), claude,
                        home_reason=env.home_choice.reason)
    problems = [c for c in checks if not c.ok]
    env.emit({"ok": not problems, "checks": [c.as_json() for c in checks]},
             lambda: _text(checks))
    if problems:
        count = len(problems)
        raise TorchsmError(f"{count} problem{'s' if count > 1 else ''} found: "
                           + ", ".join(c.name for c in problems))


def _text(checks: list) -> str:
    lines = []
    for check in checks:
        lines.append(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: "
                     f"{printable(check.detail, multiline=False)}")
        if check.fix:
            lines.append(f"      fix: {printable(check.fix, multiline=False)}")
    return "\n".join(lines)
