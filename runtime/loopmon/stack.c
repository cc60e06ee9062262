/* stack.c: frame-pointer stack walks bounded by the thread's current stack bounds. */
#include "loopmon.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <uv.h>

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

/* libuv's executable text, where every walk stops: Debian's libuv has no frame pointers, so
 * the saved "frame pointer" above one of its frames is whatever it used rbp for. Set once
 * (below), read from signal handlers: plain loads of values that never change after. */
static uintptr_t uv_text_lo, uv_text_hi;
static pthread_once_t uv_text_once = PTHREAD_ONCE_INIT;

static int find_uv_text(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t pc = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && pc >= lo && pc < lo + ph->p_memsz) {
            uv_text_lo = lo;
            uv_text_hi = lo + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

static void uv_text_init(void)
{
    /* Only a shared libuv: linked statically, its text is the program's (or ours), which
     * must stay walkable. */
    Dl_info uv, self;
    if (dladdr((void *)uv_run, &uv) == 0 || uv.dli_fname == NULL ||
        strstr(uv.dli_fname, "libuv") == NULL ||
        (dladdr((void *)at__stack_walk, &self) != 0 && self.dli_fbase == uv.dli_fbase))
        return;
    dl_iterate_phdr(find_uv_text, (void *)uv_run);
}

int at__stack_bounds_init(void)
{
    pthread_once(&uv_text_once, uv_text_init);
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

/* The walk itself, for at__stack_walk and at__stack_capture: the return addresses of the frames
 * from `fp` on, inside [lo, hi) (hi >= lo + 16), the first `skip` of them dropped, at most `max`;
 * stops at a frame into libuv (no frame pointers beyond). */
static inline __attribute__((always_inline, no_sanitize("address"))) int
fp_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi, void **out, int max, int skip)
{
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
        if (ret >= uv_text_lo && ret < uv_text_hi)
            break; /* into libuv: no frame pointers beyond */
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

__attribute__((no_sanitize("address"))) int at__stack_walk(uintptr_t fp, uintptr_t lo, uintptr_t hi,
                                                           void **out, int max)
{
    if (hi < lo + 16)
        return 0;
    return fp_walk(fp, lo, hi, out, max, 0);
}

__attribute__((noinline, no_sanitize("address"))) int at__stack_capture(void **out, int max,
                                                                        int skip)
{
    if (AT__UNLIKELY(at__stack_bounds.hi == 0) && at__stack_bounds_init() != 0)
        return 0;
    uintptr_t lo = at__stack_bounds.lo, hi = at__stack_bounds.hi;
    return fp_walk((uintptr_t)__builtin_frame_address(0), lo, hi, out, max, skip);
}
