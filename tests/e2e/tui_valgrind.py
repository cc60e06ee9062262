"""tui_valgrind.py: the inspector's end-to-end tests with every asynctop they start under
valgrind memcheck (ASYNCTOP_E2E_WRAPPER); fails on any memcheck error or definite leak in
any of those processes, including the ones a test expects to fail (bad input, refused
connections), whose exit status alone would hide valgrind's.

Usage: tui_valgrind.py PYTEST-ARGS... (test files relative to tests/e2e, -k ...; env:
ASYNCTOP, TUI_TARGET, as the e2e tests). Memcheck is slow: leave out what only measures
size (the 100k-task tests) and add --track-origins=yes by hand when hunting an error."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    valgrind = shutil.which("valgrind")
    if not valgrind:
        print("valgrind not found: skipped")
        return 77  # meson: skipped
    logdir = tempfile.mkdtemp(prefix="asynctop-vg-")
    wrapper = [valgrind, "-q", "--error-exitcode=99", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
               "--log-file=%s/vg.%%p.log" % logdir]
    env = dict(os.environ)
    env["ASYNCTOP_E2E_WRAPPER"] = " ".join(wrapper)
    rc = subprocess.call(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-x"] + sys.argv[1:], env=env, cwd=HERE)
    logs = sorted(glob.glob(os.path.join(logdir, "vg.*.log")))
    bad = [p for p in logs if os.path.getsize(p) > 0]  # -q: only errors are written
    for p in bad:
        print("==== memcheck errors in %s" % os.path.basename(p))
        with open(p) as f:
            print(f.read())
    print("%d asynctop processes ran under memcheck, %d with errors or definite leaks"
          % (len(logs), len(bad)))
    if not bad:
        shutil.rmtree(logdir, ignore_errors=True)
    if rc == 0 and not logs:
        print("no asynctop ran under valgrind: the wrapper was not used")
        return 1
    return rc or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
