#!/usr/bin/python3
"""Symbols of programs built the usual way (-O2, stripped): sym-prog symbolises addresses in
its own functions and in a dlopen'ed library; checked against nm/readelf of the unstripped
files.  Usage: test-sym-stripped.py SYM_PROG SYM_LIB"""
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROG, LIB = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


def nm(path):
    out = subprocess.run(["nm", path], check=True, capture_output=True, text=True).stdout
    return {f[2]: int(f[0], 16) for f in (l.split() for l in out.splitlines()) if len(f) == 3}


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], check=True, capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", out.stdout)
    return m.group(1) if m else ""


def dynsyms(path):
    """(value, size, name) of the defined .dynsym symbols."""
    out = subprocess.run(["readelf", "-W", "--dyn-syms", path], check=True, capture_output=True,
                         text=True).stdout
    syms = []
    for l in out.splitlines():
        f = l.split()
        if len(f) >= 8 and f[0][:-1].isdigit() and f[0].endswith(":") and f[6] != "UND":
            syms.append((int(f[1], 16), int(f[2], 0), f[7]))
    return syms


def run(prog, lib, env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("ASYNCTOP_DEBUG_DIR", "DEBUGINFOD_URLS")}
    env.update(env_extra)
    p = subprocess.run([prog, lib], capture_output=True, text=True, env=env, timeout=120)
    if p.returncode != 0:
        sys.exit("%s exited %d: %s" % (prog, p.returncode, p.stderr))
    out = p.stdout
    rows = {}
    for l in out.splitlines():
        f = l.split("\t")
        rows[f[0]] = {"lib": f[1], "offset": int(f[2], 16), "func": f[3], "file": f[4],
                      "line": int(f[5]), "build_id": f[6]}
    return rows


