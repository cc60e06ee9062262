/* Subcommand.h: the commands that need no terminal: ls, ps, pstree, dump, set. */
#ifndef ASYNCTOP_SUBCOMMAND_H
#define ASYNCTOP_SUBCOMMAND_H

#include <stdint.h>

/* Runs subcommand argv[0] with its arguments; returns an EXIT_* code
 * (App.h). Errors go to stderr, results to stdout. -1 when argv[0] is not
 * a subcommand. loop: the loop ps/pstree/dump report (--loop before the
 * subcommand; its own --loop overrides). */
int Subcommand_run(int argc, char **argv, const char *socket_path, uint32_t loop);

#endif
