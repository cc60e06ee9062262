/* Run.h: `asynctop run`, which starts an unmodified libuv program under the preload shim and
 * attaches the TUI to it. */
#ifndef ASYNCTOP_RUN_H
#define ASYNCTOP_RUN_H

#include "App.h"

/* Runs `run [--debug] [--keep] [--] CMD ARGS...` (argv[0] is "run"): starts CMD with
 * LD_PRELOAD set to the shim and ASYNCTOP_SOCKET to a private path (opt->path when given),
 * waits up to 10 s for the socket (not at all once the shim wrote in CMD's output that libuv
 * is linked statically, nor once CMD ended), runs the TUI with opt, then stops CMD (SIGTERM,
 * SIGKILL after 5 s) unless --keep, and says on stderr how CMD ended ("exited with status N",
 * "was killed by signal SIGx"). Returns an EXIT_* code for a failure of its own (usage, shim
 * missing, no loop to watch: EXIT_NORUNTIME, or the TUI's failure); otherwise CMD's end
 * mirrored: its exit status, 128+N for signal N, except EXIT_OK when CMD died of the SIGTERM
 * sent to stop it. Main thread only. */
int Run_main(int argc, char **argv, AppOptions *opt);

#endif
