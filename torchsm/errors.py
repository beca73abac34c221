"""The TorchsmError family. The CLI turns any of these into one stderr line and exit 1.

An exception's docstring is its default message, so most raise sites need no text. Where
the same line (or the same shape with other values) is wanted at several places, the class
builds it from the values (`raise ItemNotFound(item_id)`): a raise site types only what is
its own.
"""


class TorchsmError(Exception):
    """torchsm failed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__.strip())

    @property
    def message(self) -> str:
        return str(self.args[0])

    def amended(self, more: str) -> "TorchsmError":
        """This error, its line followed by `; more` (what the caller knows and the raise
        site did not); the class is kept, so whoever catches it still can."""
        self.args = (f"{self.message}; {more}",)
        return self


class ConfigError(TorchsmError):
    """The configuration is invalid."""


class InvalidConfigValue(ConfigError):
    """A key of torchsm.toml has a value torchsm cannot use."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"torchsm.toml: '{key}' {problem}")


class ConfigWrongType(InvalidConfigValue):
    """A key of torchsm.toml holds the wrong kind of value."""

    _UNSET = object()

    def __init__(self, key: str, expected: str, got=_UNSET):
        shown = "" if got is self._UNSET else f", got {got!r}"
        super().__init__(key, f"must be {expected}{shown}")


class UnknownConfigKey(ConfigError):
    """torchsm.toml holds a key torchsm does not know."""

    def __init__(self, key: str, known=()):
        listed = f" (keys: {', '.join(known)})" if known else ""
        super().__init__(f"torchsm.toml: unknown key '{key}'{listed}")


class HomeNotInitialised(TorchsmError):
    """This torchsm home is not initialised: run `torchsm init`."""

    def __init__(self, path):
        super().__init__(f"no torchsm home at {path}: run `torchsm init`")


class HomeUnusable(TorchsmError):
    """The torchsm home cannot be used."""


class HomeNotAFolder(HomeUnusable):
    """The torchsm home, or a folder in it, is a file."""

    def __init__(self, path):
        super().__init__(f"{path} is not a folder: choose another --home")


class SchemaOutOfDate(TorchsmError):
    """The database schema is not at the version this torchsm expects: run `torchsm db upgrade`."""

    def __init__(self, revision: str | None, head: str):
        super().__init__(f"database schema is at {revision or 'nothing'}, this torchsm "
                         f"needs {head}: run `torchsm db upgrade`")


class SchemaUnknown(TorchsmError):
    """The database schema is newer than this torchsm: a newer torchsm wrote it."""

    def __init__(self, revision: str, head: str):
        super().__init__(f"database schema {revision} is unknown to this torchsm (its newest "
                         f"is {head}): a newer torchsm wrote it; upgrade torchsm to use this "
                         "home; nothing was changed")


class DatabaseLocked(TorchsmError):
    """The database stayed locked by another process."""

    def __init__(self, gave_up_after_s: float | None = None):
        waited = "" if gave_up_after_s is None else f" (gave up after {gave_up_after_s:g}s)"
        super().__init__(f"database is locked by another process{waited}")


class DatabaseError(TorchsmError):
    """The database could not be used."""


class DatabaseFailed(DatabaseError):
    """SQLite refused an operation for a reason torchsm has no better words for."""

    def __init__(self, detail):
        super().__init__(f"database error: {detail}")


class DatabaseCorrupt(DatabaseError):
    """The one line for a torchsm.db that SQLite cannot read (random bytes, a file cut
    short) or that holds someone else's tables: what SQLite said, which file, and what to
    do about it."""

    def __init__(self, path, detail: str):
        super().__init__(f"database error: {detail}: {path} is not a torchsm database, or is "
                         "corrupt; restore it from a backup, or move it aside and run "
                         "`torchsm init` to start a new one")


class DatabaseReadOnly(DatabaseError):
    """The one line for a change to a database torchsm may only read (a read-only home, a
    read-only mount): which file, and that nothing was changed. Commands that only read
    work."""

    def __init__(self, path):
        super().__init__(f"{path} is read-only here: torchsm can read this home but not "
                         "change it (make the home and its database writable); nothing was "
                         "changed")


def describe_unexpected(exc: BaseException) -> str | None:
    """A clear line for an exception no torchsm code raised on purpose but whose cause is
    plain (input nested too deeply for the parser, text that is not UTF-8), else None."""
    if isinstance(exc, RecursionError):
        return f"input nested too deeply to process ({exc})"
    if isinstance(exc, UnicodeDecodeError):
        return (f"input is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset "
                f"{exc.start})")
    if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
        # a byte of an argument that was not UTF-8 (Python keeps it as a lone surrogate)
        char = ord(exc.object[exc.start])
        byte = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"U+{char:04X}"
        return f"text is not valid UTF-8 ({byte} at offset {exc.start}); nothing was stored"
    return None


