/* Run.c: `asynctop run [--debug] [--keep] -- CMD ARGS...` — starts an unmodified libuv program
 * with the LD_PRELOAD shim (libasynctop-preload.so) and a known socket path, waits for its first
 * loop to open the socket, attaches the TUI, and reports how CMD ended. */
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
#define RUN_STOP_MS 5000  /* how long CMD has to end after SIGTERM before SIGKILL */

/* The start of the line the shim writes to CMD's standard error (the log) when libuv is
 * linked statically into CMD (runtime/preload/preload.c, init_once): nothing can be seen. */
#define SHIM_STATIC_LINE "asynctop-preload: libuv is linked statically"

static void run_usage(FILE *f)
{
    fprintf(f, "usage: asynctop [OPTIONS] run [--debug] [--keep] [--] CMD [ARGS...]\n"
               "  starts CMD with the libuv shim (LD_PRELOAD=libasynctop-preload.so) and attaches\n"
               "  --debug  debug mode in CMD from the start (ASYNCTOP_DEBUG=1: creation stacks)\n"
               "  --keep   leave CMD running when the TUI quits (default: SIGTERM, then SIGKILL)\n"
               "  CMD's standard output and error go to a log file named at exit; its standard\n"
               "  input is /dev/null. ASYNCTOP_PRELOAD_SO overrides where the shim is found.\n"
               "  Says how CMD ended and exits with CMD's status (128+N if signal N killed it;\n"
               "  0 if the SIGTERM sent on quitting did); 4 if no libuv loop could be watched.\n");
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

/* Whether CMD's log (fd) holds a line starting with SHIM_STATIC_LINE. Reads only what was
 * added since the last call (from *scanned, which advances; at most 64 KiB a call), re-reading
 * the few bytes before it so that a line split between two calls is still found. The log is
 * CMD's output: only the exact line start is trusted, and only to stop waiting early. */
static bool log_says_static(int fd, off_t *scanned)
{
    static char buf[65536];
    const size_t len = sizeof SHIM_STATIC_LINE - 1;
    off_t from = *scanned > (off_t)len ? *scanned - (off_t)len : 0;
    ssize_t n = pread(fd, buf, sizeof buf, from);
    if (n <= 0)
        return false;
    *scanned = from + n;
    for (const char *p = buf, *end = buf + n;
         (p = memmem(p, (size_t)(end - p), SHIM_STATIC_LINE, len)) != NULL; p++)
        if ((p == buf && from == 0) || (p > buf && p[-1] == '\n'))
            return true;
    return false;
}

/* How a process ended (a waitpid status), for "CMD <this>". */
static void describe_end(int status, char *out, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
        return;
    }
    int sig = WTERMSIG(status);
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev != NULL)
        snprintf(out, len, "was killed by signal SIG%s%s", abbrev,
                 WCOREDUMP(status) ? " (core dumped)" : "");
    else
        snprintf(out, len, "was killed by signal %d%s", sig,
                 WCOREDUMP(status) ? " (core dumped)" : "");
}

/* The exit status that mirrors a process's end: its exit status, or 128+N for signal N (as
 * a shell reports it). */
