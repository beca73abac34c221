"""Files a user names (issue 20, finding 1): `dashboard --out`, the unit of `service
install`, the settings of `hooks install`. Whatever the path turns out to be (a symlink, a
FIFO, a device, a socket, a folder, a read-only file), it is written through, streamed
into or refused: never replaced. Every special file here is made in the test's own
folder; no test points at a host file such as /dev/null."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from helpers import NULL_DEVICE, ZERO_DEVICE, Cli, char_device
from torchsm import user_files
from torchsm.errors import UserFileError

def block_device(path: Path) -> Path:
    try:
        os.mknod(path, 0o600 | stat.S_IFBLK, os.makedev(7, 251))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a block device here: {exc}")
    return path


def unix_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


class FifoReader:
    """Reads everything written to a FIFO, in a thread (opening it blocks until a writer
    comes). A hard link lets the test unblock it should the FIFO be replaced."""

    def __init__(self, fifo: Path):
        self.fifo, self.spare = fifo, fifo.with_name(fifo.name + ".spare")
        os.link(fifo, self.spare)
        self.data: bytes | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.spare, "rb") as f:
            self.data = f.read()

    def result(self) -> bytes | None:
        self.thread.join(timeout=30)
        if self.thread.is_alive():  # nobody wrote: let it go
            os.close(os.open(self.spare, os.O_WRONLY | os.O_NONBLOCK))
            self.thread.join(timeout=10)
        return self.data


def kind(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


def one_line(result) -> str:
    assert result.err.startswith("torchsm: error: ") and result.err.count("\n") == 1, result.err
    assert "internal error" not in result.err and "Traceback" not in result.err
    return result.err


# --- dashboard --out --------------------------------------------------------------------

def test_dashboard_writes_through_a_symlink_and_keeps_the_link_and_mode(cli: Cli, tmp_path):
    real = tmp_path / "site" / "page.html"
    real.parent.mkdir()
    real.write_text("old")
    real.chmod(0o644)
    link = tmp_path / "page.html"
    link.symlink_to("site/page.html")
    assert cli("dashboard", "--out", str(link)).out == f"{link}\n"
    assert link.is_symlink() and os.readlink(link) == "site/page.html"
    assert real.read_text().startswith("<!DOCTYPE html>")
    assert stat.S_IMODE(real.stat().st_mode) == 0o644  # a page someone serves stays readable
    assert [p.name for p in real.parent.iterdir()] == ["page.html"]


def test_dashboard_refuses_a_read_only_file(cli: Cli, tmp_path):
    out = tmp_path / "page.html"
    out.write_text("keep me")
    out.chmod(0o444)
    err = one_line(cli.fails("dashboard", "--out", str(out)))
    assert err.startswith(f"torchsm: error: {out} is read-only; ")
    assert out.read_text() == "keep me" and stat.S_IMODE(out.stat().st_mode) == 0o444


def test_dashboard_streams_into_a_fifo_and_leaves_it_a_fifo(cli: Cli, tmp_path):
    fifo = tmp_path / "page.fifo"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    cli("dashboard", "--out", str(fifo), timeout=30)
    assert kind(fifo) == stat.S_IFIFO
    assert (reader.result() or b"").startswith(b"<!DOCTYPE html>")


def test_dashboard_streams_into_a_character_device_and_leaves_it_one(cli: Cli, tmp_path):
    null = char_device(tmp_path / "null")
    cli("dashboard", "--out", str(null))
    assert kind(null) == stat.S_IFCHR and os.stat(null).st_rdev == NULL_DEVICE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "null"]


def test_dashboard_streams_through_a_symlink_to_a_device(cli: Cli, tmp_path):
    null = char_device(tmp_path / "null")
    link = tmp_path / "out"
    link.symlink_to(null)
    cli("dashboard", "--out", str(link))
    assert link.is_symlink() and kind(null) == stat.S_IFCHR


def test_dashboard_refuses_a_socket_a_block_device_and_a_folder(cli: Cli, tmp_path):
    sock = unix_socket(tmp_path / "s")
    try:
        err = one_line(cli.fails("dashboard", "--out", str(tmp_path / "s")))
        assert err == (f"torchsm: error: {tmp_path / 's'} is a socket, not a file torchsm "
                       "writes; nothing was changed\n")
        assert kind(tmp_path / "s") == stat.S_IFSOCK
    finally:
        sock.close()
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "is a folder" in one_line(cli.fails("dashboard", "--out", str(folder)))
    assert list(folder.iterdir()) == []
    disk = block_device(tmp_path / "disk")
    assert "is a block device" in one_line(cli.fails("dashboard", "--out", str(disk)))
    assert kind(disk) == stat.S_IFBLK


def test_dashboard_refuses_a_dangling_symlink(cli: Cli, tmp_path):
    link = tmp_path / "page.html"
    link.symlink_to("nowhere/page.html")
    err = one_line(cli.fails("dashboard", "--out", str(link)))
    assert "nowhere/page.html, which does not exist" in err
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_new_dashboard_file_is_private_whatever_the_umask(cli: Cli, tmp_path):
    out = tmp_path / "page.html"
    old = os.umask(0)
    try:
        cli("dashboard", "--out", str(out))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


# --- service install: the unit file -----------------------------------------------------

def service_install(cli: Cli, units: Path, *command: str, **kw):
    return cli("service", "install", "torch", "--unit-dir", str(units), "--", *command,
               TORCHSM_SYSTEMCTL="off", **kw)


def test_service_refuses_a_fifo_unit_without_waiting_on_it(cli: Cli, torch, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    os.mkfifo(units / "torchsm-torch.service")
    result = cli("service", "install", "torch", "--unit-dir", str(units), "--", "true",
                 check=False, timeout=30, TORCHSM_SYSTEMCTL="off")
    assert result.code == 1 and "is a FIFO" in one_line(result)
    assert kind(units / "torchsm-torch.service") == stat.S_IFIFO


def test_service_writes_a_unit_through_its_symlink(cli: Cli, torch, tmp_path):
    dotfiles, units = tmp_path / "dotfiles", tmp_path / "units"
    service_install(cli, dotfiles, "true")
    units.mkdir()
    link = units / "torchsm-torch.service"
    link.symlink_to(dotfiles / "torchsm-torch.service")
    service_install(cli, units, "sleep", "1")
    assert link.is_symlink()
    assert "sleep 1" in (dotfiles / "torchsm-torch.service").read_text()
    assert stat.S_IMODE((dotfiles / "torchsm-torch.service").stat().st_mode) == 0o644


def test_service_refuses_a_read_only_unit(cli: Cli, torch, tmp_path):
    units = tmp_path / "units"
    service_install(cli, units, "true")
    unit = units / "torchsm-torch.service"
    before = unit.read_text()
    unit.chmod(0o444)
    result = cli("service", "install", "torch", "--unit-dir", str(units), "--", "sleep", "1",
                 check=False, TORCHSM_SYSTEMCTL="off")
    assert result.code == 1 and one_line(result).startswith(f"torchsm: error: {unit} is read-only")
    assert unit.read_text() == before


def test_service_refuses_a_unit_that_is_a_device(cli: Cli, torch, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    null = char_device(units / "torchsm-torch.service")
    result = cli("service", "install", "torch", "--unit-dir", str(units), "--", "true",
                 check=False, TORCHSM_SYSTEMCTL="off")
    assert result.code == 1 and "is a character device" in one_line(result)
    assert kind(null) == stat.S_IFCHR
    assert not (cli.home / "service" / "torch.env").exists()  # no secrets left behind


# --- hooks install: the settings file ---------------------------------------------------

@pytest.mark.parametrize("special", ["fifo", "device"])
def test_hooks_install_refuses_a_special_settings_file(cli: Cli, torch, tmp_path, special):
    claude = tmp_path / "project" / ".claude"
    claude.mkdir(parents=True)
    settings = claude / "settings.json"
    if special == "fifo":
        os.mkfifo(settings)
    else:
        char_device(settings, ZERO_DEVICE)
    result = cli("hooks", "install", "--nova", "torch", "--project", str(claude.parent),
                 "--scope", "project",
                 check=False, timeout=30)
    assert result.code == 1 and "nothing was changed" in one_line(result)
    assert kind(settings) in (stat.S_IFIFO, stat.S_IFCHR)
    assert sorted(p.name for p in claude.iterdir()) == ["settings.json"]


# --- the library's reading rules ----------------------------------------------------------

def test_reading_refuses_a_fifo_at_once_and_bounds_a_device(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserFileError, match="is a FIFO, not a file torchsm reads"):
        user_files.read(fifo)  # nobody writes to it: refused, not waited on
    zero = char_device(tmp_path / "zero", ZERO_DEVICE)
    with pytest.raises(UserFileError, match="is a character device"):
        user_files.read(zero)
    with pytest.raises(UserFileError, match="larger than 1 MiB"):
        user_files.read(zero, limit=1024 * 1024, streams=True)
    with pytest.raises(FileNotFoundError):
        user_files.read(tmp_path / "missing")
    (tmp_path / "small").write_bytes(b"abc")
    assert user_files.read(tmp_path / "small", limit=3) == b"abc"
