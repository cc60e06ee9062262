/* Demo.c: `asynctop --demo`: find asynctop-demo, run it in the background with its output in a
 * log file, attach the TUI to it, and stop it when the TUI exits, whatever way that happens. */
#include "Demo.h"

#include "Discovery.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEMO_NAME "asynctop-demo"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int Demo_find(char *out, size_t len)
{
    char self[PATH_MAX];
    char tried[4][PATH_MAX + 64];
    size_t n = 0;
    ssize_t r = readlink("/proc/self/exe", self, sizeof self - 1);
    if (r > 0) {
        self[r] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(tried[n++], sizeof tried[0], "%s/" DEMO_NAME, self);
            snprintf(tried[n++], sizeof tried[0], "%s/../examples/" DEMO_NAME, self);
            snprintf(tried[n++], sizeof tried[0], "%s/../libexec/asynctop/" DEMO_NAME, self);
        }
    }
#ifdef ASYNCTOP_DEMO_INSTALLED
    snprintf(tried[n++], sizeof tried[0], "%s", ASYNCTOP_DEMO_INSTALLED);
#endif
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(tried[i], &st) == 0 && S_ISREG(st.st_mode) && access(tried[i], X_OK) == 0) {
            char *real = realpath(tried[i], NULL);
            snprintf(out, len, "%s", real ? real : tried[i]);
            free(real);
            return 0;
        }
    }
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", tried[i]);
    return -1;
}

/* Opens a new log file for the demo's output; its path goes into path. */
static int open_log(char *path, size_t len)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || dir[0] != '/')
        dir = "/tmp";
    snprintf(path, len, "%s/" DEMO_NAME "-XXXXXX.log", dir);
    int fd = mkostemps(path, 4, O_CLOEXEC);
    if (fd < 0) {
        snprintf(path, len, "/dev/null");
        fd = open(path, O_WRONLY | O_CLOEXEC);
    }
    return fd;
}

/* The child: its own process group (the terminal's Ctrl-C goes to asynctop, which then
 * stops it), SIGTERM if asynctop dies first, output into the log. Never returns. */
static void exec_demo(const char *demo, int log_fd, pid_t parent)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1); /* asynctop is already gone */
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0)
        dup2(null_fd, STDIN_FILENO);
    if (log_fd >= 0) {
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
    }
    execl(demo, demo, (char *)NULL);
    fprintf(stderr, "asynctop: cannot run %s: %s\n", demo, strerror(errno));
    _exit(127);
}

/* Stops the demo: SIGTERM (it shuts down cleanly), SIGKILL after 5 s. Returns its status. */
static int stop_demo(pid_t pid)
{
    int status = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD))
            return status;
        sleep_ms(50);
    }
    fprintf(stderr, "asynctop: the demo did not stop within 5 s of SIGTERM; killing it\n");
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

int Demo_run(AppOptions *opt)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "asynctop --demo: needs a terminal (standard input and output are not "
                        "one). Without a terminal, run " DEMO_NAME
                        " and inspect it with `asynctop ps PID` or `asynctop dump PID --json`.\n");
        return EXIT_FAIL;
    }
    char demo[PATH_MAX * 4 + 256];
    if (Demo_find(demo, sizeof demo) != 0) {
        fprintf(stderr,
                "asynctop --demo: the demo program " DEMO_NAME " was not found (looked for %s); "
                "build it with `make build` (it is build/examples/" DEMO_NAME
                ") or install it with `meson install`\n",
                demo);
        return EXIT_FAIL;
    }
    /* the demo's socket is found by its pid: a fixed ASYNCTOP_SOCKET (or "off") would
     * point both sides elsewhere */
    unsetenv("ASYNCTOP_SOCKET");
    char log[PATH_MAX];
    int log_fd = open_log(log, sizeof log);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "asynctop --demo: fork: %s\n", strerror(errno));
        if (log_fd >= 0)
            close(log_fd);
        return EXIT_FAIL;
    }
    if (pid == 0)
        exec_demo(demo, log_fd, parent);
    if (log_fd >= 0)
        close(log_fd);

    char path[256];
    Discovery_path((uint64_t)pid, path, sizeof path);
    int rc = EXIT_FAIL;
    bool started = false;
    for (int i = 0; i < 200; i++) { /* up to 10 s for its socket to appear */
        struct stat st;
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            started = true;
            break;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr,
                    "asynctop --demo: %s exited before it could be attached (%s %d); "
                    "its output is in %s\n",
                    demo, WIFEXITED(status) ? "status" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), log);
            return EXIT_FAIL;
        }
        sleep_ms(50);
    }
    if (started) {
        opt->pid = (uint64_t)pid;
        opt->path = NULL;
        rc = App_run(opt);
    } else {
        fprintf(stderr, "asynctop --demo: %s did not open its socket %s within 10 s\n", demo, path);
    }
    stop_demo(pid);
    fprintf(stderr, "asynctop: the demo (pid %d) is stopped; its output is in %s\n", (int)pid, log);
    return rc;
}