tmp = tempfile.mkdtemp(prefix="at-sym-")
try:
    syms, lsyms = nm(PROG), nm(LIB)
    bid, lbid = build_id(PROG), build_id(LIB)
    check(len(bid) >= 16 and len(lbid) >= 16, "both files have a build-id (%s, %s)" % (bid, lbid))

    sprog = os.path.join(tmp, "sym-prog-stripped")
    slib = os.path.join(tmp, "libsym-stripped.so")
    subprocess.run(["objcopy", "--strip-all", PROG, sprog], check=True)
    subprocess.run(["objcopy", "--strip-all", LIB, slib], check=True)
    nm_out = subprocess.run(["nm", sprog], capture_output=True, text=True).stdout
    check("sym_alpha" not in nm_out, "the stripped program has no symbol table")
    dbgdir = os.path.join(tmp, "debug")
    dbgfile = os.path.join(dbgdir, ".build-id", bid[:2], bid[2:] + ".debug")
    os.makedirs(os.path.dirname(dbgfile))
    subprocess.run(["objcopy", "--only-keep-debug", PROG, dbgfile], check=True)

    # 1. unstripped: names, file:line, build-ids
    r = run(PROG, LIB, {})
    for fn in ("alpha", "beta"):
        check(r[fn]["func"] == "sym_" + fn, "unstripped %s named sym_%s (%s)" % (fn, fn, r[fn]))
        check(r[fn]["file"].endswith("sym-prog.c") and r[fn]["line"] > 0,
              "unstripped %s has file:line" % fn)
        check(r[fn]["build_id"] == bid, "unstripped %s build-id == readelf -n" % fn)
    check(r["exported"]["build_id"] == lbid, "library frame build-id == readelf -n")

    # 2. stripped, no debug directory: module+offset, offsets as nm of the unstripped copy
    r = run(sprog, slib, {})
    for fn in ("alpha", "beta"):
        row = r[fn]
        check(row["func"] == "", "stripped %s has no name (%s)" % (fn, row))
        check(row["lib"] == "sym-prog-stripped", "stripped %s module is the program" % fn)
        check(row["offset"] == syms["sym_" + fn] + 4,
              "stripped %s offset 0x%x == nm 0x%x + 4" % (fn, row["offset"], syms["sym_" + fn]))
        check(row["build_id"] == bid, "stripped %s build-id == readelf -n" % fn)

    # 3. .dynsym only (stripped library): inside an exported function's extent -> its name;
    # outside every .dynsym symbol's extent -> library+offset
    check(r["exported"]["func"] == "symlib_exported", "dynsym: exported function named (%s)"
          % r["exported"])
    hid = lsyms["symlib_hidden"] + 4
    ds = dynsyms(slib)
    before = [s for s in ds if s[0] <= hid]
    check(before and not any(v <= hid < v + size for v, size, _ in ds) and
          max(v + size for v, size, _ in ds if size > 0) <= hid,
          "the hidden address 0x%x lies past the end of the last sized .dynsym symbol, after "
          "the sizeless symlib_marker (%s)" % (hid, max(before) if before else None))
    check(any(n == "symlib_marker" and size == 0 for _, size, n in before),
          "the sizeless symlib_marker precedes it in .dynsym")
    check(r["hidden"]["func"] == "" and r["hidden"]["lib"] == "libsym-stripped.so" and
          r["hidden"]["offset"] == hid,
          "dynsym: address past the symbol's end reads libsym-stripped.so+0x%x (%s)"
          % (hid, r["hidden"]))
    check(r["hidden"]["build_id"] == lbid, "stripped library build-id == readelf -n")

    # 4. stripped + ASYNCTOP_DEBUG_DIR holding DIR/.build-id/xx/rest.debug: names, file:line
    r = run(sprog, slib, {"ASYNCTOP_DEBUG_DIR": "/nonexistent:" + dbgdir})
    for fn in ("alpha", "beta"):
        row = r[fn]
        check(row["func"] == "sym_" + fn, "debug dir: %s named sym_%s (%s)" % (fn, fn, row))
        check(row["file"].endswith("sym-prog.c") and row["line"] > 0,
              "debug dir: %s has file:line" % fn)
        check(row["offset"] == syms["sym_" + fn] + 4, "debug dir: %s offset unchanged" % fn)

    # 5. MiniDebugInfo (Fedora's recipe, gdb manual "MiniDebugInfo"): the stripped program
    # with an xz-compressed symbol table of its functions in .gnu_debugdata: names, no lines
    mini = os.path.join(tmp, "sym-prog-mini")
    funcs = sorted(n for n, t in ((l.split()[0], l.split()[1]) for l in subprocess.run(
        ["nm", "--format=posix", "--defined-only", PROG], check=True, capture_output=True,
        text=True).stdout.splitlines()) if t in ("T", "t"))
    keep = os.path.join(tmp, "keep_symbols")
    with open(keep, "w") as f:
        f.write("\n".join(funcs) + "\n")
    full, minidbg = os.path.join(tmp, "full.debug"), os.path.join(tmp, "mini.debug")
    subprocess.run(["objcopy", "--only-keep-debug", PROG, full], check=True)
    subprocess.run(["objcopy", "-S", "--remove-section", ".gdb_index", "--remove-section",
                    ".comment", "--keep-symbols=" + keep, full, minidbg], check=True)
    with open(minidbg, "rb") as f, open(minidbg + ".xz", "wb") as g:
        g.write(lzma.compress(f.read(), format=lzma.FORMAT_XZ))
    subprocess.run(["objcopy", "--strip-all", "-R", ".comment", PROG, mini], check=True)
    subprocess.run(["objcopy", "--add-section", ".gnu_debugdata=" + minidbg + ".xz", mini],
                   check=True)
    nm_out = subprocess.run(["nm", mini], capture_output=True, text=True).stdout
    check("sym_alpha" not in nm_out, "the MiniDebugInfo program has no .symtab")
    r = run(mini, slib, {})
    for fn in ("alpha", "beta"):
        row = r[fn]
        check(row["func"] == "sym_" + fn and row["lib"] == "sym-prog-mini",
              "MiniDebugInfo: %s named sym_%s (%s)" % (fn, fn, row))
        check(row["offset"] == syms["sym_" + fn] + 4, "MiniDebugInfo: %s offset" % fn)
finally:
    shutil.rmtree(tmp)

if FAILS:
    print("%d check(s) failed" % len(FAILS))
    sys.exit(1)
