/* fuzz_env.c: fuzz target for the runtime's parsers of environment variables — ASYNCTOP_SLOW_MS
 * (at__parse_ms), ASYNCTOP_DEBUG (at__parse_bool), ASYNCTOP_MAX_CLIENTS (at__export_parse_uint),
 * ASYNCTOP_SOCKET and XDG_RUNTIME_DIR (at__export_path_resolve) — each checked against an
 * independent statement of what it must accept. The first byte picks the parser, the rest is
 * the value (cut at the first NUL, as the environment would). */
#include "export_path.h"
#include "loopmon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const char *value)
{
    fprintf(stderr, "fuzz-env: %s (value '%s')\n", what, value);
    abort();
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n > 0;
}

static void check_ms(const char *s)
{
    uint64_t ns = 12345;
    int rc = at__parse_ms(s, &ns);
    const char *dot = strchr(s, '.');
    size_t ilen = dot ? (size_t)(dot - s) : strlen(s);
    size_t flen = dot ? strlen(dot + 1) : 0;
    int syntax =
        all_digits(s, ilen) && (!dot || (flen >= 1 && flen <= 6 && all_digits(dot + 1, flen)));
    if (rc == 0) {
        if (!syntax)
            die("at__parse_ms accepted bad syntax", s);
        if (ns > 86400000ull * 1000000ull)
            die("at__parse_ms accepted more than a day", s);
        if (ns / 1000000u != strtoull(s, NULL, 10))
            die("at__parse_ms got the whole milliseconds wrong", s);
    } else {
        if (rc != -EINVAL && rc != -ERANGE)
            die("at__parse_ms returned an unexpected code", s);
        if (ns != 12345)
            die("at__parse_ms wrote its output on error", s);
        if (syntax && rc == -EINVAL)
            die("at__parse_ms refused good syntax as bad syntax", s);
    }
}

static void check_bool(const char *s)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off", ""};
    int want = -1;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (strcasecmp(s, yes[i]) == 0)
            want = 1;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (strcasecmp(s, no[i]) == 0)
            want = 0;
    bool b = false;
    int rc = at__parse_bool(s, &b);
    if ((rc == 0) != (want >= 0) || (rc == 0 && (int)b != want))
        die("at__parse_bool disagrees with the documented words", s);
}

static void check_uint(const char *s)
{
    unsigned v = 777;
    int rc = at__export_parse_uint(s, 1, 1024, &v);
    if (rc == 0) {
        if (!all_digits(s, strlen(s)) || v < 1 || v > 1024 || v != strtoul(s, NULL, 10))
            die("at__export_parse_uint accepted a bad value", s);
    } else if ((rc != -EINVAL && rc != -ERANGE) || v != 777) {
        die("at__export_parse_uint failed badly", s);
    }
}

static void check_path(const at_export_path_t *p, int rc, const char *err, const char *s)
{
    if (rc == 0) {
        size_t n = strlen(p->path);
        if (p->path[0] != '/' || n > AT_EXPORT_PATH_MAX)
            die("resolved socket path is not absolute or too long", s);
        if (p->dir[0] != '\0' && strncmp(p->path, p->dir, strlen(p->dir)) != 0)
            die("resolved socket path is not inside its directory", s);
        if (strlen(p->dir) > AT_EXPORT_PATH_MAX)
            die("resolved directory too long", s);
    } else if (rc < 0 && err[0] == '\0') {
        die("path refused without a reason", s);
    } else if (rc > 1) {
        die("unexpected return", s);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char xdg[sizeof "XDG_RUNTIME_DIR=" + 1024];
    static int once;
    if (!once) {
        once = 1;
        unsetenv("ASYNCTOP_SOCKET");
        snprintf(xdg, sizeof xdg, "XDG_RUNTIME_DIR=");
        putenv(xdg);
    }
    if (size < 1)
        return 0;
    char s[1024];
    size_t n = size - 1 < sizeof s - 1 ? size - 1 : sizeof s - 1;
    memcpy(s, data + 1, n);
    s[n] = '\0';
    at_export_path_t p;
    char err[256] = "";
    int rc;
    switch (data[0] % 5) {
    case 0:
        check_ms(s);
        break;
    case 1:
        check_bool(s);
        break;
    case 2:
        check_uint(s);
        break;
    case 3: /* ASYNCTOP_SOCKET=s (an explicit override takes the same path) */
        rc = at__export_path_resolve(&p, s, 4242, err, sizeof err);
        if ((rc == 1) != (strcmp(s, "off") == 0))
            die("only ASYNCTOP_SOCKET=off disables the exporter", s);
        if (rc == 0 && s[0] != '\0' && (p.dir[0] != '\0' || strcmp(p.path, s) != 0))
            die("an override must be used as given", s);
        check_path(&p, rc, err, s);
        break;
    default: /* XDG_RUNTIME_DIR=s */
        if (s[0] == '\0')
            break;
        /* the putenv'd buffer rewritten in place: setenv would leak a copy per run */
        snprintf(xdg, sizeof xdg, "XDG_RUNTIME_DIR=%s", s);
        rc = at__export_path_resolve(&p, NULL, 4242, err, sizeof err);
        snprintf(xdg, sizeof xdg, "XDG_RUNTIME_DIR=");
        if (rc == 1)
            die("XDG_RUNTIME_DIR cannot disable the exporter", s);
        check_path(&p, rc, err, s);
        break;
    }
    return 0;
}
