/* test-discovery.c: the inspector looks for sockets where the runtime puts them (the protocol's
 * path rule, at_wire_socket_dir), also when its real and effective uids differ. */
#include "Discovery.h"
#include "at_wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static void test_dir_and_path(void **state)
{
    char dir[256], path[256], want[256];
    unsetenv("ASYNCTOP_SOCKET");
    setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
    Discovery_dir(dir, sizeof dir);
    assert_string_equal(dir, "/run/user/1234/asynctop");
    Discovery_path(42, path, sizeof path);
    assert_string_equal(path, "/run/user/1234/asynctop/42.sock");

    setenv("XDG_RUNTIME_DIR", "relative/dir", 1); /* ignored, as the XDG spec says */
    Discovery_dir(dir, sizeof dir);
    snprintf(want, sizeof want, "/tmp/asynctop-%lu", (unsigned long)geteuid());
    assert_string_equal(dir, want);
    unsetenv("XDG_RUNTIME_DIR");
    Discovery_path(7, path, sizeof path);
    snprintf(want, sizeof want, "/tmp/asynctop-%lu/7.sock", (unsigned long)geteuid());
    assert_string_equal(path, want);
    at_wire_socket_path(dir, sizeof dir, 7);
    assert_string_equal(dir, want);

    setenv("ASYNCTOP_SOCKET", "/somewhere/x.sock", 1); /* the override applies to any pid */
    Discovery_path(7, path, sizeof path);
    assert_string_equal(path, "/somewhere/x.sock");
    unsetenv("ASYNCTOP_SOCKET");
}

/* A process whose effective uid differs from its real uid creates its directory as the
 * effective uid and accepts clients of that effective uid (SO_PEERCRED): the inspector must look
 * in /tmp/asynctop-<euid>, as the runtime does. Needs root to switch the effective uid. */
static void test_effective_uid(void **state)
{
    if (getuid() != 0) {
        skip();
        return;
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char dir[256];
        unsetenv("XDG_RUNTIME_DIR");
        if (setresuid(0, 65534, 0) != 0)
            _exit(2);
        Discovery_dir(dir, sizeof dir);
        _exit(strcmp(dir, "/tmp/asynctop-65534") == 0 ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dir_and_path),
        cmocka_unit_test(test_effective_uid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
