#!/usr/bin/python3
"""check_cddl_golden.py: validates every golden frame (decoded with Python's cbor2) against
docs/protocol.cddl, so that the schema, the prose and the bytes cannot drift apart.
Implements the CDDL subset the schema uses (RFC 8610): rules, type choices `/`, maps
and arrays with `?`/`*`/`+` members, bareword and `type => type` keys, array labels,
literal text and integers, the prelude types, `.le`/`.ge`/`.size` controls.
Usage: check_cddl_golden.py SCHEMA GOLDEN_DIR"""
import io
import os
import re
import sys

import cbor2

TOKEN = re.compile(r'\s+|;[^\n]*|(?P<str>"[^"]*")|(?P<num>-?\d+)|(?P<op>=>|\.\w+|[=/{}\[\](),:?*+])|'
                   r'(?P<name>[A-Za-z_@$][\w@$.-]*[\w@$]|[A-Za-z_@$])')


def tokenize(src):
    out, pos = [], 0
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m:
            raise SyntaxError("cannot tokenize at %r" % src[pos:pos + 20])
        pos = m.end()
        for kind in ("str", "num", "op", "name"):
            if m.group(kind) is not None:
                out.append((kind, m.group(kind)))
    return out


class Parser:
    def __init__(self, toks):
        self.t, self.i = toks, 0

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else (None, None)

    def take(self, val=None):
        tok = self.peek()
        if val is not None and tok[1] != val:
            raise SyntaxError("expected %r, got %r" % (val, tok[1]))
        self.i += 1
        return tok

    def rules(self):
        rules = {}
        while self.peek()[0] is not None:
            name = self.take()[1]
            self.take("=")
            rules[name] = self.type_()
        return rules

    def type_(self):
        alts = [self.type1()]
        while self.peek()[1] == "/":
            self.take()
            alts.append(self.type1())
        return ("choice", alts) if len(alts) > 1 else alts[0]

    def type1(self):
        v = self.value()
        while self.peek()[0] == "op" and self.peek()[1].startswith(".") and self.peek()[1] != ".":
            ctl = self.take()[1][1:]
            v = ("ctl", ctl, v, self.value())
        return v

    def value(self):
        kind, val = self.take()
        if kind == "str":
            return ("lit", val[1:-1])
        if kind == "num":
            return ("lit", int(val))
        if kind == "name":
            return ("ref", val)
        if val == "{":
            g = self.group("}")
            return ("map", g)
        if val == "[":
            g = self.group("]")
            return ("array", g)
        if val == "(":
            t = self.type_()
            self.take(")")
            return t
        raise SyntaxError("unexpected %r" % val)

    def group(self, close):
        members = []
        while self.peek()[1] != close:
            occ = (1, 1)
            if self.peek()[1] in ("?", "*", "+"):
                o = self.take()[1]
                occ = {"?": (0, 1), "*": (0, None), "+": (1, None)}[o]
            key = None
            if self.peek()[0] in ("name", "str") and self.peek(1)[1] == ":":
                key = ("lit", self.take()[1].strip('"'))
                self.take(":")
                typ = self.type_()
            else:
                typ = self.type_()
                if self.peek()[1] == "=>":
                    self.take()
                    key, typ = typ, self.type_()
            members.append((occ, key, typ))
            if self.peek()[1] == ",":
                self.take()
        self.take(close)
        return members


class Mismatch(Exception):
    pass


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


PRELUDE = {
    "any": lambda v: True,
    "uint": lambda v: is_int(v) and v >= 0,
    "nint": lambda v: is_int(v) and v < 0,
    "int": is_int,
    "tstr": lambda v: isinstance(v, str),
    "text": lambda v: isinstance(v, str),
    "bstr": lambda v: isinstance(v, bytes),
    "bytes": lambda v: isinstance(v, bytes),
    "bool": lambda v: isinstance(v, bool),
    "true": lambda v: v is True,
    "false": lambda v: v is False,
    "null": lambda v: v is None,
    "nil": lambda v: v is None,
}


