/* Demo.h: `asynctop --demo`: run the demo program in the background and attach to it. */
#ifndef ASYNCTOP_DEMO_H
#define ASYNCTOP_DEMO_H

#include <stddef.h>

#include "App.h"

/* Finds the asynctop-demo program: next to the running asynctop (an installed bindir),
 * in ../examples (a build tree), in ../libexec/asynctop, or at the path configured at
 * build time (ASYNCTOP_DEMO_INSTALLED). Writes the first executable one into out and
 * returns 0; otherwise writes the list of places tried (", "-separated) into out and
 * returns -1. Any thread. */
int Demo_find(char *out, size_t len);

/* Runs the demo: refuses without a terminal on stdin and stdout (returns EXIT_FAIL with a
 * message), finds the program (Demo_find), starts it in its own process group with its
 * output in a log file (it gets SIGTERM if asynctop dies), waits up to 10 s for its socket,
 * runs the TUI attached to it (App_run with opt->pid set), then stops it: SIGTERM, then
 * SIGKILL if it has not exited 5 s later. Returns App_run's exit code, or EXIT_FAIL when
 * the demo could not be started or attached. Main thread; uses fork, waitpid. */
int Demo_run(AppOptions *opt);

#endif
