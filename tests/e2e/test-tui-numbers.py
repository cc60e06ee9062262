"""test-tui-numbers.py: numbers the inspector shows, checked against what the process sent
(the fake target sends exactly known values): event counts across pause and resume, the
BLOCKED banner, groups, the task detail, and the smaller screen fixes of issue 14."""
import re

import pytest

from tui_harness import Env, Tui, header, wait_until


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def slow_count(screen):
    m = re.search(r"\bslow (\d+)", header(screen))
    assert m, header(screen)
    return int(m.group(1))


def test_pause_resume_does_not_count_events_twice(env):
    # threshold 1 s: the fake's periodic 150 ms callback is never slow; the only slow events
    # are the 4 before attach and one per resume ("resumed_N")
    env.env["ASYNCTOP_SLOW_MS"] = "1000"
    t = env.target("--event-log", "--slow-events", "4")
    tui = Tui(env, [t.pid], 120, 40)
    try:
        s = tui.wait(r"fake-server\[%d\]\s+live" % t.pid)
        tui.keys("4")
        s = tui.wait(r"startup_0")
        assert slow_count(s) == 4
        for k in (1, 2):
            tui.keys("Space")
            tui.wait(r"PAUSED")
            tui.keys("Space")
            # the snapshot after resume k resends the whole log, with resumed_k new in it
            s = tui.wait(r"resumed_%d" % k)
            assert slow_count(s) == 4 + k, header(s)
            rows = [l for l in s.split("\n") if re.search(r"\b(startup|resumed)_\d", l)]
            names = [re.search(r"\b((startup|resumed)_\d)", l).group(1) for l in rows]
            assert sorted(names) == sorted(set(names)), names  # each event once
            assert len(names) == 4 + k, names
    finally:
        tui.close()


def tab_line(screen):
    """Index of the tab bar's line: where the rows below the header start."""
    for i, l in enumerate(screen.split("\n")):
        if re.match(r"^\s*1 Tasks\s+2 Tree", l):
            return i
    raise AssertionError(screen)


