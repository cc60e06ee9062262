#!/bin/sh
# check_cddl.sh: validates the syntax of docs/protocol.cddl with the npm cddl tool
# (installed into .ci/node_modules by .ci/install-deps), after proving that the
# tool does reject a broken schema. Usage: check_cddl.sh TOOL FILE
tool=$1
file=$2
if [ ! -x "$tool" ]; then
    echo "wire-cddl: $tool not found: run .ci/install-deps" >&2
    exit 1
fi
if [ ! -f "$file" ]; then
    echo "wire-cddl: $file not found" >&2
    exit 1
fi
# 1. the tool must fail on a broken schema, or its "valid" means nothing
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'message = {\n  t: "hello",\n  pid: uint\n' >"$tmp/broken.cddl"
if "$tool" validate "$tmp/broken.cddl" >/dev/null 2>&1; then
    echo "wire-cddl: $tool accepts a broken schema; cannot trust it" >&2
    exit 1
fi
# 2. our schema
if ! "$tool" validate "$file"; then
    echo "wire-cddl: $file is not valid CDDL (see above)" >&2
    exit 1
fi
# 3. the tool does not check that referenced rules exist: do that here
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 "$(dirname "$0")/check_cddl_refs.py" "$file" || exit 1
fi
exit 0
