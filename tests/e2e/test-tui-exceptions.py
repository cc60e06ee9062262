"""test-tui-exceptions.py: the Exceptions screen shows the error itself. A real program
(tui_target, command `refused`) lets a task fail with ECONNREFUSED and a two-line message;
nobody retrieves it. The list's MESSAGE column leads with the error's own words (not the
"Task exception was never retrieved" boilerplate, not a '?' for the line break), the column
holding "error"/"warning" is SEVERITY, the detail view shows every line, wrapped to the screen,
and dump --json names the severity "severity". The error's own code and domain travel in the
wire's `code` and `domain` keys (issue 14: `domain` held the severity, no code was sent): checked
on the wire with the independent client (atclient.py), in the detail view and in dump --json,
against the code the target says it raised and Python's own errno."""
import errno
import json
import re

import pytest

from atclient import Client
from tui_harness import Env, Tui

OWN = "ECONNREFUSED (asynctop): connect 127.0.0.1:9 (backend db)"
SECOND = "retried 3 times, giving up"


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def flat(text):
    """text with every run of blanks and line breaks made one blank (for wrapped text)."""
    return " ".join(text.split())


def test_exception_message(env):
    t = env.real_target()
    tui = Tui(env, [t.pid], width=140, height=40)
    try:
        tui.wait(r"Tasks", 10)
        said = [l for l in t.send("refused") if l.startswith("ERROR ")]
        assert said, "the target did not say what it raises"
        code, domain = int(said[0].split()[1]), said[0].split()[2]
        # AT_ECONNREFUSED keeps libuv's value, the negated errno, in the runtime's domain
        assert (code, domain) == (-errno.ECONNREFUSED, "asynctop"), said
        tui.keys("5")
        s = tui.wait(r"never retrieved\s+error\s+" + re.escape(OWN), 10)
        head = [l for l in s.split("\n") if "MESSAGE" in l][0]
        assert re.search(r"AGE\s+KIND\s+SEVERITY\s+MESSAGE\s+RAISED AT", head), head
        row = [l for l in s.split("\n") if OWN in l][0]
        assert "?" not in row, row  # the line breaks are not '?'
        assert OWN + " \u23ce " in row, row  # a visible separator before the next line

        # the detail: every line of the message, the error's on lines of their own
        tui.keys("Home", "Enter")
        s = tui.wait(re.escape(SECOND), 10)
        lines = s.split("\n")
        msg = [i for i, l in enumerate(lines) if l.startswith("  message    ")]
        assert msg, s
        i = msg[0]
        assert lines[i].startswith("  message    Task exception was never retrieved: task: "
                                   "<Task failed name='connecting'"), s
        assert lines[i + 1].rstrip() == " " * 13 + "error: " + OWN, s
        assert lines[i + 2].rstrip() == " " * 13 + SECOND, s
        # the detail's title, under the tab bar: the error's domain, name and code as the wire
        # carries them, its severity
        tabs = [k for k, l in enumerate(lines) if "> Exception" in l][0]
        title = lines[tabs + 1]
        assert ("never retrieved: asynctop %s (%d)  [error]" % (errno.errorcode[-code], code)
                in title), title

        # narrow: long lines wrap (indented under the text), nothing is cut
        tui.resize(50, 40)
        s = tui.wait(r"^\s+giving up\s*$|" + re.escape(SECOND), 10)
        lines = s.split("\n")
        i = [k for k, l in enumerate(lines) if l.startswith("  message    ")][0]
        j = [k for k, l in enumerate(lines) if l.startswith("  at ")][0]
        body = lines[i:j]
        assert all(len(l.rstrip()) <= 50 for l in body), body
        assert all(l.startswith(" " * 13) for l in body[1:]), body
        text = flat("\n".join(l[13:] for l in body))
        assert ("Task exception was never retrieved: task: <Task failed name='connecting' id="
                in text), text
        assert flat("error: " + OWN + " " + SECOND) in text, text
    finally:
        tui.close()

    # the JSON: the severity under its own name, the message whole
    r = env.run("dump", t.pid, "--json")
    assert r.returncode == 0, r.stderr
    exc = [e for e in json.loads(r.stdout)["exceptions"] if OWN in e["message"]]
    assert exc, r.stdout
    assert exc[0]["severity"] == "error" and "error" not in exc[0], exc[0]
    assert exc[0]["code"] == code and exc[0]["domain"] == domain, exc[0]
    assert exc[0]["message"].endswith("\nerror: " + OWN + "\n" + SECOND), exc[0]

    # the wire itself, read by the independent client: the error's code and domain in their
    # keys, the severity in its own (a new client gets the event from the exporter's log)
    c = Client(t.path, timeout=30)
    try:
        c.hello()
        c.subscribe(100)
        u = c.recv_type("update", timeout=30)
        assert u["full"], u
        evs = [e for e in u.get("exc", []) if OWN in e["message"]]
        assert len(evs) == 1, u.get("exc")
        e = evs[0]
        assert e["code"] == code and e["domain"] == domain, e
        assert e.get("severity") == "error" and e["kind"] == 1, e  # 1: never retrieved
    finally:
        c.close()
