"""test-tui-threshold.py: the live threshold and debug round trip: the key sends a
set_config request, the target applies it, and the header shows what the target then
reports (never the value we asked for)."""
import json
import re

import pytest

from tui_harness import Env, Tui, header, wait_until


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def configs(target):
    return [r["config"] for r in target.requests() if r["op"] == "set_config"]


def shown_threshold(tui):
    m = re.search(r"threshold (\S+)", header(tui.screen()))
    return m and m.group(1)


def test_threshold_round_trip(env):
    t = env.target("--tasks", "10")
    tui = Tui(env, [t.pid], 100, 30)
    try:
        tui.wait(r"threshold 100ms")
        tui.keys("+")
        tui.wait(r"threshold 200ms")
        assert configs(t)[-1] == {"slow_ns": 200_000_000}
        tui.wait(r"the process now uses: slow threshold 200ms")
        tui.keys("-")
        tui.wait(r"threshold 100ms")
        tui.keys("-")
        tui.wait(r"threshold 50ms")
        tui.keys("-", "-", "-")  # 20, 10, stays at 10
        tui.wait(r"threshold 10ms")
        wait_until("three more requests", lambda: len(configs(t)) == 6)
        assert [c["slow_ns"] for c in configs(t)] == [200e6, 100e6, 50e6, 20e6, 10e6, 10e6]

        # t: a prompt; bad input gets a message and changes nothing
        n = len(configs(t))
        for bad, msg in (("abc", "not a number"), ("5min", "unknown unit"), ("-3ms", "negative"),
                         ("0", "must be above 0"), ("2h", "unknown unit")):
            tui.keys("t")
            tui.wait(r"Slow threshold \(now 10ms")
            tui.text(bad)
            tui.keys("Enter")
            tui.wait(re.escape(msg))
            tui.keys("Escape")
            tui.wait_not(r"Slow threshold \(now")
        assert len(configs(t)) == n
        assert shown_threshold(tui) == "10ms"
        # good forms
        for text, shown, ns in (("50ms", "50ms", 50e6), ("0.2s", "200ms", 200e6), ("250", "250ms", 250e6),
                                ("1.5s", "1.5s", 1.5e9), ("500us", "500us", 500e3)):
            tui.keys("t")
            tui.wait(r"Slow threshold \(now")
            tui.text(text)
            tui.keys("Enter")
            tui.wait(r"threshold %s\s" % re.escape(shown))
            assert configs(t)[-1]["slow_ns"] == ns
        # the value is the runtime's: a second client reads the same
        r = env.run("dump", t.pid, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["process"]["slow_threshold_ns"] == 500_000

        # debug toggles the same way
        tui.wait(r"debug off")
        tui.keys("d")
        tui.wait(r"debug on")
        assert configs(t)[-1] == {"debug": True}
        tui.keys("d")
        tui.wait(r"debug off")
        assert configs(t)[-1] == {"debug": False}
        tui.keys("q")
        tui.wait(r"\[asynctop exited 0\]")
    finally:
        tui.close()


def test_threshold_changes_what_is_reported(env):
    # the fake's periodic callback takes 150 ms: slow under a 100 ms threshold only
    t = env.target("--tasks", "10")
    tui = Tui(env, [t.pid], 100, 30)
    try:
        tui.wait(r"threshold 100ms")
        tui.keys("4")
        tui.wait(r"slow_handler", 8)
        tui.keys("+")
        tui.wait(r"threshold 200ms")
        count = int(re.search(r"(\d+) slow callbacks", tui.wait(r"\d+ slow callbacks")).group(1))
        # two more periods: no new slow events at 200 ms
        tui.wait(r"up ([4-9]|\d\d)\.\d", 10)
        s = tui.screen()
        assert int(re.search(r"(\d+) slow callbacks", s).group(1)) <= count + 1
    finally:
        tui.close()
