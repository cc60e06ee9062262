#!/usr/bin/env python3
"""extract-example.py: writes the C code block that follows the marker line
`<!-- example: NAME -->` in a Markdown file, so the test suite compiles and runs
the very program the documentation shows.  usage: extract-example.py DOC NAME OUT"""
import sys

doc, name, out = sys.argv[1:4]
lines = open(doc, encoding="utf-8").read().split("\n")
marker = "<!-- example: %s -->" % name
try:
    i = lines.index(marker)
except ValueError:
    sys.exit("%s: no line %r" % (doc, marker))
while not lines[i].startswith("```c"):
    i += 1
j = i + 1
while not lines[j].startswith("```"):
    j += 1
with open(out, "w", encoding="utf-8") as f:
    f.write("\n".join(lines[i + 1:j]) + "\n")
