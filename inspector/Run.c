/* Run.c: `asynctop run [--debug] [--keep] -- CMD ARGS...` — starts an unmodified libuv program
 * with the LD_PRELOAD shim (libasynctop-preload.so) and a known socket path, waits for its first
 * loop to open the socket, and attaches the TUI. */
#include "Run.h"

#include "Sanitise.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ASYNCTOP_PRELOAD_INSTALLED
#define ASYNCTOP_PRELOAD_INSTALLED "/usr/local/lib/x86_64-linux-gnu/libasynctop-preload.so"
#endif

#define RUN_WAIT_MS 10000 /* how long CMD may take to start its first libuv loop */

static void run_usage(FILE *f)
{
    fprintf(f, "usage: asynctop [OPTIONS] run [--debug] [--keep] [--] CMD [ARGS...]\n"
               "  starts CMD with the libuv shim (LD_PRELOAD=libasynctop-preload.so) and attaches\n"
               "  --debug  debug mode in CMD from the start (ASYNCTOP_DEBUG=1: creation stacks)\n"
               "  --keep   leave CMD running when the TUI quits (default: SIGTERM, then SIGKILL)\n"
               "  CMD's standard output and error go to a log file named at exit; its standard\n"
               "  input is /dev/null. ASYNCTOP_PRELOAD_SO overrides where the shim is found.\n");
}

/* The shim: $ASYNCTOP_PRELOAD_SO, else next to us in a build tree (build/inspector/asynctop ->
 * build/runtime/), else the installed one. */
static int find_shim(char *out, size_t len)
{
    const char *env = getenv("ASYNCTOP_PRELOAD_SO");
    if (env != NULL && *env) {
        snprintf(out, len, "%s", env);
        return access(out, R_OK) == 0 ? 0 : -ENOENT;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(out, len, "%s/../runtime/libasynctop-preload.so", self);
            if (access(out, R_OK) == 0) {
                char real[PATH_MAX];
                if (realpath(out, real) != NULL)
                    snprintf(out, len, "%s", real);
                return 0;
            }
        }
    }
    snprintf(out, len, "%s", ASYNCTOP_PRELOAD_INSTALLED);
    return access(out, R_OK) == 0 ? 0 : -ENOENT;
}

/* Prints the shim's own messages (static libuv, refused socket) from CMD's log. */
static void show_shim_lines(const char *log)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "asynctop", 8) == 0)
            Sanitise_printf(stderr, "%s", line); /* CMD's output: untrusted */
    fclose(f);
}

static void stop_child(pid_t pid)
{
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) { /* 5 s */
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int Run_main(int argc, char **argv, AppOptions *opt)
{
    bool debug = false, keep = false;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--debug"))
            debug = true;
        else if (!strcmp(argv[i], "--keep"))
            keep = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            run_usage(stdout);
            return EXIT_OK;
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "asynctop run: unknown option '%s'\n", argv[i]);
            run_usage(stderr);
            return EXIT_USAGE;
        } else
            break;
    }
    if (i >= argc) {
        run_usage(stderr);
        return EXIT_USAGE;
    }
    char shim[PATH_MAX];
    if (find_shim(shim, sizeof shim) != 0) {
        fprintf(stderr,
                "asynctop run: the shim %s is missing (build it, install it, or set "
                "ASYNCTOP_PRELOAD_SO)\n",
                shim);
        return EXIT_FAIL;
    }
    /* a private directory for the socket and CMD's output */
    const char *base = getenv("XDG_RUNTIME_DIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/asynctop-run-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        snprintf(dir, sizeof dir, "/tmp/asynctop-run-XXXXXX");
        if (mkdtemp(dir) == NULL) {
            fprintf(stderr, "asynctop run: cannot create a directory for the socket: %s\n",
                    strerror(errno));
            return EXIT_FAIL;
        }
    }
    char sock[PATH_MAX + 8], log[PATH_MAX + 16];
    snprintf(sock, sizeof sock, "%s/sock", dir);
    snprintf(log, sizeof log, "%s/output.log", dir);
    if (opt->path != NULL)
        snprintf(sock, sizeof sock, "%s", opt->path);

    pid_t pid = fork();
    if (pid < 0) {
        perror("asynctop run: fork");
        return EXIT_FAIL;
    }
    if (pid == 0) {
        const char *old = getenv("LD_PRELOAD");
        char pre[2 * PATH_MAX];
        snprintf(pre, sizeof pre, "%s%s%s", shim, old && *old ? ":" : "", old ? old : "");
        setenv("LD_PRELOAD", pre, 1);
        setenv("ASYNCTOP_SOCKET", sock, 1);
        setenv("ASYNCTOP_PRELOAD", "1", 1);
        if (debug)
            setenv("ASYNCTOP_DEBUG", "1", 1);
        int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in >= 0)
            dup2(in, 0);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        execvp(argv[i], argv + i);
        fprintf(stderr, "asynctop run: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }

    int rc = EXIT_NORUNTIME;
    bool attached = false;
    for (int waited = 0; waited < RUN_WAIT_MS; waited += 50) {
        struct stat st;
        int status;
        if (stat(sock, &st) == 0) {
            opt->path = sock;
            rc = App_run(opt);
            attached = true;
            break;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            show_shim_lines(log);
            fprintf(stderr,
                    "asynctop run: %s exited (%s %d) before a libuv loop ran; its output "
                    "is in %s\n",
                    argv[i], WIFEXITED(status) ? "status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), log);
            return EXIT_NORUNTIME;
        }
        usleep(50000);
    }
    if (!attached) {
        show_shim_lines(log);
        fprintf(stderr,
                "asynctop run: no libuv loop ran in %s within %d s: it may not use libuv, not "
                "have started its loop yet, or link libuv statically (then the shim cannot see "
                "it; see docs/preload.md)\n",
                argv[i], RUN_WAIT_MS / 1000);
    }
    if (keep && waitpid(pid, NULL, WNOHANG) == 0) {
        fprintf(stderr, "asynctop run: %s (pid %d) keeps running; socket %s, output %s\n", argv[i],
                (int)pid, sock, log);
        return rc;
    }
    stop_child(pid);
    if (strncmp(sock, dir, strlen(dir)) == 0)
        unlink(sock); /* ours: a killed CMD could not remove it */
    fprintf(stderr, "asynctop run: %s stopped; its output is in %s\n", argv[i], log);
    return rc;
}
