/* stack_pool.h: pooled, lazily committed, guarded coroutine stacks (internal). */
#ifndef AT_TASKS_STACK_POOL_H
#define AT_TASKS_STACK_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a stack's lowest end is protected.
 *  - AT__GUARD_MADVISE: a guard region installed with MADV_GUARD_INSTALL
 *    (Linux >= 6.13): costs no memory and, unlike mprotect, does not split the
 *    mapping, so the number of stacks is not limited by vm.max_map_count.
 *  - AT__GUARD_MPROTECT: a PROT_NONE page (fallback for older kernels). Each
 *    one splits the mapping into up to two more VMAs, so these are handed out
 *    only while the VMA budget (see at__stack_pool_vma_budget) lasts.
 *  - AT__GUARD_CANARY: no hardware guard (the budget is spent); a canary word
 *    at the stack's lowest end is checked on every switch out of the
 *    coroutine, and an overwritten canary aborts with the task's name. This
 *    catches an overflow after the fact, not at the faulting instruction; the
 *    unprotected gap page below the stack absorbs an overflow of up to its
 *    size before a neighbour is touched. */
typedef enum at__guard_mode {
    AT__GUARD_MADVISE = 1,
    AT__GUARD_MPROTECT = 2,
    AT__GUARD_CANARY = 3,
} at__guard_mode_t;

/* One stack slot handed out by the pool. [lo, hi) is the usable stack (hi is
 * page aligned; the caller puts its control block at the top, so that a
 * shallow coroutine touches only the top page). */
typedef struct at__stack {
    char *lo;
    char *hi;
    at__guard_mode_t guard;
    uint32_t size_class;
    uint64_t ref; /* pool bookkeeping: (chunk << 32) | slot */
} at__stack_t;

/* Smallest and largest stack sizes accepted (bytes, including the top page). */
#define AT__STACK_MIN ((size_t)16 * 1024)
#define AT__STACK_MAX ((size_t)64 * 1024 * 1024)
/* Stack size used when a spawn asks for 0. */
#define AT__STACK_DEFAULT ((size_t)256 * 1024)

/* Hands out a stack of at least `size` bytes (rounded up to a power of two,
 * clamped to [AT__STACK_MIN, AT__STACK_MAX]) from the calling thread's pool.
 * Reuses a pooled stack when one is free (no system call), else carves a new
 * slot from the current chunk (one madvise or mprotect for its guard), else
 * maps a new chunk (MAP_NORESERVE: nothing is committed until touched).
 * Returns 0, or -ENOMEM when the address space or the VMA budget is exhausted
 * and the canary mode is disabled (ASYNCTOP_STACK_GUARD=strict).
 * Any thread; each thread has its own pool (no lock on this path). */
int at__stack_alloc(size_t size, at__stack_t *out);

/* Returns a stack to the calling thread's pool. `low_water` is the lowest
 * stack address the owner is known to have used (or NULL if unknown). If the
 * stack went below its top page (known from low_water, or seen by probing the
 * top of the page below), everything under the top page is given back to the
 * kernel with one MADV_DONTNEED; a shallow stack is pooled as is. When the
 * pool holds more free stacks than it keeps warm (AT__STACK_KEEP_WARM per
 * size class), the top page is dropped as well so an idle pool costs no
 * memory. Must be called on the thread that allocated the stack. */
void at__stack_free(at__stack_t *st, const void *low_water);

/* Canary-mode stacks (guard == AT__GUARD_CANARY): whether the canary word
 * at the stack's lowest end is intact. Call on the owner thread. */
bool at__stack_canary_ok(const at__stack_t *st);

/* Free stacks kept with their top page resident, per size class. */
#define AT__STACK_KEEP_WARM 256

/* Result of mapping a faulting address to a pooled stack. */
typedef struct at__stack_fault {
    char *stack_lo; /* usable stack of the slot the address belongs to */
    char *stack_hi;
    bool in_guard; /* the address is in that slot's guard region */
} at__stack_fault_t;

/* Looks `addr` up among every chunk of every thread's pool. Returns true and
 * fills *out if the address lies in a pooled slot (its guard or its stack).
 * Async-signal-safe (no locks, no allocation): used by the SIGSEGV handler. */
bool at__stack_lookup(const void *addr, at__stack_fault_t *out);

/* Guard mode of new slots on this system: MADV_GUARD_INSTALL if the kernel
 * has it, else mprotect. ASYNCTOP_STACK_GUARD=mprotect forces the fallback
 * (to test it on new kernels), =strict forbids the canary mode. */
at__guard_mode_t at__stack_guard_mode(void);

/* The number of extra VMAs the pool may still create with mprotect guards,
 * computed once from /proc/sys/vm/max_map_count minus the mappings in
 * /proc/self/maps at first use, minus a reserve for the rest of the program
 * (an eighth of the limit). Test hook: at__stack_pool_set_vma_budget()
 * overrides it. Any thread. */
long at__stack_pool_vma_budget(void);
void at__stack_pool_set_vma_budget(long vmas);

/* Test hooks: force the guard mode of slots carved from now on, and whether
 * the canary mode is forbidden (as ASYNCTOP_STACK_GUARD=strict does). */
void at__stack_pool_force_guard_mode(at__guard_mode_t mode);
void at__stack_pool_force_strict(bool strict);

/* Number of chunks mapped so far in the process; changes when a chunk is
 * added (the coroutine layer re-checks its fault handler then). Any thread. */
size_t at__stack_pool_generation(void);

/* Pool statistics of the calling thread (for tests and benchmarks). */
typedef struct at__stack_pool_stats {
    size_t chunks;                                      /* chunks mapped (all threads) */
    size_t slots_carved;                                /* slots ever carved by this thread */
    size_t slots_free;                                  /* currently pooled, this thread */
    size_t trims;                                       /* MADV_DONTNEED calls made on free */
    size_t guard_madvise, guard_mprotect, guard_canary; /* carved per mode */
} at__stack_pool_stats_t;
void at__stack_pool_stats(at__stack_pool_stats_t *out);

#endif
