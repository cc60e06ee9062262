"""test_tui_screens.py: every screen's content, navigation, sort, filter, cancel and the
BLOCKED banner, read back from tmux's capture-pane."""
import re
import time

import pytest

ROW = re.compile(r"^\s*\d+ \S+\s+(waiting|ready|running|done|cancelled|failed)\b")


def task_rows(screen):
    return [l for l in screen.split("\n") if ROW.match(l)]

from tui_harness import Env, Tui, header, wait_until


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def test_screens(env):
    t = env.target("--tasks", "40", "--dropped", "3", "--block-at", "6", "--block-for", "6")
    tui = Tui(env, [t.pid], 120, 40)
    try:
        s = tui.wait(r"fake-server\[%d\]\s+live" % t.pid)
        s = tui.wait(r"conn-0 ")
        h = header(s)
        for want in ("up ", "loop ", "cb/s", "lag p50/99", "tasks ", "slow ", "threshold 100ms",
                     "debug off", "DROPPED slow 3"):
            assert want in h, (want, h)
        # the task table: titles and rows
        assert re.search(r"ID\S* NAME\s+STATE\s+WAITS ON\s+WAITING\s+BUSY\s+STEPS\s+AGE\s+CREATED AT", s)
        assert re.search(r"^\s+2 server\s+waiting\s+accept #3", s, re.M)
        # a row's wait description (wire element 13) replaces "kind #object"
        assert re.search(r"^\s+4 consumer\s+waiting\s+queue empty\s", s, re.M)
        assert re.search(r"^\s+10 conn-0\s+waiting\s+read #100", s, re.M)
        assert "at_spawn task.c:90" in s

        # navigation: cursor to the 3rd row (producer), open it
        tui.keys("j", "j", "Enter")
        d = tui.wait(r"Task 3\s+producer\s+\[waiting\]")
        d = tui.wait(r"Suspended at")
        assert re.search(r"#0\s+at_sleep\s+timer.c:77", d)
        assert re.search(r"#1\s+producer\s+queue.c:30", d)
        assert "parent     1 main" in d
        assert "Step durations" in d
        tui.keys("Escape")
        tui.wait(r"^\s+10 conn-0", 5)
        # End / Home / k / PgDn: the detail opened shows where the cursor is
        tui.keys("G", "Enter")
        tui.wait(r"Task \d+\s+short-\d+|Task 901\s+loop-b")
        tui.keys("Escape", "g", "Down", "Enter")
        tui.wait(r"Task 2\s+server")
        tui.keys("Escape", "End", "k", "Home", "NPage", "PPage", "Enter")
        tui.wait(r"Task 1\s+main")
        tui.keys("Escape")

        # sort: next column is NAME; invert puts ticker first
        tui.keys(">")
        tui.wait(r"sorted by NAME")
        tui.keys("i")
        tui.wait(r"sorted by NAME \(descending\)")
        tui.keys("g")
        s = tui.wait(r"^\s+5 ticker ")
        names = [r.split()[1] for r in task_rows(s)]
        assert names[0] == "ticker" and names == sorted(names, reverse=True), names
        tui.keys("<")  # back to ID
        tui.wait(r"sorted by ID")
        tui.keys("i")
        tui.wait(r"sorted by ID \(descending\)")
        tui.keys("g")
        s = tui.wait(r"^\s*\d+ short-")
        ids = [int(r.split()[0]) for r in task_rows(s)]
        assert ids == sorted(ids, reverse=True), ids
        tui.keys("F6")
        tui.wait(r"sorted by NAME")
        tui.keys("i", "<")

        # filter
        tui.keys("/")
        tui.text("conn-1")
        s = tui.wait(r"11 tasks\s+filter: conn-1")
        tui.keys("Enter")
        rows = task_rows(tui.screen())
        assert rows and all("conn-1" in r for r in rows), rows
        tui.keys("Escape")
        tui.wait(r"filter cleared")

        # tree: pstree lines, the reported parent cycle shown once
        tui.keys("2")
        s = tui.wait(r"TASK TREE")
        assert re.search(r"^\s+1 waiting\s+main", s, re.M)
        assert re.search(r"├─ server", s)
        assert re.search(r"│  ├─ conn-0", s)
        tui.keys("G")
        s = tui.wait(r"\(parent cycle\)")
        assert s.count("loop-a") == 1 and s.count("loop-b") == 1

        # groups: largest first; Enter shows the group's tasks
        tui.keys("3")
        s = tui.wait(r"groups of identical stacks")
        first = [l for l in s.split("\n") if re.match(r"^\s+\d+\s+[\d.]+[a-z]+ ", l)][0]
        assert "at_stream_read io.c:310" in first and "waits on read" in first, first
        assert int(first.split()[0]) >= 33
        assert "Stack of the selected group" in s and "handle_conn" in s
        tui.keys("Enter")
        tui.wait(r"tasks of one stack group")
        s = tui.wait(r"^\s+\d+ conn-0\s")  # drawn (slowly under valgrind)
        assert "producer" not in s
        tui.keys("Escape")
        tui.wait(r"groups of identical stacks")

        # slow callbacks: recent events and the per-site aggregate; Enter: its stacks
        tui.keys("4")
        s = tui.wait(r"slow_handler\s+producer", 8)
        assert "BY CALL SITE" in s and "slow_handler slow.c:12" in s
        tui.keys("Enter")
        s = tui.wait(r"Stack sampled while it was blocking")
        assert "Slow callback" in s and "Scheduled from" in s and "parse_request" in s
        tui.keys("Escape")

        # exceptions: every kind
        tui.keys("5")
        s = tui.wait(r"never retrieved")
        for want in ("never awaited", "destroyed pending", "unclosed", "wrong thread",
                     "connection reset by peer", "uv ECONNRESET (-104)"):
            assert want in s, want
        tui.keys("G", "Enter")
        s = tui.wait(r"never retrieved: uv ECONNRESET \(-104\)")
        assert "Raised at" in s and "at_future_set_error" in s
        tui.keys("Escape")

        # loop: sparklines, executor, handles, histogram
        tui.keys("6")
        s = tui.wait(r"Loop lag histogram")
        assert "utilisation" in s and re.search(r"[▁▂▃▄▅▆▇█]", s)
        assert "queued 3   running 2   threads 4" in s
        assert "tcp 12" in s and "timer 4" in s

        # help, generated from the key table
        tui.keys("?")
        s = tui.wait(r"asynctop keys")
        assert "Up k" in s and "move the cursor up" in s and "Tab" in s
        tui.keys("Escape")

        # the BLOCKED banner counts up while the loop is stuck
        s = tui.wait(r"BLOCKED (\d+\.\d) s in parse_request \(task server\)", 15)
        first = float(re.search(r"BLOCKED (\d+\.\d) s", s).group(1))
        s = wait_until("banner to count up", lambda: (lambda m: m and float(m.group(1)) >= first + 0.5 and m)(
            re.search(r"BLOCKED (\d+\.\d) s", tui.screen())), 5)
        tui.wait_not(r"BLOCKED", 15)

        # cancel with confirmation, from the task table
        tui.keys("1", "/")
        tui.text("conn-3")
        tui.keys("Enter", "g")
        tui.wait(r"^\s+13 conn-3 ")
        tui.keys("c")
        tui.wait(r"Cancel task 13 \(conn-3\)\? y/N")
        tui.keys("n")
        tui.wait(r"task 13 not cancelled")
        tui.keys("c")
        tui.wait(r"Cancel task 13")
        tui.keys("y")
        tui.wait(r"task 13 cancelled")
        assert {"op": "cancel", "task": 13, "config": None} in t.requests()
        tui.wait_not(r"^\s+13 conn-3 ", 10)  # lingers dimmed, then goes

        tui.keys("q")
        tui.wait(r"\[asynctop exited 0\]")
        assert not tui.alternate_on()
    finally:
        tui.close()
