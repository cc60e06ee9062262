/* fork.c: the runtime's one pthread_atfork registration — every module's locks taken before a
 * fork in the fixed order of at__fork_rank_t (loopmon.h) and released after it. */
#include "loopmon.h"

/* A rank is either handlers (at__fork_register) or one mutex (at__fork_register_mutex). */
static const at__fork_handlers_t *_Atomic handlers[AT__FORK_NRANKS];
static pthread_mutex_t *_Atomic mutexes[AT__FORK_NRANKS];
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
        pthread_mutex_t *m = atomic_load_explicit(&mutexes[r], memory_order_acquire);
        if (m != NULL)
            pthread_mutex_lock(m);
        else if (h != NULL)
            h->prepare();
        else
            continue;
        mask |= 1u << r;
    }
    prepared = mask;
}

/* Releases what fork_prepare took, latest rank first; `child` picks the handlers' child side. */
static void fork_release(bool child)
{
    for (int r = AT__FORK_NRANKS - 1; r >= 0; r--) {
        if (!(prepared & (1u << r)))
            continue;
        pthread_mutex_t *m = atomic_load_explicit(&mutexes[r], memory_order_relaxed);
        const at__fork_handlers_t *h = atomic_load_explicit(&handlers[r], memory_order_relaxed);
        if (m != NULL)
            pthread_mutex_unlock(m);
        else if (child)
            h->child();
        else
            h->parent();
    }
    prepared = 0;
}

static void fork_parent(void)
{
    fork_release(false);
}

static void fork_child(void)
{
    fork_release(true);
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

void at__fork_register_mutex(at__fork_rank_t rank, pthread_mutex_t *m)
{
    assert(rank >= 0 && rank < AT__FORK_NRANKS && m != NULL);
    pthread_once(&install_once, install);
    atomic_store_explicit(&mutexes[rank], m, memory_order_release);
}
