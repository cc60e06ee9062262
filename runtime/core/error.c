/* error.c: the error-code table's name and message functions, and at_error_t objects. */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *at_version_string(void)
{
    return "0.1.0";
}

const char *at_err_name(int code)
{
    switch (code) {
#define AT_ERR_NAME_(name, value, msg)                                                             \
    case (value):                                                                                  \
        return #name;
        AT_ERRNO_MAP(AT_ERR_NAME_)
#undef AT_ERR_NAME_
    default:
        return "Unknown error";
    }
}

const char *at_strerror(int code)
{
    switch (code) {
#define AT_STRERROR_(name, value, msg)                                                             \
    case (value):                                                                                  \
        return msg;
        AT_ERRNO_MAP(AT_STRERROR_)
#undef AT_STRERROR_
    default:
        return "Unknown error";
    }
}

/* Returned when allocating an error fails: never freed, ref/unref no-ops. */
static at_error_t at__error_nomem = {
    .refs = 1,
    .code = AT_ENOMEM,
    .domain = AT_DOMAIN,
    .is_static = true,
};

__thread uintptr_t at__walk_stop __attribute__((tls_model("initial-exec")));
/* loopmon's stack bounds, read on every debug-mode capture: initial-exec (one
 * %fs-relative load, libasynctop is loaded at start-up) instead of a
 * __tls_get_addr call. */
extern __thread at__stack_bounds_t at__stack_bounds __attribute__((tls_model("initial-exec")));

/* The frame-pointer walk of loopmon's at__stack_capture, bounded the same
 * way (at__stack_bounds), but starting at the frame that returns to `ra`,
 * writing straight into the destination (debug mode pays for this on every
 * call-soon: no temporary copy, no search afterwards), and stopping at the
 * ready-queue dispatcher's frame (at__walk_stop): above it are libuv's
 * frames, which have no frame pointers, and the same at_loop_run for every
 * callback. */
__attribute__((noinline, no_sanitize("address"))) void at__capture_site(void **stack,
                                                                        uint8_t *nstack, void *ra)
{
    stack[0] = ra;
    *nstack = 1;
    if (AT__LIKELY(!at__debug_enabled()))
        return;
    if (AT__UNLIKELY(at__stack_bounds.hi == 0) && at__stack_bounds_init() != 0)
        return;
    uintptr_t lo = at__stack_bounds.lo, hi = at__stack_bounds.hi, stop = at__walk_stop;
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    int n = 0, skipped = 0;
    bool found = false;
    while (n < AT_STACK_MAX) {
        if (fp < lo || fp > hi - 16 || (fp & 7) != 0 || fp == stop)
            break;
        const uintptr_t *f = (const uintptr_t *)fp;
        uintptr_t next = f[0], ret = f[1];
        if (ret == 0)
            break;
        if (!found && ((void *)ret == ra || ++skipped > 4))
            found = true; /* our own frames are behind us (or ra was not on the chain) */
        if (found)
            stack[n++] = (void *)ret;
        if (next <= fp)
            break;
        fp = next;
    }
    if (n > 0)
        *nstack = (uint8_t)n;
}

__attribute__((format(printf, 4, 0))) static at_error_t *
error_create(void *ra, int code, const char *domain, const char *fmt, va_list ap)
{
    char small[256];
    const char *msg = at_strerror(code);
    int need = 0;
    if (fmt) {
        va_list cp;
        va_copy(cp, ap);
        need = vsnprintf(small, sizeof small, fmt, cp);
        va_end(cp);
        if (need < 0)
            need = 0;
        msg = NULL;
    } else {
        need = (int)strlen(msg);
    }
    at_error_t *e = malloc(sizeof *e + (size_t)need + 1);
    if (!e)
        return &at__error_nomem;
    atomic_init(&e->refs, 1);
    e->code = code;
    e->domain = domain ? domain : AT_DOMAIN;
    e->is_static = false;
    if (msg)
        memcpy(e->message, msg, (size_t)need + 1);
    else if ((size_t)need < sizeof small)
        memcpy(e->message, small, (size_t)need + 1);
    else
        vsnprintf(e->message, (size_t)need + 1, fmt, ap);
    at__capture_site(e->stack, &e->nstack, ra);
    return e;
}

at_error_t *at_error_newv(int code, const char *domain, const char *fmt, va_list ap)
{
    return error_create(__builtin_return_address(0), code, domain, fmt, ap);
}

at_error_t *at_error_new(int code, const char *domain, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    at_error_t *e = error_create(__builtin_return_address(0), code, domain, fmt, ap);
    va_end(ap);
    return e;
}

/* Internal: an error whose raise site is `ra` (used by at_future_fail). */
at_error_t *at__error_new_at(void *ra, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
at_error_t *at__error_new_at(void *ra, int code, const char *fmt, va_list ap)
{
    return error_create(ra, code, NULL, fmt, ap);
}

at_error_t *at_error_ref(at_error_t *err)
{
    assert(err);
    if (!err->is_static)
        atomic_fetch_add_explicit(&err->refs, 1, memory_order_relaxed);
    return err;
}

void at_error_unref(at_error_t *err)
{
    if (!err || err->is_static)
        return;
    if (atomic_fetch_sub_explicit(&err->refs, 1, memory_order_acq_rel) == 1)
        free(err);
}

int at_error_code(const at_error_t *err)
{
    assert(err);
    return err->code;
}

const char *at_error_domain(const at_error_t *err)
{
    assert(err);
    return err->domain;
}

const char *at_error_message(const at_error_t *err)
{
    assert(err);
    return err->is_static ? at_strerror(err->code) : err->message;
}

size_t at_error_stack(const at_error_t *err, void **frames, size_t max)
{
    assert(err);
    return at__frames_copy(frames, max, err->stack, err->nstack);
}

void at__format_stack(char *buf, size_t len, size_t *pos, void *const *stack, size_t n)
{
    char line[512];
    for (size_t i = 0; i < n; i++) {
        at__sym_format(stack[i], true, line, sizeof line);
        int w = snprintf(*pos < len ? buf + *pos : NULL, *pos < len ? len - *pos : 0, "  #%zu %s\n",
                         i, line);
        if (w > 0)
            *pos += (size_t)w;
    }
}

size_t at_error_format(const at_error_t *err, char *buf, size_t len)
{
    assert(err);
    size_t pos = 0;
    int w = snprintf(buf, len, "%s (%s): %s\nRaised at (most recent call first):\n",
                     at_err_name(err->code), err->domain, at_error_message(err));
    if (w > 0)
        pos = (size_t)w;
    at__format_stack(buf, len, &pos, err->stack, err->nstack);
    if (len > 0 && pos >= len)
        buf[len - 1] = '\0';
    return pos;
}
