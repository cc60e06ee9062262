/* main.c: the asynctop command line: options, subcommands, --demo, the TUI. */
#include "App.h"
#include "Run.h"
#include "Subcommand.h"
#include "Demo.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ASYNCTOP_VERSION
#define ASYNCTOP_VERSION "0.0.0"
#endif

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: asynctop [OPTIONS] [PID]          attach the TUI (no PID: pick a process)\n"
        "       asynctop [OPTIONS] -s PATH        attach to the socket at PATH\n"
        "       asynctop ls                        list attachable processes\n"
        "       asynctop ps PID [--sort COL] [-r] [--filter TEXT] [--loop N]\n"
        "       asynctop pstree PID [--ascii] [--loop N]\n"
        "       asynctop dump PID --json [--loop N]\n"
        "       asynctop set PID slow=DURATION | debug=on|off\n"
        "       asynctop --demo                    run the demo program and attach to it\n"
        "       asynctop run [--debug] [--keep] -- CMD [ARGS...]\n"
        "                                          run a libuv program under the shim, attach\n"
        "\n"
        "options:\n"
        "  -s, --socket PATH  the target's socket (default: $XDG_RUNTIME_DIR/asynctop/PID.sock,\n"
        "                     else /tmp/asynctop-UID/PID.sock; ASYNCTOP_SOCKET overrides)\n"
        "  -d, --delay MS     update interval asked of the process, 100 to 60000 (default 1000)\n"
        "  -l, --loop N       watch event loop N of the process first (0 = main, the default;\n"
        "                     ids as in the TUI's loop list, L, or `asynctop dump PID --json`)\n"
        "      --ascii        no line-drawing or block characters\n"
        "      --no-color     no colours (also when NO_COLOR is set)\n"
        "  -h, --help         this help;  -V, --version  the version\n"
        "\n"
        "DURATION: 50ms, 0.2s, 250 (ms), 1.5s, 500us.  Keys: press ? in the TUI.\n"
        "exit codes: 0 ok, 1 failure, 2 usage, 3 no such process, 4 not running the asynctop\n"
        "runtime, 5 permission refused, 6 protocol version/error, 7 no answer, 8 request refused.\n"
        "asynctop run exits with CMD's status (128+N for signal N, 0 if the SIGTERM sent on\n"
        "quitting ended it). See asynctop(1).\n");
}

int main(int argc, char **argv)
{
    /* A write to a connection the process closed (it exited, or refused us) is an error to
     * report, not a reason to die. */
    signal(SIGPIPE, SIG_IGN);
    setlocale(LC_ALL, "");
    setlocale(LC_NUMERIC, "C"); /* "1.5s" everywhere */
    AppOptions opt;
    memset(&opt, 0, sizeof opt);
    bool demo = false;
    const char *target = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("asynctop %s (wire protocol %d)\n", ASYNCTOP_VERSION, AT_WIRE_VERSION);
            return 0;
        } else if (!strcmp(a, "--ascii")) {
            opt.ascii = true;
        } else if (!strcmp(a, "--no-color") || !strcmp(a, "--no-colour")) {
            opt.no_color = true;
        } else if (!strcmp(a, "--demo")) {
            demo = true;
        } else if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && i + 1 < argc) {
            opt.path = argv[++i];
        } else if ((!strcmp(a, "-l") || !strcmp(a, "--loop")) && i + 1 < argc) {
            char *end;
            errno = 0;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v > UINT32_MAX) {
                fprintf(stderr, "asynctop: --loop %s: a loop id (0 = main)\n", argv[i]);
                return EXIT_USAGE;
            }
            opt.loop = (uint32_t)v;
        } else if ((!strcmp(a, "-d") || !strcmp(a, "--delay")) && i + 1 < argc) {
            char *end;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v < 100 || v > 60000) {
                fprintf(stderr,
                        "asynctop: --delay %s: the update interval in milliseconds, a whole "
                        "number from 100 to 60000\n",
                        argv[i]);
                return EXIT_USAGE;
            }
            opt.interval_ms = (uint32_t)v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "asynctop: unknown option '%s'\n", a);
            usage(stderr);
            return EXIT_USAGE;
        } else {
            break;
        }
    }
    if (i < argc && !strcmp(argv[i], "run"))
        return Run_main(argc - i, argv + i, &opt);
    if (i < argc) {
        int rc = Subcommand_run(argc - i, argv + i, opt.path, opt.loop);
        if (rc >= 0)
            return rc;
        target = argv[i];
        if (i + 1 < argc) {
            fprintf(stderr, "asynctop: unexpected argument '%s'\n", argv[i + 1]);
            return EXIT_USAGE;
        }
        char *end;
        errno = 0;
        unsigned long long pid = strtoull(target, &end, 10);
        if (errno || *end || pid == 0) {
            fprintf(stderr,
                    "asynctop: '%s' is neither a process id nor a command (ls, ps, pstree, dump, "
                    "set)\n",
                    target);
            return EXIT_USAGE;
        }
        opt.pid = pid;
    }
    if (demo)
        return Demo_run(&opt);
    return App_run(&opt);
}
