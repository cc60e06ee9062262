#!/usr/bin/python3
"""check_cddl_refs.py: every rule name a CDDL file references is defined (the npm cddl
tool checks syntax only). Usage: check_cddl_refs.py FILE"""
import re
import sys

PRELUDE = {
    "any", "uint", "nint", "int", "bstr", "bytes", "tstr", "text", "bool", "true",
    "false", "nil", "null", "float", "float16", "float32", "float64", "undefined",
    "number", "tdate", "time", "uri",
}

def main(path):
    src = open(path, encoding="utf-8").read()
    # drop comments and string literals
    src = re.sub(r";[^\n]*", "", src)
    src = re.sub(r'"[^"]*"', '""', src)
    defined = set(re.findall(r"^([A-Za-z_][\w-]*)\s*=", src, re.M))
    bad = []
    for m in re.finditer(r"[A-Za-z_][\w-]*", src):
        name = m.group(0)
        rest = src[m.end():].lstrip()
        before = src[:m.start()].rstrip()
        if rest.startswith(":") or rest.startswith("=>"):
            continue  # a map key / member name
        if rest.startswith("=") and (before == "" or before.endswith("\n") or
                                     src[:m.start()].endswith("\n")):
            continue  # a definition
        if before.endswith("."):
            continue  # control operator (.le, .size)
        if m.start() > 0 and src[m.start() - 1] == ".":
            continue
        if name in PRELUDE or name in defined:
            continue
        bad.append(name)
    if bad:
        print("%s: undefined rules: %s" % (path, ", ".join(sorted(set(bad)))), file=sys.stderr)
        return 1
    print("%s: %d rules, every reference defined" % (path, len(defined)))
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
