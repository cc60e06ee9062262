/* Run.h: `asynctop run`, which starts an unmodified libuv program under the preload shim and
 * attaches the TUI to it. */
#ifndef ASYNCTOP_RUN_H
#define ASYNCTOP_RUN_H

#include "App.h"

/* Runs `run [--debug] [--keep] [--] CMD ARGS...` (argv[0] is "run"): starts CMD with
 * LD_PRELOAD set to the shim and ASYNCTOP_SOCKET to a private path (opt->path when given),
 * waits up to 10 s for the socket, runs the TUI with opt, then stops CMD (SIGTERM, SIGKILL
 * after 5 s) unless --keep. Returns an EXIT_* code. Main thread only. */
int Run_main(int argc, char **argv, AppOptions *opt);

#endif
