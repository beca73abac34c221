"""Errors word themselves (issue 21, point 5): where the same text, or the same shape with
other values, is wanted at several raise sites, the error class builds it from the values,
and the raise sites pass only those. These tests hold both halves: each class's words, and
that the generic texts are typed nowhere but in torchsm/errors.py."""

from pathlib import Path

import pytest

from torchsm import errors

PACKAGE = Path(errors.__file__).parent

# (the error, built from values only) -> the one line the CLI prints after "torchsm: error: "
WORDED = [
    (lambda: errors.HomeNotInitialised("/h"), "no torchsm home at /h: run `torchsm init`"),
    (lambda: errors.HomeNotAFolder("/h/x"), "/h/x is not a folder: choose another --home"),
    (lambda: errors.DatabaseLocked(), "database is locked by another process"),
    (lambda: errors.DatabaseLocked(gave_up_after_s=5.0),
     "database is locked by another process (gave up after 5s)"),
    (lambda: errors.DatabaseFailed("disk I/O error"), "database error: disk I/O error"),
    (lambda: errors.DatabaseCorrupt("/h/torchsm.db", "file is not a database"),
     "database error: file is not a database: /h/torchsm.db is not a torchsm database, or "
     "is corrupt; restore it from a backup, or move it aside and run `torchsm init` to "
     "start a new one"),
    (lambda: errors.DatabaseReadOnly("/h/torchsm.db"),
     "/h/torchsm.db is read-only here: torchsm can read this home but not change it (make "
     "the home and its database writable); nothing was changed"),
    (lambda: errors.SchemaOutOfDate(None, "0009"),
     "database schema is at nothing, this torchsm needs 0009: run `torchsm db upgrade`"),
    (lambda: errors.SchemaUnknown("0042", "0009"),
     "database schema 0042 is unknown to this torchsm (its newest is 0009): a newer torchsm "
     "wrote it; upgrade torchsm to use this home; nothing was changed"),
    (lambda: errors.InvalidName("Bad"), "invalid Nova name 'Bad': use [a-z0-9][a-z0-9_-]{0,31}"),
    (lambda: errors.InvalidName("Bad", "account"),
     "invalid account name 'Bad': use [a-z0-9][a-z0-9_-]{0,31}"),
    (lambda: errors.NovaExists("ada"), "a Nova named 'ada' already exists"),
    (lambda: errors.UnknownPersonality("x", ["a", "b"]), "unknown personality 'x' (known: a, b)"),
    (lambda: errors.UnknownEvent("x", ["wake", "cool"]), "unknown event 'x' (events: wake, cool)"),
    (lambda: errors.UnknownTier("x", ["high", "low"]), "unknown priority 'x' (tiers: high, low)"),
    (lambda: errors.TransitionRefused("wake", "ada", "not allowed from active"),
     "cannot wake ada: not allowed from active"),
    (lambda: errors.ItemNotFound(7), "no work item 7"),
    (lambda: errors.ItemNotOpen(7, "done"), "work item 7 is already done"),
    (lambda: errors.LeaseLost(7), "work item 7: this claim's lease expired"),
    (lambda: errors.LeaseLost(7, "bob"),
     "work item 7: this claim's lease expired and bob holds it now"),
    (lambda: errors.NothingToClaim("ada"), "nothing to claim for ada"),
    (lambda: errors.InvalidDuration("the lease", 315360000),
     "the lease must be a positive number of seconds, at most 315360000 (ten years)"),
    (lambda: errors.MemoryNotFound(3), "no memory 3"),
    (lambda: errors.DreamNotFound(3), "no dream 3"),
    (lambda: errors.SupervisorRunning("ada", 42),
     "a supervisor for ada is already running (pid 42)"),
    (lambda: errors.DreamRunning("ada", 42), "a dream of ada is already running (pid 42)"),
    (lambda: errors.MirrorUnreachable("redis://h:1", "refused"),
     "mirror unreachable at redis://h:1: refused"),
    (lambda: errors.MirrorRefused("torch:ada", "ERR full"),
     "the mirror server refused an entry of torch:ada: ERR full"),
    (lambda: errors.UnknownConfigKey("wake.x"), "torchsm.toml: unknown key 'wake.x'"),
    (lambda: errors.UnknownConfigKey("accounts.a.x", ["plan", "cost"]),
     "torchsm.toml: unknown key 'accounts.a.x' (keys: plan, cost)"),
    (lambda: errors.InvalidConfigValue("wake.rules.x", "is not a valid regex: bad"),
     "torchsm.toml: 'wake.rules.x' is not a valid regex: bad"),
    (lambda: errors.ConfigWrongType("usage", "a table"), "torchsm.toml: 'usage' must be a table"),
    (lambda: errors.ConfigWrongType("redis_url", "a string", 3),
     "torchsm.toml: 'redis_url' must be a string, got 3"),
    (lambda: errors.FileUnreadable("/f", "Permission denied"),
     "cannot read /f: Permission denied"),
    (lambda: errors.FileUnwritable("/f", "No space left on device"),
     "cannot write /f: No space left on device"),
    (lambda: errors.FileUnwritable("/f", "No space left on device", nothing_changed=True),
     "cannot write /f: No space left on device; nothing was changed"),
    (lambda: errors.UnknownEvent("x", ["stop"], what="hook event"),
     "unknown hook event 'x' (events: stop)"),
    (lambda: errors.HookInputError("stdin is not JSON"),
     "stdin is not JSON; the agent may stop"),
    (lambda: errors.SettingsRefused("/p/settings.json", "is not valid JSON (x)"),
     "/p/settings.json is not valid JSON (x); nothing was changed"),
    (lambda: errors.SettingsRefused("s.json: 'hooks'", "is not an object", fix_by_hand=True),
     "s.json: 'hooks' is not an object; fix it by hand first, nothing was changed"),
    (lambda: errors.ProjectNotFound("/p q"),
     "the project /p q does not exist: create it first (mkdir -p '/p q') or check the path; "
     "nothing was changed"),
    (lambda: errors.ProjectNotFound("/p", exists=True),
     "the project /p is not a folder; nothing was changed"),
    (lambda: errors.FileChangedMeanwhile("/f", "reading"),
     "/f changed while torchsm was reading it; nothing was changed, run the command again"),
]


