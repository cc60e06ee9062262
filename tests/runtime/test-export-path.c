/* test-export-path.c: the exporter's socket path resolution, directory checks (symlink,
 * group-writable, other owner, wrong mode), stale socket cleanup and safe bind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "export_path.h"

static char g_tmp[64];

static int setup(void **state)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/at-export-path-XXXXXX");
    assert_non_null(mkdtemp(g_tmp));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void test_resolve(void **state)
{
    at_export_path_t p;
    char err[256];
    unsetenv("ASYNCTOP_SOCKET");
    setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
    assert_int_equal(at__export_path_resolve(&p, NULL, 42, err, sizeof err), 0);
    assert_string_equal(p.path, "/run/user/1234/asynctop/42.sock");
    assert_string_equal(p.dir, "/run/user/1234/asynctop");

    unsetenv("XDG_RUNTIME_DIR");
    char want[64];
    snprintf(want, sizeof want, "/tmp/asynctop-%lu/7.sock", (unsigned long)geteuid());
    assert_int_equal(at__export_path_resolve(&p, NULL, 7, err, sizeof err), 0);
    assert_string_equal(p.path, want);

    /* a relative XDG_RUNTIME_DIR is ignored, as the XDG spec says */
    setenv("XDG_RUNTIME_DIR", "relative/dir", 1);
    assert_int_equal(at__export_path_resolve(&p, NULL, 7, err, sizeof err), 0);
    assert_string_equal(p.path, want);
    unsetenv("XDG_RUNTIME_DIR");

    setenv("ASYNCTOP_SOCKET", "off", 1);
    assert_int_equal(at__export_path_resolve(&p, NULL, 7, err, sizeof err), 1);
    setenv("ASYNCTOP_SOCKET", "/some/where.sock", 1);
    assert_int_equal(at__export_path_resolve(&p, NULL, 7, err, sizeof err), 0);
    assert_string_equal(p.path, "/some/where.sock");
    assert_string_equal(p.dir, ""); /* the user's directory: not created, not scanned */
    setenv("ASYNCTOP_SOCKET", "where.sock", 1);
    assert_int_equal(at__export_path_resolve(&p, NULL, 7, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "absolute"));
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    setenv("ASYNCTOP_SOCKET", longp, 1);
    assert_int_equal(at__export_path_resolve(&p, NULL, 7, err, sizeof err), -ENAMETOOLONG);
    /* a configured path wins over the environment */
    assert_int_equal(at__export_path_resolve(&p, "/cfg.sock", 7, err, sizeof err), 0);
    assert_string_equal(p.path, "/cfg.sock");
    unsetenv("ASYNCTOP_SOCKET");
}

static void test_dir_created_0700(void **state)
{
    char dir[128], err[256];
    snprintf(dir, sizeof dir, "%s/new", g_tmp);
    mode_t old = umask(0);
    assert_int_equal(at__export_dir_prepare(dir, geteuid(), err, sizeof err), 0);
    umask(old);
    struct stat st;
    assert_int_equal(lstat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    /* idempotent */
    assert_int_equal(at__export_dir_prepare(dir, geteuid(), err, sizeof err), 0);
}

static void test_dir_symlink_refused(void **state)
{
    char dir[128], target[128], err[256];
    snprintf(target, sizeof target, "%s/target", g_tmp);
    snprintf(dir, sizeof dir, "%s/link", g_tmp);
    assert_int_equal(mkdir(target, 0700), 0);
    assert_int_equal(symlink(target, dir), 0);
    assert_int_equal(at__export_dir_prepare(dir, geteuid(), err, sizeof err), -ELOOP);
    assert_non_null(strstr(err, "symlink"));
}

static void test_dir_modes_refused(void **state)
{
    char dir[128], err[256];
    snprintf(dir, sizeof dir, "%s/gw", g_tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0770), 0); /* group-writable */
    assert_int_equal(at__export_dir_prepare(dir, geteuid(), err, sizeof err), -EACCES);
    assert_non_null(strstr(err, "0770"));
    assert_int_equal(chmod(dir, 0755), 0); /* readable by others */
    assert_int_equal(at__export_dir_prepare(dir, geteuid(), err, sizeof err), -EACCES);
    assert_non_null(strstr(err, "0755"));
    assert_int_equal(chmod(dir, 0701), 0); /* searchable by others */
    assert_int_equal(at__export_dir_prepare(dir, geteuid(), err, sizeof err), -EACCES);
    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(at__export_dir_prepare(dir, geteuid(), err, sizeof err), 0);
}

static void test_dir_not_a_dir(void **state)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/file", g_tmp);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(at__export_dir_prepare(path, geteuid(), err, sizeof err), -ENOTDIR);
}