def test_blocked_banner_is_what_the_process_reported(env):
    """The banner shows the running time the last update reported (cut to 0.1 s), never more
    (it used to count on locally between updates), with its age; its line is always there, so
    the rows never move when it appears or goes."""
    runlog = env.dir + "/running.log"
    t = env.target("--block-at", "3", "--block-for", "9", "--running-log", runlog)
    # updates every 2 s: between two, a banner counting locally would read values never sent
    tui = Tui(env, ["-d", "2000", t.pid], 120, 40)
    try:
        s = tui.wait(r"^\s+10 conn-0 ")
        before = tab_line(s)
        seen = set()

        def reported():
            with open(runlog) as f:
                return {int(x) for x in f.read().split()}

        def banner():
            s = tui.screen()
            m = re.search(r"BLOCKED (\d+)\.(\d) s in parse_request \(task server\)\s+"
                          r"as of \d+\.\d s ago", s)
            if m:
                assert tab_line(s) == before, s  # rows did not move
                seen.add(int(m.group(1)) * 10 + int(m.group(2)))
            return len(seen) >= 3 and seen
        wait_until("three banner values", banner, 20, 0.1)
        # every value shown is one the process sent, cut to 0.1 s
        sent = {ns // 100_000_000 for ns in reported() if ns >= 0}
        assert seen <= sent, (seen, sent)
        s = tui.wait_not(r"BLOCKED", 20)
        assert tab_line(s) == before, s
    finally:
        tui.close()


def test_task_detail_wait_line_is_from_one_update(env):
    """The task detail's "waits on" line is the latest update's: with a description that
    changes every update ("sleep 8.497 s"), no older copy from the detail answer beside it
    (it read "sleep 0.603 s (sleep 0.531 s)")."""
    t = env.target("--sleep-desc")
    tui = Tui(env, [t.pid], 120, 40)
    try:
        s = tui.wait(r"^\s+3 producer\s+waiting\s+sleep \d+\.\d{3} s")
        tui.keys("j", "j", "Enter")
        tui.wait(r"Suspended at")
        for _ in range(3):  # over a few updates (each changes the description)
            prev = re.search(r"waits on\s+(.*)$", tui.screen(), re.M).group(1)
            s = wait_until("the description to change", lambda: (lambda m: m and m.group(1) != prev and tui.screen())(
                re.search(r"waits on\s+(.*)$", tui.screen(), re.M)), 10)
            line = re.search(r"waits on\s+(.*)$", s, re.M).group(1).rstrip()
            assert re.fullmatch(r"sleep \d+\.\d{3} s", line), line
        # a row without words of its own still gets the detail's description
        tui.keys("Escape", "g", "j", "Enter")  # task 2, server: "accept #3"
        s = tui.wait(r"waits on\s+accept #3  \(read tcp fd 3\)")
    finally:
        tui.close()


# ---- the smaller items of issue 14 ------------------------------------------------------

def test_delay_is_validated(env):
    for bad in ("abc", "50", "99", "60001", "100x", "", "-5"):
        r = env.run("-d", bad, "ls")
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert "--delay %s: the update interval in milliseconds, a whole number from 100 to 60000" \
            % bad in r.stderr, r.stderr
    for good in ("100", "60000", "1000"):  # accepted: ls then runs (and finds nothing)
        r = env.run("--delay", good, "ls")
        assert r.returncode != 2 and "--delay" not in r.stderr, (good, r.stderr)


def test_loop_screen_pages(env):
    t = env.target()
    tui = Tui(env, [t.pid], 100, 20)  # the Loop page is longer than the 15 lines it gets
    try:
        tui.wait(r"^\s+10 conn-0 ")
        tui.keys("6")
        s = tui.wait(r"< 2\.0ms")
        assert "< 4.1ms" not in s  # below the screen
        first = tab_line(s) + 1
        assert s.split("\n")[first].startswith("utilisation"), s
        tui.keys("NPage")
        s = wait_until("the page to scroll", lambda: (lambda s: not s.split("\n")[first].startswith(
            "utilisation") and s)(tui.screen()), 5)
        assert "< 4.1ms" in s  # the last line is in view
        tui.keys("PPage")
        wait_until("back at the top", lambda: tui.screen().split("\n")[first].startswith(
            "utilisation"), 5)
    finally:
        tui.close()


def test_slow_screen_filter(env):
    env.env["ASYNCTOP_SLOW_MS"] = "1000"  # only the startup events are slow
    t = env.target("--slow-events", "3")
    tui = Tui(env, [t.pid], 120, 40)
    try:
        tui.wait(r"^\s+10 conn-0 ")
        tui.keys("4")
        s = tui.wait(r"startup_2")
        assert "startup_0" in s and "startup_1" in s
        tui.keys("/")
        tui.wait(r"^Filter:\s*$")
        tui.text("startup_1")  # letters that are also commands (s, t, a, r, u, p)
        s = tui.wait(r"^Filter: startup_1")
        s = tui.wait_not(r"startup_0")
        assert "startup_1" in s and "startup_2" not in s
        assert "Slow threshold" not in s  # t did not open the threshold prompt
        tui.keys("Enter")
        s = tui.wait(r"1 of 3 slow callbacks match \"startup_1\"")
        tui.keys("Enter")  # the detail of the one event shown
        tui.wait(r"Slow callback startup_1 ")
        tui.keys("Escape", "Escape")  # back, then the filter goes
        s = tui.wait(r"filter cleared")
        assert "startup_0" in s and "startup_2" in s
    finally:
        tui.close()


def test_picker_header_has_no_placeholders(env):
    t = env.target(program="pick-me")
    tui = Tui(env, [], 110, 30)
    try:
        s = tui.wait(r"%d pick-me\s+\S+\s+\d+ answers" % t.pid)
        s = tui.wait(r"^pick-me\[%d\]\s+up \S+\s+tasks \d+" % t.pid)
        h = header(s)
        assert "?[0]" not in h and "threshold 0ns" not in h and "up 0ns" not in h, h
        assert re.search(r"^asynctop  1 process to attach to", h, re.M), h
    finally:
        tui.close()


def test_reattach_status(env):
    t = env.target("--tasks", "12", "--exit-after", "3")
    tui = Tui(env, [t.pid], 100, 30)
    try:
        tui.wait(r"EXITED", 10)
        t.proc.wait(5)
        t2 = env.target("--tasks", "5")
        tui.wait(r"press r to reattach", 10)
        tui.keys("r")
        s = tui.wait(r"reattached to fake-server, pid %d" % t2.pid)
        assert "press r to reattach" not in s
        assert re.search(r"fake-server\[%d\]\s+live" % t2.pid, s)
    finally:
        tui.close()


def test_scheduled_from_says_what_debug_mode_does(env):
    t = env.target("--slow-events", "1")  # debug off: no scheduling stack recorded
    tui = Tui(env, [t.pid], 120, 40)
    try:
        tui.wait(r"^\s+10 conn-0 ")
        tui.keys("4")
        tui.wait(r"startup_0")
        tui.keys("G", "Enter")
        tui.wait(r"Slow callback startup_0 ")
        tui.wait(r"\(unknown: turn debug mode on with d\)")
        tui.keys("d")
        s = tui.wait(r"debug on")
        s = tui.wait(r"\(none recorded: debug mode records this only for callbacks scheduled "
                     r"after it was turned on\)")
        assert "turn debug mode on with d" not in s
    finally:
        tui.close()


def test_exception_created_from_says_what_debug_mode_does(env):
    t = env.target()  # debug off: the exceptions carry no creation stack
    tui = Tui(env, [t.pid], 120, 40)
    try:
        tui.wait(r"^\s+10 conn-0 ")
        tui.keys("5")
        tui.wait(r"connection reset by peer")
        tui.keys("Home", "Enter")
        s = tui.wait(r"Created from\s+\(unknown: turn debug mode on with d\)")
        tui.keys("d")
        tui.wait(r"debug on")
        s = tui.wait(r"Created from\s+\(none recorded: debug mode records this only for objects "
                     r"created after it was turned on\)")
        assert "turn debug mode on with d" not in s
    finally:
        tui.close()


def test_created_at_shows_file_and_line_at_100x30(env):
    t = env.target()
    tui = Tui(env, [t.pid], 100, 30)
    try:
        s = tui.wait(r"^\s+10 conn-0 ")
        row = [l for l in s.split("\n") if re.match(r"^\s+10 conn-0 ", l)][0]
        assert re.search(r" at_spawn task\.c:90\s*$", row), row
    finally:
        tui.close()


def updates_sent(runlog):
    with open(runlog) as f:
        return len(f.read().split())


def group_rows(screen):
    return [l for l in screen.split("\n") if re.match(r"^\s+\d+\s+\S+ \S", l)]


def test_groups_sizes_and_rows(env):
    """Groups of known sizes (fake_target --tasks 12 --split-stack: conn-1..4 wait on stack 1,
    conn-0 in the same top frame from another caller): one row per group with its count,
    rows that share a top frame are told apart by their callers, and Enter lists the group's
    tasks and keeps listing them across updates."""
    runlog = env.dir + "/running.log"  # one line per update sent
    t = env.target("--tasks", "12", "--split-stack", "--running-log", runlog)
    tui = Tui(env, [t.pid], 120, 40)
    try:
        tui.wait(r"^\s+10 conn-0 ")
        tui.keys("3")
        s = tui.wait(r"at_stream_read io\.c:310 < parse_request server\.c:201  waits on read")
        rows = group_rows(s)
        reads = [r for r in rows if "at_stream_read io.c:310" in r]
        assert len(reads) == 2, rows
        assert re.match(r"^\s+4\s+\S+ at_stream_read io\.c:310 < handle_conn server\.c:120  "
                        r"waits on read$", reads[0].rstrip()), reads
        assert re.match(r"^\s+1\s+\S+ at_stream_read io\.c:310 < parse_request", reads[1]), reads
        # rows with a top frame of their own are not given callers
        assert any(re.match(r"^\s+2\s+\S+ at_sleep timer\.c:77  waits on sleep$", r.rstrip())
                   or re.match(r"^\s+\d+\s+\S+ at_queue_get sync\.c:200  waits on queue$",
                               r.rstrip()) for r in rows), rows
        assert len(set(r.split(None, 2)[2] for r in rows)) == len(rows), rows  # no look-alikes
        # Enter on the group of four: its tasks, still after two more updates
        idx = rows.index(reads[0])
        tui.keys("g", *(["j"] * idx), "Enter")
        s = tui.wait(r"tasks of one stack group: 4 tasks")
        names = sorted(re.findall(r"\bconn-\d\b", s))
        assert names == ["conn-1", "conn-2", "conn-3", "conn-4"], names
        sent = updates_sent(runlog)
        wait_until("two more updates", lambda: updates_sent(runlog) >= sent + 2, 10)
        s = tui.wait(r"tasks of one stack group: 4 tasks")
        assert sorted(re.findall(r"\bconn-\d\b", s)) == names
    finally:
        tui.close()
