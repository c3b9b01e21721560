"""The SQLite doorbell: datagrams between real Unix sockets in a real directory."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from ivrcast.store.outbox_doorbell import Doorbell, doorbell_dir, ring_doorbells


@pytest.fixture
def bells(tmp_path: Path) -> Path:
    directory = tmp_path / "d-wake"
    directory.mkdir()
    return directory


def bound(path: Path) -> socket.socket:
    bell = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    bell.bind(os.fspath(path))
    bell.setblocking(False)
    return bell


def rung(bell: socket.socket) -> bool:
    try:
        bell.recv(1)
    except BlockingIOError:
        return False
    return True


def test_another_process_doorbell_is_rung_and_its_own_is_not(bells: Path) -> None:
    other = bound(bells / "1-other.sock")
    own = bound(bells / f"{os.getpid()}-own.sock")
    try:
        ring_doorbells(bells)
        assert rung(other)
        assert not rung(own)
    finally:
        other.close()
        own.close()


def test_a_doorbell_nobody_reads_any_more_is_removed(bells: Path) -> None:
    bound(bells / "1-gone.sock").close()
    ring_doorbells(bells)
    assert list(bells.iterdir()) == []


def test_no_directory_no_doorbells(tmp_path: Path) -> None:
    ring_doorbells(tmp_path / "absent-wake")


def test_only_an_sqlite_file_has_doorbells(tmp_path: Path) -> None:
    assert doorbell_dir(f"sqlite:///{tmp_path}/db.sqlite") == tmp_path / "db.sqlite-wake"
    assert doorbell_dir("sqlite:///:memory:") is None
    assert doorbell_dir("postgresql+psycopg://u@h/db") is None


async def test_a_doorbell_rings_on_the_loop_and_is_gone_when_closed(tmp_path: Path) -> None:
    rings = asyncio.Event()
    directory = doorbell_dir(f"sqlite:///{tmp_path}/db.sqlite")
    assert directory is not None
    doorbell = Doorbell(directory, rings.set)
    assert doorbell.open()
    try:
        # Rung as another process would: this one's own doorbells are skipped.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as bell:
            bell.sendto(b"", os.fspath(doorbell.path))
        await asyncio.wait_for(rings.wait(), 10)
    finally:
        doorbell.close()
    assert not doorbell.path.exists()


async def test_a_path_too_long_for_a_socket_leaves_the_poll(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120)
    doorbell = Doorbell(deep, lambda: None)
    assert not doorbell.open()
    assert not deep.exists()
