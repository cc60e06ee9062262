/* export_sample.c: sampling a loop thread's stack from the exporter thread — a real-time signal
 * to that thread, whose handler walks frame pointers (async-signal-safe, bounded by the stack's
 * known bounds) into a preallocated buffer that the exporter reads later. */
#include "export_int.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

/* States of the one sample slot (one sample at a time, process-wide). */
enum { S_IDLE = 0, S_REQUESTED = 1, S_WRITING = 2, S_DONE = 3 };

static _Atomic int g_state;
static _Atomic pid_t g_tid;
static uintptr_t g_lo, g_hi; /* the loop thread's own stack, when its TLS bounds are unset */
static void *g_pcs[AT_EXPORT_MAX_FRAMES];
static int g_n;
static uint64_t g_req_ns;
static _Atomic int g_installed;

int at__export_sample_signal(void)
{
    return SIGRTMIN + 7;
}

static void sample_handler(int sig, siginfo_t *si, void *ucv)
{
    (void)sig;
    (void)si;
    int saved = errno;
    if ((pid_t)syscall(SYS_gettid) != atomic_load_explicit(&g_tid, memory_order_acquire))
        goto out;
    int expect = S_REQUESTED;
    if (!atomic_compare_exchange_strong(&g_state, &expect, S_WRITING))
        goto out;
    ucontext_t *uc = ucv;
    uintptr_t pc = 0, fp = 0;
#if defined(__x86_64__)
    pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
    pc = (uintptr_t)uc->uc_mcontext.pc;
    fp = (uintptr_t)uc->uc_mcontext.regs[29];
#else
    (void)uc;
#endif
    /* The thread's current bounds (a coroutine's stack while a task runs), else the loop
     * thread's own stack as loopmon recorded it. */
    uintptr_t lo = at__stack_bounds.lo, hi = at__stack_bounds.hi;
    if (lo == 0 || fp < lo || fp >= hi) {
        lo = g_lo;
        hi = g_hi;
    }
    int n = 0;
    if (pc != 0)
        g_pcs[n++] = (void *)pc;
    if (fp != 0 && lo != 0)
        n += at__stack_walk(fp, lo, hi, g_pcs + n, AT_EXPORT_MAX_FRAMES - n);
    g_n = n;
    atomic_store_explicit(&g_state, S_DONE, memory_order_release);
out:
    errno = saved;
}

int at__export_sample_install(void)
{
    if (atomic_load(&g_installed))
        return 0;
    int sig = at__export_sample_signal();
    struct sigaction old, sa;
    if (sigaction(sig, NULL, &old) != 0)
        return -errno;
    if ((old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != sample_handler
                                    : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
        return -EBUSY;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = sample_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0)
        return -errno;
    /* Never uninstalled: a signal still pending when an exporter stops must not take the
     * default action of a real-time signal (terminating the process). */
    atomic_store(&g_installed, 1);
    return 0;
}

bool at__export_sample_busy(void)
{
    return atomic_load(&g_state) != S_IDLE;
}

int at__export_sample_request(pid_t tid, const void *lo, const void *hi)
{
    if (!atomic_load(&g_installed))
        return -ENOTSUP;
    if (atomic_load(&g_state) != S_IDLE)
        return -EBUSY;
    g_lo = (uintptr_t)lo;
    g_hi = (uintptr_t)hi;
    g_n = 0;
    g_req_ns = uv_hrtime();
    atomic_store_explicit(&g_tid, tid, memory_order_release);
    atomic_store_explicit(&g_state, S_REQUESTED, memory_order_release);
    if (syscall(SYS_tgkill, getpid(), tid, at__export_sample_signal()) != 0) {
        int e = errno;
        atomic_store(&g_state, S_IDLE);
        return -e;
    }
    return 0;
}

int at__export_sample_poll(uint64_t now_ns, uint64_t timeout_ns, at_export_stack_t *out)
{
    int st = atomic_load_explicit(&g_state, memory_order_acquire);
    if (st == S_DONE) {
        out->depth = (uint32_t)g_n;
        memcpy(out->pc, g_pcs, sizeof(void *) * (size_t)g_n);
        atomic_store(&g_state, S_IDLE);
        return 1;
    }
    if (st == S_REQUESTED && now_ns - g_req_ns > timeout_ns) {
        int expect = S_REQUESTED;
        if (atomic_compare_exchange_strong(&g_state, &expect, S_IDLE))
            return -ETIMEDOUT;
    }
    return st == S_IDLE ? -ETIMEDOUT : 0;
}
