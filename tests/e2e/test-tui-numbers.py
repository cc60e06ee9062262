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