class Validator:
    def __init__(self, rules):
        self.rules = rules

    def check(self, v, t, path):
        kind = t[0]
        if kind == "ref":
            name = t[1]
            if name in self.rules:
                return self.check(v, self.rules[name], path)
            if name in PRELUDE:
                if not PRELUDE[name](v):
                    raise Mismatch("%s: %r is not %s" % (path, v, name))
                return
            raise Mismatch("%s: undefined rule %s" % (path, name))
        if kind == "lit":
            if v != t[1] or isinstance(v, bool) != isinstance(t[1], bool):
                raise Mismatch("%s: %r is not %r" % (path, v, t[1]))
            return
        if kind == "choice":
            errs = []
            for alt in t[1]:
                try:
                    return self.check(v, alt, path)
                except Mismatch as e:
                    errs.append(str(e))
            raise Mismatch("%s: no alternative matches (%s)" % (path, " | ".join(errs[:3])))
        if kind == "ctl":
            _, ctl, base, arg = t
            self.check(v, base, path)
            lim = self.resolve_lit(arg)
            if ctl == "le" and not v <= lim or ctl == "ge" and not v >= lim or \
                    ctl == "size" and not len(v) <= lim:
                raise Mismatch("%s: %r fails .%s %r" % (path, v, ctl, lim))
            return
        if kind == "map":
            return self.check_map(v, t[1], path)
        if kind == "array":
            return self.check_array(v, t[1], path)
        raise Mismatch("%s: unknown schema node %r" % (path, kind))

    def resolve_lit(self, t):
        while t[0] == "ref":
            t = self.rules[t[1]]
        return t[1]

    def matches(self, v, t, path):
        try:
            self.check(v, t, path)
            return True
        except Mismatch:
            return False

    def check_map(self, v, members, path):
        if not isinstance(v, dict):
            raise Mismatch("%s: expected a map, got %s" % (path, type(v).__name__))
        left = dict(v)
        for (lo, hi), key, typ in members:
            if key is not None and key[0] == "lit":
                k = key[1]
                if k in left:
                    self.check(left.pop(k), typ, "%s.%s" % (path, k))
                elif lo > 0:
                    raise Mismatch("%s: missing required key %r" % (path, k))
        for (lo, hi), key, typ in members:
            if key is not None and key[0] != "lit":
                for k in list(left):
                    if self.matches(k, key, path) and self.matches(left[k], typ, path):
                        del left[k]
        if left:
            raise Mismatch("%s: keys not allowed by the schema: %s" % (path, sorted(left)))

    def check_array(self, v, members, path):
        if not isinstance(v, list):
            raise Mismatch("%s: expected an array, got %s" % (path, type(v).__name__))
        i = 0
        for (lo, hi), _label, typ in members:
            n = 0
            while (hi is None or n < hi) and i < len(v) and \
                    self.matches(v[i], typ, "%s[%d]" % (path, i)):
                i += 1
                n += 1
            if n < lo:
                if i < len(v):
                    self.check(v[i], typ, "%s[%d]" % (path, i))  # raises with the reason
                raise Mismatch("%s: array too short (%d elements)" % (path, len(v)))
        if i != len(v):
            raise Mismatch("%s: element %d not allowed by the schema" % (path, i))


def read_frame(path):
    text = "".join(line.split("#", 1)[0] for line in open(path, encoding="ascii"))
    data = bytes.fromhex("".join(text.split()))
    n = int.from_bytes(data[:4], "big")
    if n != len(data) - 4:
        raise Mismatch("%s: bad length prefix" % path)
    fp = io.BytesIO(data[4:])
    msg = cbor2.CBORDecoder(fp).decode()
    if fp.tell() != n:
        raise Mismatch("%s: trailing bytes" % path)
    return msg


def main():
    schema, golden = sys.argv[1], sys.argv[2]
    rules = Parser(tokenize(open(schema, encoding="utf-8").read())).rules()
    v = Validator(rules)
    # the validator must be able to fail: a few frames that break the schema
    for bad in ({"t": "bye", "v": 2}, {"t": "error", "v": 1, "code": 1, "reason": "x"},
                {"t": "subscribe", "v": 1, "interval_ms": -1},
                {"t": "update", "v": 1, "seq": 0, "ts_ns": 0, "full": True,
                 "config": {"slow_ns": 1, "debug": False}, "tasks_new": [[1, "x", 2]]}):
        if v.matches(bad, ("ref", "message"), "self-test"):
            print("FAIL the validator accepts %r" % (bad,))
            return 1
    files = sorted(f for f in os.listdir(golden) if f.endswith(".hex"))
    problems = 0
    for f in files:
        try:
            msg = read_frame(os.path.join(golden, f))
            rule = msg.get("t") if isinstance(msg, dict) else None
            v.check(msg, ("ref", rule if rule in rules else "message"), f)
            v.check(msg, ("ref", "message"), f)
        except Mismatch as e:
            print("FAIL", e)
            problems += 1
    print("%d golden frames validated against %s (%d rules): %d problems" %
          (len(files), os.path.basename(schema), len(rules), problems))
    return 1 if problems or not files else 0


if __name__ == "__main__":
    sys.exit(main())