@pytest.mark.parametrize("build, line", WORDED, ids=[line[:40] for _, line in WORDED])
def test_a_generic_error_words_itself_from_its_values(build, line):
    error = build()
    assert isinstance(error, errors.TorchsmError)
    assert error.message == line


def test_an_error_without_values_still_says_its_docstring():
    assert errors.TorchsmError("--nova NAME is required").message == "--nova NAME is required"
    assert errors.ConfigError().message == "The configuration is invalid."


def test_amended_adds_to_the_line_and_keeps_the_class():
    error = errors.MirrorUnreachable("redis://h:1", "refused").amended("2 entries stay queued")
    assert isinstance(error, errors.MirrorUnreachable)
    assert error.message == "mirror unreachable at redis://h:1: refused; 2 entries stay queued"


# the generic texts: typed once, in errors.py
GENERIC_TEXTS = [
    ": run `torchsm init`", "is not a folder: choose another --home",
    "database is locked by another process", '"database error: ', "f\"database error: ",
    "is not a torchsm database", "is read-only here", "database schema is at", "is unknown to this torchsm",
    "invalid Nova name", "invalid account name", "already exists\"", "unknown personality",
    "unknown event '", "unknown priority {name", "cannot {event", "cannot dream {",
    "no work item {", "is already {item", "this claim's lease expired", "nothing to claim",
    "must be a positive number of seconds", "no memory {", "no dream {",
    "is already running (pid", "mirror unreachable at", "refused an entry",
    "unknown key '", "torchsm.toml: '{", "changed while torchsm was",
    'UserFileError(f"cannot read', 'UserFileError(f"cannot write', 'Error(f"cannot write {dest',
    "unknown hook event", "HookInputError(f\"", "fix it by hand first", "; nothing was changed\"",
    "does not exist: create it first",
]


@pytest.mark.parametrize("text", GENERIC_TEXTS)
def test_a_generic_text_is_typed_only_in_errors_py(text):
    typed_in = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
                if path.name != "errors.py" and text in path.read_text()]
    assert typed_in == []
