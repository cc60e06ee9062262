"""test-tui-subcommands.py: asynctop without a terminal: ls, ps, pstree, dump --json, set,
--help, --version; their output and documented exit codes, errors on stderr."""
import json
import os
import re
import socket

import pytest

from tui_harness import Env


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def test_subcommands(env):
    t = env.target("--tasks", "20")
    # first: the exception events of the fake go to the first client only
    r = env.run("dump", t.pid, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert set(d) == {"process", "loops", "loop", "tasks", "stacks", "slow_callbacks",
                      "exceptions"}
    assert d["process"]["pid"] == t.pid and d["process"]["program"] == "fake-server"
    assert d["process"]["slow_threshold_ns"] == 100_000_000
    assert {x["id"] for x in d["tasks"]} >= {1, 2, 3, 10, 900, 901}
    task2 = [x for x in d["tasks"] if x["id"] == 2][0]
    assert task2["state"] == "waiting" and task2["parent"] == 1 and task2["waits_on"] == "accept #3"
    # every stack_id of the rows is in the stacks table, symbolised as the process sent it
    # (fake_target: task 2 waits on stack 6 = sites 12, 2, 1)
    assert {str(x["stack_id"]) for x in d["tasks"] if x["stack_id"]} <= set(d["stacks"])
    assert [(f["func"], f["file"], f["line"]) for f in d["stacks"][str(task2["stack_id"])]] == [
        ("at_spawn", "runtime/task.c", 90), ("server_run", "demo/server.c", 88),
        ("main", "demo/main.c", 40)]
    # each frame's module build-id as the process sent it (lowercase hex), else null
    assert [f["build_id"] for f in d["stacks"][str(task2["stack_id"])]] == [
        None, "0c29039453e58b2d265acc2804db911e2f346e33", None]
    assert {e["kind"] for e in d["exceptions"]} == {"never_retrieved", "never_awaited",
                                                   "destroyed_pending", "unclosed_resource",
                                                   "wrong_thread"}
    assert d["loop"]["handles"]["tcp"] == 12
    r = env.run("ps", t.pid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.rstrip("\n").split("\n")
    assert re.match(r"\s+ID NAME\s+STATE\s+WAITS ON", lines[0])
    assert len(lines) >= 1 + 20
    assert any(re.match(r"\s+10 conn-0\s+waiting\s+read #100", l) for l in lines)
    r = env.run("ps", t.pid, "--sort", "name", "-r", "--filter", "conn")
    names = [l.split()[1] for l in r.stdout.rstrip("\n").split("\n")[1:]]
    assert names == sorted(names, reverse=True) and all(n.startswith("conn-") for n in names)
    assert env.run("ps", t.pid, "--sort", "bogus").returncode == 2

    r = env.run("pstree", t.pid, "--ascii")
    assert r.returncode == 0
    assert r.stdout.startswith("main(1) waiting on future #77\n")
    assert "|- server(2) waiting on accept #3" in r.stdout
    assert "|  |- conn-0(10) waiting on read #100" in r.stdout
    assert "[parent cycle]" in r.stdout
    r = env.run("pstree", t.pid)
    assert "├─ server(2)" in r.stdout

    assert env.run("dump", t.pid).returncode == 2

    r = env.run("set", t.pid, "slow=50ms")
    assert r.returncode == 0 and r.stdout == "slow=50ms debug=off\n", (r.stdout, r.stderr)
    r = env.run("set", t.pid, "debug=on", "slow=0.2s")
    assert r.stdout == "slow=200ms debug=on\n"
    assert {"op": "set_config", "task": None, "config": {"slow_ns": 200000000, "debug": True}} in t.requests()
    for bad in (["slow=abc"], ["slow=0"], ["debug=maybe"], ["colour=red"], []):
        r = env.run("set", t.pid, *bad)
        assert r.returncode == 2 and r.stderr.startswith("asynctop set"), (bad, r.stderr)
        assert r.stdout == ""

    r = env.run("ls")
    assert r.returncode == 0 and re.search(r"^\s+%d fake-server\s+\S+\s+\d+ answers$" % t.pid, r.stdout, re.M)

    # -s PATH instead of a pid
    r = env.run("-s", t.path, "ps")
    assert r.returncode == 0 and "conn-0" in r.stdout


def test_errors_and_help(env):
    r = env.run("--help")
    assert r.returncode == 0 and "usage: asynctop" in r.stdout and "exit codes" in r.stdout
    r = env.run("--version")
    assert r.returncode == 0 and re.match(r"asynctop \d+\.\d+\.\d+ \(wire protocol 1\)", r.stdout)
    r = env.run("--bogus")
    assert r.returncode == 2 and "unknown option" in r.stderr
    r = env.run("ps")
    assert r.returncode == 2 and "PID" in r.stderr
    r = env.run("ps", "12x")
    assert r.returncode == 2
    # no such process
    r = env.run("ps", 999999)
    assert r.returncode == 3 and "no such process: 999999" in r.stderr and r.stdout == ""
    # a process that does not run the runtime (this test itself)
    r = env.run("ps", os.getpid())
    assert r.returncode == 4 and "not running the asynctop runtime" in r.stderr
    # a stale socket: nobody listens
    os.makedirs(env.sock_dir(), mode=0o700, exist_ok=True)
    stale = os.path.join(env.sock_dir(), "%d.sock" % os.getpid())
    s = socket.socket(socket.AF_UNIX)
    s.bind(stale)
    s.close()
    r = env.run("ps", os.getpid())
    assert r.returncode == 4 and "stale socket" in r.stderr, r.stderr
    r = env.run("ls")
    assert "stale" not in r.stdout or True  # our own pid is alive: listed as not answering
    os.unlink(stale)
    # a protocol version we do not speak
    t = env.target("--tasks", "8", "--protocol", "2")
    r = env.run("ps", t.pid)
    want = "speaks asynctop protocol version 2; this asynctop speaks version 1"
    assert r.returncode == 6 and want in r.stderr, r.stderr
    # the interactive view gives the same message before taking the terminal
    r = env.run(t.pid)
    assert r.returncode == 6 and want in r.stderr, r.stderr


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run as another user")
def test_permission_refused(env):
    t = env.target("--tasks", "8")
    import pwd
    nobody = pwd.getpwnam("nobody")
    import subprocess
    r = subprocess.run(["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid,
                        "--clear-groups", os.environ.get("ASYNCTOP", ""), "ps", str(t.pid)],
                       env=env.env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 5 and "permission refused" in r.stderr, (r.returncode, r.stderr)


def test_many_tasks(env):
    t = env.target("--tasks", "100000")
    r = env.run("ps", t.pid, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") >= 100_001
