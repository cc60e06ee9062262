/* config.c: the public debug-mode, slow-threshold, logging and symbolisation calls (wrapping
 * loopmon). */
#include "core.h"

#include <string.h>

void at_set_debug(bool on)
{
    at__debug_set(on);
}

bool at_get_debug(void)
{
    return at__debug_enabled();
}

void at_set_slow_threshold_ms(uint64_t ms)
{
    /* 0 disables the report: an infinite threshold. */
    uint64_t ns = ms == 0 ? UINT64_MAX : (ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u);
    at__slow_threshold_set_ns(ns);
}

uint64_t at_get_slow_threshold_ms(void)
{
    uint64_t ns = at__slow_threshold_ns();
    return ns == UINT64_MAX ? 0 : ns / 1000000u;
}

void at_set_log_sink(at_log_sink_fn sink, void *arg)
{
    at__log_set_sink(sink, arg);
}

void at_set_log_level(at_log_level_t level)
{
    at__log_set_level((int)level);
}

at_log_level_t at_get_log_level(void)
{
    return (at_log_level_t)at__log_get_level();
}

void at_log(at_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    at__logv((int)level, fmt, ap);
    va_end(ap);
}

int at_log_flush(uint64_t timeout_ms)
{
    uint64_t ns = timeout_ms > UINT64_MAX / 1000000u ? UINT64_MAX : timeout_ms * 1000000u;
    return at__log_flush(ns) == 0 ? 0 : AT_ETIMEDOUT;
}

size_t at_symbolize(const void *addr, char *buf, size_t len)
{
    char tmp[512];
    at__sym_format(addr, true, tmp, sizeof tmp);
    size_t n = strlen(tmp);
    if (len > 0) {
        size_t c = n < len - 1 ? n : len - 1;
        memcpy(buf, tmp, c);
        buf[c] = '\0';
    }
    return n;
}

void at_debug_counters(at_debug_counters_t *out)
{
    assert(out);
    out->wrong_thread = atomic_load_explicit(&at__count_wrong_thread, memory_order_relaxed);
    out->never_retrieved = atomic_load_explicit(&at__count_never_retrieved, memory_order_relaxed);
    out->unclosed = atomic_load_explicit(&at__count_unclosed, memory_order_relaxed);
    out->dropped_callbacks = atomic_load_explicit(&at__count_dropped, memory_order_relaxed);
}