class InvalidName(TorchsmError):
    """A Nova name must match [a-z0-9][a-z0-9_-]{0,31}."""

    def __init__(self, name, what: str = "Nova"):
        super().__init__(f"invalid {what} name {name!r}: use [a-z0-9][a-z0-9_-]{{0,31}}")


class NovaNotFound(TorchsmError):
    """No such Nova."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(f"no Nova named '{name}'{detail}")


class NovaExists(TorchsmError):
    """A Nova of that name already exists."""

    def __init__(self, name: str):
        super().__init__(f"a Nova named '{name}' already exists")


class UnknownPersonality(TorchsmError):
    """No such personality."""

    def __init__(self, name: str, known):
        super().__init__(f"unknown personality '{name}' (known: {', '.join(known)})")


class UnknownEvent(TorchsmError):
    """No such event (of the state machine, or of `torchsm hook`)."""

    def __init__(self, name: str, known, what: str = "event"):
        super().__init__(f"unknown {what} '{name}' (events: {', '.join(known)})")


class HookInputError(TorchsmError):
    """The hook's stdin is not a JSON object: the run is recorded as an error, and the
    agent may stop (torchsm never keeps it working on input it could not read)."""

    def __init__(self, problem: str):
        super().__init__(f"{problem}; the agent may stop")


class SettingsRefused(TorchsmError):
    """Claude Code's settings file is not what `hooks install` can merge into; it is left
    as it was."""

    def __init__(self, where, problem: str, fix_by_hand: bool = False):
        fix = "fix it by hand first, " if fix_by_hand else ""
        super().__init__(f"{where} {problem}; {fix}nothing was changed")


class ProjectNotFound(TorchsmError):
    """`hooks install --project` names no folder: install adds the project's .claude
    folder, never the project itself, so a typo is an error, not a new tree of folders."""

    def __init__(self, project, exists: bool = False):
        if exists:
            super().__init__(f"the project {project} is not a folder; nothing was changed")
            return
        import shlex

        super().__init__(f"the project {project} does not exist: create it first (mkdir -p "
                         f"{shlex.quote(str(project))}) or check the path; nothing was changed")


class TransitionRefused(TorchsmError):
    """The transition is not allowed now: what was refused, to whom, and why."""

    def __init__(self, action: str, nova: str, reason: str):
        super().__init__(f"cannot {action} {nova}: {reason}")


class UnknownTier(TorchsmError):
    """No such priority tier (critical, high, medium, low, background)."""

    def __init__(self, name, known):
        super().__init__(f"unknown priority {name!r} (tiers: {', '.join(known)})")


class InvalidDuration(TorchsmError):
    """A duration must be a positive number of seconds, at most ten years."""

    def __init__(self, what: str, limit_s: float):
        super().__init__(f"{what} must be a positive number of seconds, at most "
                         f"{limit_s:.0f} (ten years)")


class ItemNotFound(TorchsmError):
    """No such work item."""

    def __init__(self, item_id: int):
        super().__init__(f"no work item {item_id}")


class NothingToClaim(TorchsmError):
    """No work item is claimable."""

    def __init__(self, nova: str):
        super().__init__(f"nothing to claim for {nova}")


class ItemNotOpen(TorchsmError):
    """The work item is already finished."""

    def __init__(self, item_id: int, status: str):
        super().__init__(f"work item {item_id} is already {status}")


class LeaseLost(TorchsmError):
    """The claim on this work item expired and it was handed to someone else."""

    def __init__(self, item_id: int, holder: str | None = None):
        now_held = f" and {holder} holds it now" if holder else ""
        super().__init__(f"work item {item_id}: this claim's lease expired{now_held}")


class UserFileError(TorchsmError):
    """A file named on the command line cannot be read or written."""


class FileUnreadable(UserFileError):
    """The file cannot be read: which, and what the system said."""

    def __init__(self, path, reason):
        super().__init__(f"cannot read {path}: {reason}")


class FileUnwritable(UserFileError):
    """The file cannot be written: which, what the system said and, when torchsm made sure
    of it (a temp file renamed into place), that the old file is as it was."""

    def __init__(self, path, reason, nothing_changed: bool = False):
        kept = "; nothing was changed" if nothing_changed else ""
        super().__init__(f"cannot write {path}: {reason}{kept}")


class FileChangedMeanwhile(UserFileError):
    """Someone else replaced the file while torchsm was at it: torchsm gave up rather than
    act on a file it did not check."""

    def __init__(self, path, doing: str):
        super().__init__(f"{path} changed while torchsm was {doing} it; nothing was changed, "
                         "run the command again")


class ImportFailed(TorchsmError):
    """The file could not be imported."""


class InvalidWorkItem(TorchsmError):
    """The work item request is not valid."""


class MirrorOff(TorchsmError):
    """The mirror is off (redis_url = "off")."""


class MirrorUnavailable(TorchsmError):
    """The mirror server could not be reached."""


class MirrorUnreachable(MirrorUnavailable):
    """The mirror server did not answer now."""

    def __init__(self, url: str, detail):
        super().__init__(f"mirror unreachable at {url}: {detail}")


class MirrorRefused(TorchsmError):
    """The mirror server refused an entry."""

    def __init__(self, stream: str, refused):
        super().__init__(f"the mirror server refused an entry of {stream}: {refused}")


class SupervisorRunning(TorchsmError):
    """A supervisor for this Nova is already running."""

    def __init__(self, name: str, pid: int | str):
        super().__init__(f"a supervisor for {name} is already running (pid {pid})")


class AgentCommandError(TorchsmError):
    """The agent command cannot be run."""


class MemoryNotFound(TorchsmError):
    """No such memory."""

    def __init__(self, memory_id: int):
        super().__init__(f"no memory {memory_id}")


class InvalidMemory(TorchsmError):
    """The memory is not valid."""


class DreamNotFound(TorchsmError):
    """No such dream."""

    def __init__(self, dream_id: int):
        super().__init__(f"no dream {dream_id}")


class DreamRunning(TorchsmError):
    """A dream of this Nova is already running."""

    def __init__(self, name: str, pid: int | str):
        super().__init__(f"a dream of {name} is already running (pid {pid})")


class SessionNotFound(TorchsmError):
    """No such session of that Nova in the ledger."""

    def __init__(self, session_id: int, name: str):
        super().__init__(f"no session {session_id} of {name}")


class FleetRunning(TorchsmError):
    """A fleet keeper already runs for this home."""

    def __init__(self, pid: int | None):
        super().__init__(f"a fleet keeper already runs for this home (pid {pid}): `torchsm "
                         "up NAME` adds Novas to it, `torchsm down` stops it")


class NotInFleet(TorchsmError):
    """The Nova is not one the fleet runs."""

    def __init__(self, name: str):
        super().__init__(f"{name} is not in the fleet: `torchsm up {name}` starts it")


class NoAgentCommand(TorchsmError):
    """Novas with neither a command of their own nor one given to `up`."""

    def __init__(self, names: list[str]):
        super().__init__(f"no agent command for {', '.join(names)}: keep one (`torchsm nova "
                         "set NAME --command '...'`) or give one (`torchsm up -- COMMAND`)")


class ClusterError(TorchsmError):
    """The cluster (several hosts on one server, torchsm.cluster) failed."""


class ClusterNoServer(ClusterError):
    """The cluster needs a server, and `redis_url` is "off"."""

    def __init__(self):
        super().__init__('the cluster needs a server: set `redis_url` in torchsm.toml (it '
                         'is "off")')


class ClusterUnreachable(ClusterError):
    """The cluster's server did not answer."""

    def __init__(self, url: str, detail):
        super().__init__(f"cluster server unreachable at {url}: {detail}")


class ClusterRefused(ClusterError):
    """The cluster's server refused a command."""

    def __init__(self, url: str, detail):
        super().__init__(f"the cluster server at {url} refused: {detail}")


class InvalidClusterItem(ClusterError):
    """A cluster item id is 1 to 128 printable characters, no spaces."""

    def __init__(self, item_id: str):
        super().__init__(f"not a cluster item id: {item_id!r} (1 to 128 printable "
                         "characters, no spaces)")


class InvalidHostName(InvalidName):
    """A cluster host name must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}."""

    def __init__(self, name):
        TorchsmError.__init__(self, f"invalid host name {name!r}: use "
                                    "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ClusterNotEnabled(ClusterError):
    """This home is no host of a cluster."""

    def __init__(self):
        super().__init__("this home is no host of a cluster: set `[cluster] enabled = true` "
                         "in torchsm.toml (and a `redis_url`)")


class NovaNowhere(NovaNotFound):
    """No Nova of that name on this host nor on any host of the cluster."""

    def __init__(self, name: str):
        TorchsmError.__init__(self, f"no Nova {name} on this host or any host of the cluster")
