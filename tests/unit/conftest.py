"""The unit tier opens no sockets: any attempt fails the test that made it.

Network and loopback-server tests belong in tests/integration (marked). Subprocesses
(gpg and its agent, dpkg) are not affected: this guards the test process itself.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest


class SocketInUnitTier(AssertionError):
    pass


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise SocketInUnitTier(
        "the unit tier opens no sockets; move this test to tests/integration and mark it"
    )


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("connect", "connect_ex", "bind", "listen"):
        monkeypatch.setattr(socket.socket, name, _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)
    yield
