"""The TorchsmError family. The CLI turns any of these into one stderr line and exit 1.

An exception's docstring is its default message, so most raise sites need no text.
"""


class TorchsmError(Exception):
    """torchsm failed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__.strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(TorchsmError):
    """The configuration is invalid."""


class HomeNotInitialised(TorchsmError):
    """This torchsm home is not initialised: run `torchsm init`."""


class HomeUnusable(TorchsmError):
    """The torchsm home cannot be used."""


class SchemaOutOfDate(TorchsmError):
    """The database schema is not at the version this torchsm expects: run `torchsm db upgrade`."""


class SchemaUnknown(TorchsmError):
    """The database schema is newer than this torchsm: a newer torchsm wrote it."""


class DatabaseLocked(TorchsmError):
    """The database stayed locked by another process."""


class DatabaseError(TorchsmError):
    """The database could not be used."""


class DatabaseCorrupt(DatabaseError):
    """The database file is not a torchsm database, or is corrupt."""


def corrupt_database(path, detail: str) -> DatabaseCorrupt:
    """The one line for a torchsm.db that SQLite cannot read (random bytes, a file cut
    short) or that holds someone else's tables: what SQLite said, which file, and what to
    do about it."""
    return DatabaseCorrupt(f"database error: {detail}: {path} is not a torchsm database, or "
                           "is corrupt; restore it from a backup, or move it aside and run "
                           "`torchsm init` to start a new one")


class DatabaseReadOnly(DatabaseError):
    """The database is read-only here: commands that only read work, changes are refused."""


def read_only_database(path) -> DatabaseReadOnly:
    """The one line for a change to a database torchsm may only read (a read-only home, a
    read-only mount): which file, and that nothing was changed."""
    return DatabaseReadOnly(f"{path} is read-only here: torchsm can read this home but not "
                            "change it (make the home and its database writable); nothing "
                            "was changed")


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


class NovaNotFound(TorchsmError):
    """No such Nova."""

    def __init__(self, name: str, detail: str = ""):
        super().__init__(f"no Nova named '{name}'{detail}")


class NovaExists(TorchsmError):
    """A Nova of that name already exists."""


class UnknownPersonality(TorchsmError):
    """No such personality."""


class UnknownEvent(TorchsmError):
    """No such event."""


class TransitionRefused(TorchsmError):
    """The transition is not allowed now."""


class UnknownTier(TorchsmError):
    """No such priority tier (critical, high, medium, low, background)."""


class ItemNotFound(TorchsmError):
    """No such work item."""


class NothingToClaim(TorchsmError):
    """No work item is claimable."""


class ItemNotOpen(TorchsmError):
    """The work item is already finished."""


class LeaseLost(TorchsmError):
    """The claim on this work item expired and it was handed to someone else."""


class UserFileError(TorchsmError):
    """A file named on the command line cannot be read or written."""


class ImportFailed(TorchsmError):
    """The file could not be imported."""


class InvalidWorkItem(TorchsmError):
    """The work item request is not valid."""


class MirrorOff(TorchsmError):
    """The mirror is off (redis_url = "off")."""


class MirrorUnavailable(TorchsmError):
    """The mirror server could not be reached."""


class MirrorRefused(TorchsmError):
    """The mirror server refused an entry."""


class SupervisorRunning(TorchsmError):
    """A supervisor for this Nova is already running."""


class AgentCommandError(TorchsmError):
    """The agent command cannot be run."""


class MemoryNotFound(TorchsmError):
    """No such memory."""


class InvalidMemory(TorchsmError):
    """The memory is not valid."""


class DreamNotFound(TorchsmError):
    """No such dream."""


class DreamRunning(TorchsmError):
    """A dream of this Nova is already running."""
