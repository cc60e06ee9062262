/* nofp-chain.h: call chains built without frame pointers (nofp-chain.c), for unwinding tests
 * and benchmarks. Each calls cb(arg) at its bottom. */
#ifndef NOFP_CHAIN_H
#define NOFP_CHAIN_H

/* Neither inlined, cloned nor changed by interprocedural analysis. */
#if defined(__clang__)
#define NOFP_NOIPA __attribute__((noinline)) /* clang has no noipa */
#else
#define NOFP_NOIPA __attribute__((noipa))
#endif

/* nofp_level1 -> nofp_level2 -> nofp_level3 -> cb(arg). */
void nofp_level1(void (*cb)(void *), void *arg);
void nofp_level2(void (*cb)(void *), void *arg);
void nofp_level3(void (*cb)(void *), void *arg);

/* depth frames of nofp_recurse, the innermost calling cb(arg). */
void nofp_recurse(int depth, void (*cb)(void *), void *arg);

/* Sets *(_Atomic int *)flag to 2, then spins until another thread changes it. */
void nofp_spin(void *flag);

#endif
