"""A test plugin that forbids network access (IP sockets; local Unix sockets stay usable) in every
rtbench process that loads it. Each attempt is appended to the file named by $RTBENCH_TEST_NET_LOG and fails.
"""
from __future__ import annotations

import os
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _log(what) -> None:
    with open(os.environ["RTBENCH_TEST_NET_LOG"], "a") as f:
        f.write(f"{os.getpid()} {what!r}\n")
    raise OSError("network access is forbidden in this test")


def _guard(orig):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _log(address)
        return orig(self, address)

    return connect


socket.getaddrinfo = lambda *a, **k: _log(a)
socket.socket.connect = _guard(_connect)
socket.socket.connect_ex = _guard(_connect_ex)
