"""test-tui-attach.py: `asynctop` with no argument lists the attachable processes (pid,
program, uptime, tasks, answers or not; stale sockets shown as such) and attaches to the
one picked."""
import os
import re
import socket

import pytest

from tui_harness import Env, Tui


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def test_picker(env):
    a = env.target("--tasks", "9", program="alpha-srv")
    b = env.target("--tasks", "30", program="beta-srv")
    # a stale socket left by a process that is gone
    stale = os.path.join(env.sock_dir(), "999998.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    tui = Tui(env, [], 110, 30)
    try:
        s = tui.wait(r"Processes running the asynctop runtime")
        s = tui.wait(r"%d beta-srv\s+\S+\s+\d+ answers" % b.pid)
        assert re.search(r"%d alpha-srv\s+\S+\s+9 answers" % a.pid, s), s
        assert re.search(r"999998 .*stale socket", s)
        # rows are sorted by pid: pick beta's row
        rows = [l for l in s.split("\n") if re.search(r"answers|stale socket", l)]
        idx = [i for i, l in enumerate(rows) if "beta-srv" in l][0]
        tui.keys("g", *(["j"] * idx), "Enter")
        tui.wait(r"beta-srv\[%d\]\s+live" % b.pid)
        tui.wait(r"conn-0")
        tui.keys("q")
        tui.wait(r"\[asynctop exited 0\]")
    finally:
        tui.close()
