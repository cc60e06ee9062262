/* config.c: process-wide settings of the instrumentation layer: debug mode, the slow
 * threshold, and their strict parsing from ASYNCTOP_DEBUG and ASYNCTOP_SLOW_MS. */
#include "loopmon.h"

#include <errno.h>
#include <stdlib.h>
#include <strings.h>

_Atomic int at__debug_flag;
_Atomic uint64_t at__slow_ns = AT__SLOW_NS_DEFAULT;

void at__debug_set(bool on)
{
    atomic_store_explicit(&at__debug_flag, on ? 1 : 0, memory_order_relaxed);
}

void at__slow_threshold_set_ns(uint64_t ns)
{
    atomic_store_explicit(&at__slow_ns, ns, memory_order_relaxed);
}

int at__parse_ms(const char *s, uint64_t *ns_out)
{
    if (!s || !*s)
        return -EINVAL;
    uint64_t ms = 0, frac_ns = 0;
    const char *p = s;
    int ndig = 0;
    while (*p >= '0' && *p <= '9') {
        if (ndig++ >= 9) /* more than 999999999 ms: certainly out of range */
            return -ERANGE;
        ms = ms * 10 + (uint64_t)(*p++ - '0');
    }
    if (ndig == 0)
        return -EINVAL;
    if (*p == '.') {
        p++;
        uint64_t scale = 100000; /* ns per unit of the first fraction digit */
        int nfrac = 0;
        while (*p >= '0' && *p <= '9') {
            if (++nfrac > 6)
                return -EINVAL;
            frac_ns += (uint64_t)(*p++ - '0') * scale;
            scale /= 10;
        }
        if (nfrac == 0)
            return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;
    if (ms > 86400000u || (ms == 86400000u && frac_ns > 0))
        return -ERANGE;
    *ns_out = ms * 1000000u + frac_ns;
    return 0;
}

int at__parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "yes", "true", "on"};
    static const char *const no[] = {"0", "no", "false", "off", ""};
    if (!s)
        return -EINVAL;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!strcasecmp(s, yes[i])) {
            *out = true;
            return 0;
        }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return 0;
        }
    return -EINVAL;
}

void at__config_from_env(void)
{
    const char *d = getenv("ASYNCTOP_DEBUG");
    bool on = false;
    if (d && at__parse_bool(d, &on) != 0) {
        at__log(AT__LOG_WARNING,
                "ASYNCTOP_DEBUG='%.64s' is not a boolean (use 1/0, yes/no, true/false, "
                "on/off); debug mode stays off",
                d);
        on = false;
    }
    at__debug_set(on);

    const char *s = getenv("ASYNCTOP_SLOW_MS");
    uint64_t ns = AT__SLOW_NS_DEFAULT;
    if (s) {
        int rc = at__parse_ms(s, &ns);
        if (rc == 0 && ns < AT__SLOW_NS_MIN)
            rc = -EDOM; /* the range a client's set_config is held to */
        if (rc != 0) {
            at__log(AT__LOG_WARNING,
                    "ASYNCTOP_SLOW_MS='%.64s' is %s (use milliseconds as digits with an "
                    "optional fraction, e.g. 100 or 2.5, from 1 to 86400000); using the "
                    "default 100 ms",
                    s,
                    rc == -ERANGE ? "too large"
                    : rc == -EDOM ? "too small"
                                  : "not a number of milliseconds");
            ns = AT__SLOW_NS_DEFAULT;
        }
    }
    at__slow_threshold_set_ns(ns);
}

/* Read the environment at load time, so that the settings hold before any loop exists. */
__attribute__((constructor)) static void config_init(void)
{
    at__config_from_env();
}

const char *at__cb_kind_name(int kind)
{
    static const char *const names[AT__CB_KIND_MAX] = {"ready",    "timer",     "io",
                                                       "executor", "task_step", "other"};
    return kind >= 0 && kind < AT__CB_KIND_MAX ? names[kind] : "?";
}
