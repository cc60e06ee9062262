#!/usr/bin/python3
"""check_golden.py: an independent check of the golden frames with Python's cbor2 (Debian's
python3-cbor2). Each tests/wire/golden/*.hex frame is decoded by cbor2 and checked
against docs/protocol.md: the framing, the message type and version, and every key's
presence and type as the spec's tables say (top-level keys are read from the tables in
protocol.md itself; nested rows and maps follow its prose). If this passes, a client
written from protocol.md alone reads our frames.
Usage: check_golden.py GOLDEN_DIR [PROTOCOL_MD]"""
import os
import re
import sys

import cbor2

HERE = os.path.dirname(os.path.abspath(__file__))
errors = []


def err(where, msg):
    errors.append("%s: %s" % (where, msg))


def read_hex(path):
    text = "".join(line.split("#", 1)[0] for line in open(path, encoding="ascii"))
    return bytes.fromhex("".join(text.split()))


def spec_tables(md_path):
    """{message type: {key: (type, required)}} from the '### name (...)' tables."""
    md = open(md_path, encoding="utf-8").read()
    out = {}
    for m in re.finditer(r"^### (\w+) \(([^)]*)\)\n(.*?)(?=^### |^## )", md, re.M | re.S):
        name, body = m.group(1), m.group(3)
        keys = {}
        for row in re.finditer(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|", body, re.M):
            keys[row.group(1)] = (row.group(2).strip(), row.group(3).strip() == "yes")
        out[name] = keys
    return out


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_type(where, v, t):
    """Checks v against a type written in the spec tables."""
    t = t.strip()
    if t.startswith("["):
        if not isinstance(v, list):
            return err(where, "expected an array (%s), got %r" % (t, type(v).__name__))
        inner = t[1:-1].strip()
        for i, x in enumerate(v):
            check_type("%s[%d]" % (where, i), x, inner)
        return
    if t == "uint":
        return None if is_uint(v) else err(where, "expected uint, got %r" % (v,))
    if t == "int":
        return None if is_int(v) else err(where, "expected int, got %r" % (v,))
    if t == "text":
        return None if isinstance(v, str) else err(where, "expected text, got %r" % (v,))
    if t == "text/null":
        return None if v is None or isinstance(v, str) else err(where, "expected text/null")
    if t == "bool":
        return None if isinstance(v, bool) else err(where, "expected bool, got %r" % (v,))
    if t == "config":
        return check_config(where, v, partial=True)
    if t == "map":
        return None if isinstance(v, dict) else err(where, "expected a map")
    if t == "map/null":
        return None if v is None or isinstance(v, dict) else err(where, "expected map/null")
    checker = NESTED.get(t)
    if checker is None:
        return err(where, "the spec names type %r that this checker does not know" % t)
    checker(where, v)


def check_map(where, v, required, optional):
    if not isinstance(v, dict):
        return err(where, "expected a map, got %r" % type(v).__name__)
    for k in v:
        if not isinstance(k, str):
            err(where, "non-text key %r" % (k,))
    for k, t in required.items():
        if k not in v:
            err(where, "missing required key %r" % k)
        else:
            check_type("%s.%s" % (where, k), v[k], t)
    for k, t in optional.items():
        if k in v:
            check_type("%s.%s" % (where, k), v[k], t)


def check_row(where, v, types, optional=()):
    """A row: the elements of `types`, then those of `optional` as far as present."""
    if not isinstance(v, list):
        return err(where, "expected a row (array)")
    if len(v) < len(types):
        return err(where, "row of %d elements, %d needed" % (len(v), len(types)))
    for i, t in enumerate(list(types) + list(optional)):
        if i < len(v):
            check_type("%s[%d]" % (where, i), v[i], t)


def check_config(where, v, partial=False):
    keys = {"slow_ns": "uint", "debug": "bool"}
    check_map(where, v, {} if partial else keys, keys if partial else {})


def check_hist(where, v):
    check_type(where, v, "[uint]")
    if isinstance(v, list) and len(v) > 252:
        err(where, "histogram of %d buckets (max 252)" % len(v))


TASK_ROW = ["uint", "text/null", "uint", "uint", "uint", "uint", "uint", "uint", "uint",
            "uint", "uint", "uint", "uint"]

RUNNING = ({"since_ns": "uint", "kind": "uint"},
           {"site": "uint", "name": "text/null", "task": "uint", "stack": "uint"})

NESTED = {
    "task row": lambda w, v: check_row(w, v, TASK_ROW),
    "count": lambda w, v: check_row(w, v, ["text", "uint"]),
    "site": lambda w, v: check_row(w, v, ["uint", "uint", "text/null", "text/null", "uint"],
                                   ["text/null"]),
    "loc": lambda w, v: check_row(w, v, ["uint", "text/null", "text/null", "uint"], ["text/null"]),
    "stack": lambda w, v: check_row(w, v, ["uint", "[uint]"]),
    "site stats": lambda w, v: check_row(w, v, ["uint", "uint", "uint", "uint", "uint", "uint",
                                                "histogram"]),
    "inflight row": lambda w, v: check_row(w, v, ["uint", "text", "text/null", "uint", "uint",
                                                  "uint"]),
    "loop info": lambda w, v: check_row(w, v, ["uint", "text/null", "uint"]),
    "histogram": check_hist,
    "slow event": lambda w, v: check_map(
        w, v, {"seq": "uint", "start_ns": "uint", "dur_ns": "uint", "kind": "uint"},
        {"site": "uint", "name": "text/null", "task": "uint", "stack": "uint",
         "sched_stack": "uint"}),
    "exception event": lambda w, v: check_map(
        w, v, {"seq": "uint", "time_ns": "uint", "kind": "uint", "message": "text"},
        {"code": "int", "domain": "text/null", "object": "uint", "obj_type": "text/null",
         "task": "uint", "raise_stack": "uint", "create_stack": "uint", "severity": "text"}),
    "running": lambda w, v: None if v is None else check_map(w, v, *RUNNING),
    "stats": lambda w, v: check_map(
        w, v, {"busy_ns": "uint", "idle_ns": "uint", "iterations": "uint", "callbacks": "uint",
               "slow": "uint", "errors": "uint", "lag": "histogram", "tasks": "tasks6",
               "handles": "[count]", "exec": "exec"}, {}),
    "tasks6": lambda w, v: check_row(w, v, ["uint"] * 6),
    "exec": lambda w, v: check_map(w, v, {k: "uint" for k in
                                         ("queued", "running", "threads", "done", "wait_ns")},
                                   {}),
    "detail": lambda w, v: check_map(
        w, v, {"task": "task row"},
        {"wait_desc": "text/null", "create": "[loc]", "suspend": "[loc]", "children": "[uint]",
         "step_hist": "histogram", "error": "text/null"}),
}

# Keys of the top-level tables whose value has a named nested shape.
NESTED_KEYS = {("update", "stats"): "stats", ("update", "running"): "running",
               ("response", "running"): "running", ("response", "detail"): "detail"}
FULL_CONFIG = {"hello", "update"}  # config with both keys required


def check_frame(path, spec):
    where = os.path.basename(path)
    data = read_hex(path)
    if len(data) < 5:
        return err(where, "shorter than a frame")
    n = int.from_bytes(data[:4], "big")
    if n != len(data) - 4:
        return err(where, "length prefix %d but %d bytes follow" % (n, len(data) - 4))
    body = data[4:]
    if body[0] >> 5 != 5 or body[0] & 31 == 31:
        return err(where, "the item is not a definite-length map")
    # exactly one item: decode and require that nothing is left
    import io
    fp = io.BytesIO(body)
    msg = cbor2.CBORDecoder(fp).decode()
    if fp.tell() != len(body):
        return err(where, "%d bytes after the item" % (len(body) - fp.tell()))
    if not isinstance(msg, dict):
        return err(where, "not a map")
    t = msg.get("t")
    if t not in spec:
        return err(where, "message type %r is not in protocol.md" % (t,))
    if msg.get("v") != 1 or not is_uint(msg.get("v")):
        err(where, "version %r, expected 1" % (msg.get("v"),))
    for key, (typ, req) in spec[t].items():
        if key not in msg:
            if req:
                err(where, "missing required key %r" % key)
            continue
        w = "%s.%s" % (where, key)
        if (t, key) in NESTED_KEYS:
            NESTED[NESTED_KEYS[(t, key)]](w, msg[key])
        elif key == "config" and t in FULL_CONFIG:
            check_config(w, msg[key])
        else:
            check_type(w, msg[key], typ)
    unknown = set(msg) - set(spec[t]) - {"t", "v"}
    if unknown:
        err(where, "keys not in protocol.md: %s" % sorted(unknown))
    return t


def main():
    golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "golden")
    md = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "..", "docs",
                                                             "protocol.md")
    spec = spec_tables(md)
    want = {"hello", "subscribe", "update", "request", "response", "error", "bye"}
    if set(spec) != want:
        err("protocol.md", "message tables found: %s, expected %s" % (sorted(spec),
                                                                      sorted(want)))
    files = sorted(f for f in os.listdir(golden) if f.endswith(".hex"))
    seen = set()
    for f in files:
        t = check_frame(os.path.join(golden, f), spec)
        if t:
            seen.add(t)
    if seen != want:
        err(golden, "no golden frame for: %s" % sorted(want - seen))
    for e in errors:
        print("FAIL", e)
    print("%d golden frames checked with cbor2 %s against %s: %d problems" %
          (len(files), getattr(cbor2, "__version__", "?"), os.path.basename(md), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
