"""Shell completion of Nova names (click's `_TORCHSM_COMPLETE`): the Novas of the home the
command line names (`--home`, before or after the subcommand), else $TORCHSM_HOME, else
the default, read through the store.

Completion runs on every TAB press, in the user's shell: it never raises and never
prints; a home that is missing, not initialised or broken completes nothing.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem

from torchsm.cli.common import Env


def nova_names(ctx: click.Context, _param: click.Parameter,
               incomplete: str) -> list[CompletionItem]:
    """The home's Nova names that begin with `incomplete` (a `shell_complete` callback
    for NAME arguments and --nova options)."""
    return [CompletionItem(name) for name in _known_novas(ctx) if name.startswith(incomplete)]


def _known_novas(ctx: click.Context) -> list[str]:
    from torchsm.config import resolve_home
    from torchsm.storage import store

    env = ctx.find_object(Env)
    try:
        home = resolve_home(env.home_option if env else None)
        with store.open_store(home, lock_timeout_s=1.0) as db:
            return sorted(db.read(store.nova_names))
    except Exception:  # noqa: BLE001 (a TAB press must never show a traceback)
        return []
