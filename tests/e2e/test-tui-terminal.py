"""test-tui-terminal.py: resize at any moment, 80x24, NO_COLOR and --no-color (no colour
escape sequences at all), --ascii, process exit (last state kept, reattach offered), and
the terminal restored on quit and on SIGTERM."""
import os
import re
import signal
import subprocess
import time

import pytest

from tui_harness import Env, Tui, header, wait_until

# SGR parameters that set a colour: 30-37, 39?, 40-47, 90-97, 100-107, 38;..., 48;...
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|4[0-8]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def test_resize(env):
    t = env.target("--tasks", "60")
    tui = Tui(env, [t.pid], 120, 40)
    try:
        tui.wait(r"conn-0 ")
        for w, h in ((80, 24), (60, 20), (132, 50), (80, 24)):
            tui.resize(w, h)
            s = tui.wait(r"^fake-server\[%d\]" % t.pid)
            lines = s.split("\n")
            assert len(lines) >= h and all(len(l) <= w for l in lines), (w, h)
            # header, tabs, titles and rows laid out for the new size
            # header (2 + the BLOCKED banner's line), tabs, info + titles, rows, footer
            want = h - 3 - 1 - 2 - 1

            def laid_out():
                s = tui.screen()
                rows = [l for l in s.split("\n") if re.match(r"^\s+\d+ \S+\s+waiting", l)]
                ok = re.search(r"^\s+ID\S* NAME", s, re.M) and re.search(r"\? Help", s)
                return s if ok and len(rows) == want else None
            wait_until("layout at %dx%d" % (w, h), laid_out)
        # usable at 80x24: every screen fits
        for k in "123456":
            tui.keys(k)
            s = tui.screen()
            assert all(len(l) <= 80 for l in s.split("\n"))
        tui.keys("1")
        tui.resize(100, 30)
        tui.keys("?")
        tui.wait(r"asynctop keys")
        tui.resize(70, 20)
        tui.wait(r"asynctop keys")
    finally:
        tui.close()


def test_no_color(env):
    t = env.target("--tasks", "10", "--dropped", "2")
    plain = Tui(env, [t.pid], 100, 30)
    nocolor = Tui(env, [t.pid], 100, 30, extra_env={"NO_COLOR": "1"})
    flag = Tui(env, ["--no-color", t.pid], 100, 30)
    try:
        for tui in (plain, nocolor, flag):
            tui.wait(r"conn-0")
            tui.wait(r"DROPPED")
        # the check can fail: with colours, colour sequences are there
        assert COLOUR.search(plain.screen(escapes=True))
        for tui in (nocolor, flag):
            for k in "1234561":
                tui.keys(k)
                s = tui.screen(escapes=True)
                assert not COLOUR.search(s), repr(COLOUR.search(s).group(0))
            # but still reverse video for the cursor and titles
            assert "\x1b[7m" in tui.screen(escapes=True)
    finally:
        for tui in (plain, nocolor, flag):
            tui.close()


def test_dropped_only_when_nonzero_and_gaps(env):
    """Dropped-event counters: absent while zero; a gap in the event numbers (events lost
    between the runtime and us) shows as "missed N", in the warning colour."""
    t = env.target("--tasks", "10", "--gap", "7")
    tui = Tui(env, [t.pid], 120, 30)
    try:
        tui.wait(r"conn-0")
        assert "DROPPED" not in header(tui.screen())
        s = tui.wait(r"DROPPED missed 7", 10)
        line = [l for l in tui.screen(escapes=True).split("\n") if "missed 7" in l][0]
        # the last colour set before the value is the warning colour (yellow)
        colours = [m for m in re.findall(r"\x1b\[([0-9;]*)m", line[:line.index("missed 7")])
                   if COLOUR.search("\x1b[%sm" % m)]
        assert colours and "33" in colours[-1].split(";"), repr(line)
    finally:
        tui.close()


def test_ascii(env):
    t = env.target("--tasks", "10")
    tui = Tui(env, ["--ascii", t.pid], 100, 30)
    try:
        tui.wait(r"conn-0")
        tui.keys("2")
        s = tui.wait(r"\|- server")
        assert "`- " in s
        tui.keys("6")
        s = tui.wait(r"utilisation")
        assert all(ord(c) < 128 for c in s), [c for c in s if ord(c) >= 128][:5]
    finally:
        tui.close()


def test_exit_and_reattach(env):
    t = env.target("--tasks", "12", "--exit-after", "3")
    tui = Tui(env, [t.pid], 100, 30)
    try:
        tui.wait(r"live")
        s = tui.wait(r"EXITED", 10)
        assert "has exited" in s
        # the last state stays on screen
        assert "conn-0" in s and "fake-server[%d]" % t.pid in s
        t.proc.wait(5)
        # the same program comes back: reattach is offered
        t2 = env.target("--tasks", "5")
        tui.wait(r"fake-server is running again as pid %d: press r to reattach" % t2.pid, 10)
        tui.keys("r")
        s = tui.wait(r"fake-server\[%d\]\s+live" % t2.pid)
        tui.wait(r"tasks 8: 0 run")  # 7 fixed tasks + one short-lived
        # another program's exit: SIGTERM to asynctop restores the terminal
        assert tui.alternate_on()
        pid = int(tui.tmux("display-message", "-p", "#{pane_pid}").stdout)
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        os.kill(int(kids[0]), signal.SIGTERM)
        tui.wait(r"\[asynctop exited 143\]")
        assert not tui.alternate_on()
    finally:
        tui.close()
