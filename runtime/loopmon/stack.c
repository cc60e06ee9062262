/* stack.c: frame-pointer stack walks bounded by the thread's current stack bounds. */
#include "loopmon.h"

#include <errno.h>

__thread at__stack_bounds_t at__stack_bounds;

static _Atomic(at__stack_resolver_fn) resolver;

void at__stack_resolver_set(at__stack_resolver_fn fn)
{
    atomic_store_explicit(&resolver, fn, memory_order_release);
}

bool at__stack_resolve(uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
    at__stack_resolver_fn fn = atomic_load_explicit(&resolver, memory_order_acquire);
    return fn != NULL && fn(addr, lo, hi);
}

int at__stack_bounds_init(void)
{
    pthread_attr_t a;
    void *addr;
    size_t size;
    int rc = pthread_getattr_np(pthread_self(), &a);
    if (rc != 0)
        return -rc;
    rc = pthread_attr_getstack(&a, &addr, &size);
    pthread_attr_destroy(&a);
    if (rc != 0)
        return -rc;
    at__stack_bounds_set(addr, (char *)addr + size);
    return 0;
}

__attribute__((no_sanitize("address"))) int at__stack_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi,
                                                           void **out, int max)
{
    int n = 0;
    if (hi < lo + 16)
        return 0;
    while (n < max) {
        if (fp < lo || fp > hi - 16 || (fp & 7) != 0)
            break;
        const uintptr_t *f = (const uintptr_t *)fp;
        uintptr_t next = f[0], ret = f[1];
        if (ret == 0)
            break;
        out[n++] = (void *)ret;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

__attribute__((noinline, no_sanitize("address"))) int at__stack_capture(void **out, int max,
                                                                        int skip)
{
    if (AT__UNLIKELY(at__stack_bounds.hi == 0) && at__stack_bounds_init() != 0)
        return 0;
    uintptr_t lo = at__stack_bounds.lo, hi = at__stack_bounds.hi;
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    int n = 0;
    while (n < max) {
        if (fp < lo || fp > hi - 16 || (fp & 7) != 0)
            break;
        const uintptr_t *f = (const uintptr_t *)fp;
        uintptr_t next = f[0], ret = f[1];
        if (ret == 0)
            break;
        if (skip > 0)
            skip--;
        else
            out[n++] = (void *)ret;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}
