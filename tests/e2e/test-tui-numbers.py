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