static int mirror_end(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Stops CMD: SIGTERM, then SIGKILL after RUN_STOP_MS. Returns its waitpid status; *killed
 * tells whether SIGKILL was needed. */
static int stop_child(pid_t pid, bool *killed)
{
    int status = 0;
    *killed = false;
    kill(pid, SIGTERM);
    for (int waited = 0; waited < RUN_STOP_MS; waited += 50) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    *killed = true;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* After the TUI (or the wait for a loop) ended with `rc`: reaps or stops CMD (unless --keep
 * leaves it running), says how it ended, and returns asynctop run's exit status — rc when it
 * is a failure of asynctop's own, else CMD's mirrored end. CMD stopped by the SIGTERM sent
 * here counts as a normal end when it dies of that signal (0); it still mirrors an exit status
 * it chose itself on SIGTERM, and 128+9 when SIGKILL was needed. */
static int finish_child(pid_t pid, const char *cmd, const char *log, const char *sock, bool keep,
                        int rc)
{
    char end[96];
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) { /* it ended on its own */
        describe_end(status, end, sizeof end);
        fprintf(stderr, "asynctop run: %s %s; its output is in %s\n", cmd, end, log);
        return rc != EXIT_OK ? rc : mirror_end(status);
    }
    if (keep) {
        fprintf(stderr, "asynctop run: %s (pid %d) keeps running; socket %s, output %s\n", cmd,
                (int)pid, sock, log);
        return rc;
    }
    bool killed;
    status = stop_child(pid, &killed);
    describe_end(status, end, sizeof end);
    if (killed)
        fprintf(stderr,
                "asynctop run: %s did not end within %d s of SIGTERM and %s; its output is in "
                "%s\n",
                cmd, RUN_STOP_MS / 1000, end, log);
    else
        fprintf(stderr, "asynctop run: stopped %s with SIGTERM: it %s; its output is in %s\n", cmd,
                end, log);
    if (rc != EXIT_OK)
        return rc;
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM ? EXIT_OK : mirror_end(status);
}

/* What `run` was asked for, and where CMD's socket and output go. */
typedef struct RunCmd {
    bool debug, keep;
    char **argv; /* CMD ARGS..., NULL-terminated */
    char shim[PATH_MAX];
    char dir[PATH_MAX]; /* private: the socket and the log */
    char sock[PATH_MAX + 8], log[PATH_MAX + 16];
} RunCmd;

/* Parses the options before CMD into r. Returns -1 to go on, else the exit status (help,
 * usage). */
static int parse_args(int argc, char **argv, RunCmd *r)
{
    int i = 1;
    for (; i < argc; i++)
        if (!strcmp(argv[i], "--debug"))
            r->debug = true;
        else if (!strcmp(argv[i], "--keep"))
            r->keep = true;
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
    if (i >= argc) {
        run_usage(stderr);
        return EXIT_USAGE;
    }
    r->argv = argv + i;
    return -1;
}

/* A private directory for the socket (path, unless the user gave one) and CMD's output, in
 * $XDG_RUNTIME_DIR, else /tmp. Returns 0 or EXIT_FAIL with a message on stderr. */
static int make_dir(RunCmd *r, const char *path)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    snprintf(r->dir, sizeof r->dir, "%s/asynctop-run-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(r->dir) == NULL) {
        snprintf(r->dir, sizeof r->dir, "/tmp/asynctop-run-XXXXXX");
        if (mkdtemp(r->dir) == NULL) {
            fprintf(stderr, "asynctop run: cannot create a directory for the socket: %s\n",
                    strerror(errno));
            return EXIT_FAIL;
        }
    }
    snprintf(r->sock, sizeof r->sock, "%s/sock", r->dir);
    snprintf(r->log, sizeof r->log, "%s/output.log", r->dir);
    if (path != NULL)
        snprintf(r->sock, sizeof r->sock, "%s", path);
    return 0;
}

/* Forks CMD with the shim preloaded, the socket path set, stdin /dev/null and its output in the
 * log. Returns its pid, or -1 (errno) when fork failed. */
static pid_t spawn(const RunCmd *r)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    const char *old = getenv("LD_PRELOAD");
    char pre[2 * PATH_MAX];
    snprintf(pre, sizeof pre, "%s%s%s", r->shim, old && *old ? ":" : "", old ? old : "");
    setenv("LD_PRELOAD", pre, 1);
    setenv("ASYNCTOP_SOCKET", r->sock, 1);
    setenv("ASYNCTOP_PRELOAD", "1", 1);
    if (r->debug)
        setenv("ASYNCTOP_DEBUG", "1", 1);
    int in = open("/dev/null", O_RDONLY), out = open(r->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in >= 0)
        dup2(in, 0);
    if (out >= 0) {
        dup2(out, 1);
        dup2(out, 2);
    }
    execvp(r->argv[0], r->argv);
    fprintf(stderr, "asynctop run: cannot run %s: %s\n", r->argv[0], strerror(errno));
    _exit(127);
}

