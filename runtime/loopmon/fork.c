/* fork.c: the runtime's one pthread_atfork registration — every module's locks taken before a
 * fork in the fixed order of at__fork_rank_t (loopmon.h) and released after it. */
#include "loopmon.h"

static const at__fork_handlers_t *_Atomic handlers[AT__FORK_NRANKS];
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

/* The ranks this thread's prepare ran (a thread's own: glibc runs a fork's handlers on the
 * forking thread, and the child is a copy of that thread), so that parent and child release
 * exactly what was taken even if a rank is registered meanwhile. */
static __thread uint32_t prepared;

_Static_assert(AT__FORK_NRANKS <= 32, "prepared is a 32-bit mask");

static void fork_prepare(void)
{
    uint32_t mask = 0;
    for (int r = 0; r < AT__FORK_NRANKS; r++) {
        const at__fork_handlers_t *h = atomic_load_explicit(&handlers[r], memory_order_acquire);
        if (h != NULL) {
            h->prepare();
            mask |= 1u << r;
        }
    }
    prepared = mask;
}

static void fork_parent(void)
{
    for (int r = AT__FORK_NRANKS - 1; r >= 0; r--)
        if (prepared & (1u << r))
            atomic_load_explicit(&handlers[r], memory_order_relaxed)->parent();
    prepared = 0;
}

static void fork_child(void)
{
    for (int r = AT__FORK_NRANKS - 1; r >= 0; r--)
        if (prepared & (1u << r))
            atomic_load_explicit(&handlers[r], memory_order_relaxed)->child();
    prepared = 0;
}

static void install(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void at__fork_register(at__fork_rank_t rank, const at__fork_handlers_t *h)
{
    assert(rank >= 0 && rank < AT__FORK_NRANKS && h != NULL);
    pthread_once(&install_once, install);
    atomic_store_explicit(&handlers[rank], h, memory_order_release);
}
