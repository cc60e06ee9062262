"""test-tui-sanitise.py: a hostile process's text never drives the terminal. The fake target
(--hostile) puts a title-setting OSC (ESC ] 0 ; pwned BEL), a C1 CSI (U+009B) and bidi
controls in task, site and function names, wait descriptions, an exception's message and
domain, refusal and bye reasons; --refuse answers hello with such an error; --comm gives
/proc/PID/comm raw control bytes. In the TUI (under tmux) and in every subcommand the tmux pane
title stays as it was and each character shows as its visible replacement (Sanitise.h)."""
import json
import os
import subprocess
import unicodedata

import pytest

from tui_harness import ASYNCTOP, WRAPPER, Env, Tui

# What fake_target.py's HOSTILE ("\x1b]0;pwned\x07|\u009b31m|\u202e|\u2066|\u200f|") must look
# like once sanitised in a UTF-8 locale: ESC and BEL as control pictures, the rest U+FFFD.
SHOWN = "\u241b]0;pwned\u2407|\ufffd31m|\ufffd|\ufffd|\ufffd|"
RAW = "\x1b]0;pwned\x07|\u009b31m|\u202e|\u2066|\u200f|"
# any of these bytes on the screen or in text output means a control got through
FORBIDDEN = ("\x1b", "\x07", "\u009b", "\u202e", "\u2066", "\u200f")


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def columns(text):
    """Screen columns of text: East Asian wide 2, combining 0, else 1."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def title(tui):
    return tui.tmux("display-message", "-p", "#{pane_title}").stdout.strip()


def assert_clean(text):
    for c in FORBIDDEN:
        assert c not in text, (repr(c), text)


def test_tui_hostile(env):
    t = env.target("--hostile", "--tasks", "10", "--exit-after", "12",
                   program="prog\x1b]0;pwned\x07")
    tui = Tui(env, [t.pid])
    try:
        before = title(tui)
        assert "pwned" not in before
        s = tui.wait(r"evil\u241b\]0;pwned\u2407", 8)  # task name in the task table
        assert "prog\u241b]0;pwned\u2407" in s  # program name in the header
        # wide (2 columns) and combining (0) characters keep the table's columns aligned
        lines = s.split("\n")
        head = [l for l in lines if "STATE" in l][0]
        wide = [l for l in lines if "wide\u6f22\u5b57e\u0301" in l][0]
        assert columns(wide[:wide.index("waiting")]) == columns(head[:head.index("STATE")]), s
        assert_clean(tui.screen(escapes=True).replace("\x1b[", ""))  # only curses' own CSI
        assert title(tui) == before

        # the task's detail: its name, the function and file names of its stack
        tui.keys("/")
        tui.text("evil")
        tui.keys("Enter")
        tui.wait(r"^\s*6 evil\u241b", 8)
        tui.wait_not(r"^\s*1 main", 8)
        tui.keys("Enter")
        s = tui.wait(r"evil_fn" + SHOWN.replace("|", r"\|").replace("]", r"\]"), 8)
        assert "Task 6  evil" + SHOWN in s
        tui.keys("Escape")

        # the exception: message (both lines), domain and raise site
        tui.keys("5")
        s = tui.wait(r"hostile\u241b", 8)
        tui.keys("Home", "Enter")  # newest first
        s = tui.wait(r"second line", 8)
        assert "hostile" + SHOWN in s and "second line" + SHOWN in s, s
        assert "evil_fn" + SHOWN in s
        tui.keys("Escape")

        # a refusal: the process's reason in the status line
        tui.keys("t")
        tui.text("50ms")
        tui.keys("Enter")
        s = tui.wait(r"refused the change: refused\u241b", 8)
        assert "refused" + SHOWN in s
        assert title(tui) == before

        # bye: its reason in the TUI, then on the terminal once asynctop quits
        s = tui.wait(r"process exiting\u241b", 20)
        assert "process exiting" + SHOWN in s
        tui.keys("q")
        s = tui.wait(r"\[asynctop exited \d+\]", 10)
        assert "asynctop: the process said bye: process exiting" + SHOWN in s, s
        assert title(tui) == before, title(tui)
        assert_clean(s)
    finally:
        tui.close()


def test_bye_reason_keeps_title(env):
    # the shortest way a reason reached the terminal raw: printed on stderr as asynctop quits
    t = env.target("--hostile", "--tasks", "10", "--exit-after", "4")
    tui = Tui(env, [t.pid])
    try:
        before = title(tui)
        tui.wait(r"process exiting", 15)
        tui.keys("q")
        s = tui.wait(r"\[asynctop exited \d+\]", 10)
        assert title(tui) == before, (before, title(tui))
        assert "bye: process exiting" + SHOWN in s, s
    finally:
        tui.close()


def test_subcommands_hostile(env):
    t = env.target("--hostile", "--tasks", "10", program="prog\x1b]0;pwned\x07")
    r = env.run("dump", t.pid, "--json")
    assert r.returncode == 0, r.stderr
    assert_clean(r.stdout)
    d = json.loads(r.stdout)  # escaped, and the same text once decoded
    assert d["process"]["program"] == "prog\x1b]0;pwned\x07"
    assert [x["name"] for x in d["tasks"] if x["id"] == 6] == ["evil" + RAW]
    exc = [e for e in d["exceptions"] if e["message"].startswith("hostile")]
    assert exc and exc[0]["message"] == "hostile" + RAW + "\nsecond line" + RAW, exc
    assert "\\u001b]0;pwned\\u0007|\\u009b31m|\\u202e|\\u2066|\\u200f|" in r.stdout

    r = env.run("ps", t.pid)
    assert r.returncode == 0, r.stderr
    assert_clean(r.stdout)
    assert "evil" + SHOWN in r.stdout
    # columns stay aligned with wide (2 columns) and combining (0) characters in a name
    lines = r.stdout.rstrip("\n").split("\n")
    at = lines[0].index("STATE")
    wide = [l for l in lines if "wide" in l][0]
    assert "wide\u6f22\u5b57e\u0301" in wide, lines
    assert columns(wide[:wide.index("waiting")]) == at, lines

    r = env.run("pstree", t.pid)
    assert_clean(r.stdout)
    assert "evil" + SHOWN + "(6) waiting" in r.stdout

    r = env.run("set", t.pid, "slow=50ms")
    assert r.returncode == 8
    assert_clean(r.stderr)
    assert "asynctop set: the process refused: refused" + SHOWN in r.stderr

    r = env.run("ls")
    assert r.returncode == 0, r.stderr
    assert_clean(r.stdout)
    assert "prog\u241b]0;pwned\u2407" in r.stdout

    # the C locale: ASCII only, every replacement a '?'
    r = env.run("ps", t.pid, env={"LANG": "C", "LC_ALL": "C"})
    assert all(b < 0x80 for b in r.stdout.encode()), r.stdout
    assert "evil?]0;pwned?|?31m|?|?|?|" in r.stdout


def test_refusal_reason(env):
    t = env.target("--hostile", "--refuse")
    r = env.run(t.pid)
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert_clean(r.stderr)
    assert "the process refused the connection: not you" + SHOWN in r.stderr


def run_bytes(env, *args, extra=None):
    """asynctop without a terminal; (exit status, stdout bytes, stderr bytes)."""
    e = dict(env.env)
    e.update(extra or {})
    r = subprocess.run(WRAPPER + [ASYNCTOP] + [str(a) for a in args], env=e, capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def test_ls_comm(env):
    # comm: ESC, BEL and a raw 0x9b byte (CSI to a non-UTF-8 terminal); the process refuses
    # us, so ls shows its comm
    comm = b"c\x1b]0;pwned\x07\x9bx"
    t = env.target("--refuse", "--comm", os.fsdecode(comm))
    with open("/proc/%d/comm" % t.pid, "rb") as f:
        assert f.read().rstrip(b"\n") == comm
    rc, out, err = run_bytes(env, "ls")
    assert rc == 0, err
    text = out.decode("utf-8")  # strict: a raw 0x9b byte would fail here
    assert_clean(text)
    row = [l for l in text.split("\n") if l.strip().startswith(str(t.pid))]
    assert row and "c\u241b]0;pwned\u2407\ufffdx" in row[0], text
    rc, out, err = run_bytes(env, "ls", extra={"LANG": "C", "LC_ALL": "C"})
    assert all(b < 0x80 for b in out), out
    assert b"c?]0;pwned??x" in out, out