/* How the wait for CMD's first loop ended. */
typedef enum RunWait {
    WAIT_ATTACHED, /* the socket came: the TUI ran */
    WAIT_ENDED,    /* CMD ended first (said on stderr) */
    WAIT_STATIC,   /* the shim says libuv is linked statically: no socket will come */
    WAIT_TIMEOUT,  /* no socket within RUN_WAIT_MS */
} RunWait;

/* Waits for CMD's socket, then runs the TUI on it (*rc: its result). */
static RunWait wait_and_attach(const RunCmd *r, pid_t pid, int logfd, AppOptions *opt, int *rc)
{
    off_t scanned = 0;
    for (int waited = 0; waited < RUN_WAIT_MS; waited += 50) {
        struct stat st;
        int status;
        if (stat(r->sock, &st) == 0) {
            opt->path = r->sock;
            *rc = App_run(opt);
            return WAIT_ATTACHED;
        }
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char end[96];
            show_shim_lines(r->log);
            describe_end(status, end, sizeof end);
            fprintf(stderr, "asynctop run: %s %s before a libuv loop ran; its output is in %s\n",
                    r->argv[0], end, r->log);
            return WAIT_ENDED;
        }
        if (log_says_static(logfd, &scanned))
            return WAIT_STATIC;
        usleep(50000);
    }
    return WAIT_TIMEOUT;
}

int Run_main(int argc, char **argv, AppOptions *opt)
{
    RunCmd r;
    memset(&r, 0, sizeof r);
    int rc = parse_args(argc, argv, &r);
    if (rc >= 0)
        return rc;
    if (find_shim(r.shim, sizeof r.shim) != 0) {
        fprintf(stderr,
                "asynctop run: the shim %s is missing (build it, install it, or set "
                "ASYNCTOP_PRELOAD_SO)\n",
                r.shim);
        return EXIT_FAIL;
    }
    if (make_dir(&r, opt->path) != 0)
        return EXIT_FAIL;
    /* the log exists before CMD starts, so that it can be read from the first poll on */
    int logfd = open(r.log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        fprintf(stderr, "asynctop run: cannot create %s: %s\n", r.log, strerror(errno));
        return EXIT_FAIL;
    }
    pid_t pid = spawn(&r);
    if (pid < 0) {
        perror("asynctop run: fork");
        close(logfd);
        return EXIT_FAIL;
    }
    rc = EXIT_NORUNTIME;
    RunWait how = wait_and_attach(&r, pid, logfd, opt, &rc);
    close(logfd);
    if (how == WAIT_ENDED)
        return EXIT_NORUNTIME;
    if (how == WAIT_STATIC) {
        show_shim_lines(r.log);
        fprintf(stderr,
                "asynctop run: %s has libuv linked statically: the shim cannot see its loops "
                "(see docs/preload.md)\n",
                r.argv[0]);
    } else if (how == WAIT_TIMEOUT) {
        show_shim_lines(r.log);
        fprintf(stderr,
                "asynctop run: no libuv loop ran in %s within %d s: it may not use libuv, not "
                "have started its loop yet, or link libuv statically with its symbols hidden "
                "(then the shim cannot see it; see docs/preload.md)\n",
                r.argv[0], RUN_WAIT_MS / 1000);
    }
    rc = finish_child(pid, r.argv[0], r.log, r.sock, r.keep, rc);
    if (strncmp(r.sock, r.dir, strlen(r.dir)) == 0 && (!r.keep || waitpid(pid, NULL, WNOHANG) != 0))
        unlink(r.sock); /* ours, and CMD is gone: a killed CMD could not remove it */
    return rc;
}
