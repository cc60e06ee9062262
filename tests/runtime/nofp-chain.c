/* nofp-chain.c: call chains compiled -O2 -fomit-frame-pointer (see meson.build), as most C
 * programs and libraries are built: what the CFI unwinder must get right. */
#include "nofp-chain.h"

#include <stdatomic.h>

/* noipa: neither inlined, cloned nor tail-called (the asm after each call keeps the frame). */
NOFP_NOIPA void nofp_level3(void (*cb)(void *), void *arg)
{
    cb(arg);
    __asm__ volatile("" ::: "memory");
}

NOFP_NOIPA void nofp_level2(void (*cb)(void *), void *arg)
{
    nofp_level3(cb, arg);
    __asm__ volatile("" ::: "memory");
}

NOFP_NOIPA void nofp_level1(void (*cb)(void *), void *arg)
{
    nofp_level2(cb, arg);
    __asm__ volatile("" ::: "memory");
}

NOFP_NOIPA void nofp_recurse(int depth, void (*cb)(void *), void *arg)
{
    if (depth <= 1)
        cb(arg);
    else
        nofp_recurse(depth - 1, cb, arg);
    __asm__ volatile("" ::: "memory");
}

NOFP_NOIPA void nofp_spin(void *flag)
{
    atomic_store((_Atomic int *)flag, 2); /* spinning */
    while (atomic_load((_Atomic int *)flag) == 2)
        ;
    __asm__ volatile("" ::: "memory");
}