static void test_dir_other_owner(void **state)
{
    char dir[128], err[256];
    snprintf(dir, sizeof dir, "%s/other", g_tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    if (geteuid() == 0) {
        /* root can give it away: then it is someone else's directory */
        assert_int_equal(chown(dir, 65534, 65534), 0);
        assert_int_equal(at__export_dir_prepare(dir, 0, err, sizeof err), -EACCES);
    } else {
        /* not root: check against a uid that is not ours */
        assert_int_equal(at__export_dir_prepare(dir, geteuid() + 1, err, sizeof err), -EACCES);
    }
    assert_non_null(strstr(err, "owned by uid"));
}

/* Creates a socket file at path that nobody listens on (bound, then closed). */
static void make_stale_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
}

static pid_t dead_pid(void)
{
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        _exit(0);
    int st;
    assert_int_equal(waitpid(p, &st, 0), p);
    return p;
}

static void test_clean_stale(void **state)
{
    char dir[128], path[192], err[256];
    snprintf(dir, sizeof dir, "%s/d", g_tmp);
    assert_int_equal(at__export_dir_prepare(dir, geteuid(), err, sizeof err), 0);
    pid_t dead = dead_pid();
    char stale[192], alive[192], notsock[192], other[192];
    snprintf(stale, sizeof stale, "%s/%ld.sock", dir, (long)dead);
    snprintf(alive, sizeof alive, "%s/%ld.sock", dir, (long)getppid());
    snprintf(notsock, sizeof notsock, "%s/%ld.sock", dir, (long)dead_pid());
    snprintf(other, sizeof other, "%s/notes.txt", dir);
    make_stale_socket(stale);
    make_stale_socket(alive);
    int fd = open(notsock, O_CREAT | O_WRONLY, 0600);
    close(fd);
    fd = open(other, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_equal(at__export_dir_clean_stale(dir, getpid()), 1);
    struct stat st;
    assert_int_equal(lstat(stale, &st), -1);  /* dead pid's socket: removed */
    assert_int_equal(lstat(alive, &st), 0);   /* a living process's: kept */
    assert_int_equal(lstat(notsock, &st), 0); /* not a socket: never touched */
    assert_int_equal(lstat(other, &st), 0);
    (void)path;
}

static void test_listen(void **state)
{
    char path[192], err[256];
    at_export_sockid_t id, id2;
    snprintf(path, sizeof path, "%s/s.sock", g_tmp);
    /* a stale socket at the path is replaced */
    make_stale_socket(path);
    mode_t old = umask(0); /* even with no umask at all, the socket is 0600 */
    int fd = at__export_listen(path, 16, &id, err, sizeof err);
    umask(old);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_ino, id.ino);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    /* a live socket is not stolen */
    assert_int_equal(at__export_listen(path, 16, &id2, err, sizeof err), -EADDRINUSE);
    assert_non_null(strstr(err, "in use"));

    /* a successor's socket is not removed by us */
    close(fd);
    unlink(path);
    int fd2 = at__export_listen(path, 16, &id2, err, sizeof err);
    assert_true(fd2 >= 0);
    at__export_unlink_if_ours(path, &id);
    assert_int_equal(lstat(path, &st), 0);
    at__export_unlink_if_ours(path, &id2);
    assert_int_equal(lstat(path, &st), -1);
    close(fd2);

    /* a regular file is never replaced */
    int f = open(path, O_CREAT | O_WRONLY, 0600);
    close(f);
    assert_int_equal(at__export_listen(path, 16, &id2, err, sizeof err), -EEXIST);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
}

/* listen(2) as the code under test calls it, noting whether the socket's final path existed
 * already (a client could then have found it and been refused). */
static const char *g_listen_path;
static int g_listen_saw_path = -1;

int listen(int fd, int backlog)
{
    if (g_listen_path != NULL)
        g_listen_saw_path = access(g_listen_path, F_OK) == 0;
    return (int)syscall(SYS_listen, fd, backlog);
}

/* Issue 14 (test-demo's "nobody answers ... stale socket" flake): the path must not exist
 * before the socket listens, and nothing else is left in the directory. */
static void test_listen_path_appears_listening(void **state)
{
    (void)state;
    char path[192], err[256];
    at_export_sockid_t id;
    snprintf(path, sizeof path, "%s/s.sock", g_tmp);
    g_listen_path = path;
    g_listen_saw_path = -1;
    int fd = at__export_listen(path, 16, &id, err, sizeof err);
    g_listen_path = NULL;
    assert_true(fd >= 0);
    assert_int_equal(g_listen_saw_path, 0); /* listen() ran before the path appeared */
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_ino, id.ino);
    /* a client connects at once */
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof sa), 0);
    close(c);
    DIR *d = opendir(g_tmp);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, 1); /* the socket only: no temporary name left */
    close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test_setup_teardown(test_dir_created_0700, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_symlink_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_modes_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_not_a_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_other_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_path_appears_listening, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
