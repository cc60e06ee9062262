/* coro.c: stackful coroutines — creation on pooled stacks, the switch with its
 * sanitizer annotations, overflow reporting and suspended-stack walks. */
#include "at_tasks_config.h"
#include "coro.h"
#include "stack_pool.h"
#include "loopmon.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define AT_ASAN 1
#endif
#ifdef AT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* ThreadSanitizer: each coroutine is a TSan fiber, from at__coro_create to at__coro_destroy
 * (a pooled stack gets a new fiber with each coroutine made on it). Every switch is announced
 * right before it is made, synchronising (a coroutine and its resumer run on one thread, one
 * after the other: what one wrote the other may read without a lock). Without this TSan
 * takes a coroutine's frames for the resumer's and its shadow stack overflows. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AT_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define AT_TSAN 1
#endif
#ifdef AT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if !defined(AT_CORO_NO_ASM) && (defined(__x86_64__) || defined(__aarch64__))
#define AT_HAVE_ASM 1
#endif

/* The default backend: the assembly switch where this build has it. */
#ifdef AT_HAVE_ASM
#define AT_CORO_DEFAULT_UCONTEXT 0
#else
#define AT_CORO_DEFAULT_UCONTEXT 1
#endif

#define CORO_MAGIC 0xc0c0a7a5u

struct at__coro {
    void *sp;        /* ASM: saved stack pointer while not running */
    void *caller_sp; /* ASM: the resumer's saved stack pointer while running */
    at__coro_t *caller;
    at__coro_fn fn;
    void *arg;
    void *user;
    uint64_t id;
    char *low_water; /* lowest sp seen at a switch out */
    at__stack_t stack;
    ucontext_t *uc;        /* UCONTEXT: this coroutine's context (below us) */
    ucontext_t *caller_uc; /* UCONTEXT: the resumer's (on its stack) */
#ifdef AT_ASAN
    const void *caller_stack_lo; /* the resumer's stack, for the switch back */
    size_t caller_stack_size;
#endif
#ifdef AT_TSAN
    void *tsan_fiber;        /* this coroutine's TSan fiber, for its whole life */
    void *tsan_caller_fiber; /* the resumer's (a thread or another coroutine), while running */
#endif
    uint32_t magic;
    uint8_t state;
    uint8_t backend;
    char name[48];
};

/* Control block (and for UCONTEXT its ucontext_t) at the top of the stack;
 * frames start right below, on the same page. */
#define CTL_BYTES ((sizeof(at__coro_t) + 63) & ~(size_t)63)
#define UC_BYTES  ((sizeof(ucontext_t) + 63) & ~(size_t)63)

static __thread at__coro_t *current __attribute__((tls_model("initial-exec")));
static _Atomic(at__coro_switch_hook_fn) switch_hook;

void at__coro_switch_asm(void **save_sp, void *new_sp);
void at__coro_trampoline_asm(void);
void at__coro_entry(at__coro_t *co) __attribute__((noreturn));

/* ---- overflow reporting ------------------------------------------------ */

static struct sigaction old_segv;
static __thread bool altstack_done __attribute__((tls_model("initial-exec")));

static at__coro_t *ctl_of_stack_hi(char *hi)
{
    return (at__coro_t *)(hi - CTL_BYTES);
}

static size_t fmt_u64(char *buf, uint64_t v, int base)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

/* Async-signal-safe message builder. */
typedef struct msgbuf {
    char b[512];
    size_t n;
} msgbuf_t;

static void msg_s(msgbuf_t *m, const char *s)
{
    while (*s && m->n < sizeof m->b - 1)
        m->b[m->n++] = *s++;
}

static void msg_u(msgbuf_t *m, uint64_t v, int base)
{
    if (m->n + 24 < sizeof m->b) {
        if (base == 16)
            msg_s(m, "0x");
        m->n += fmt_u64(m->b + m->n, v, base);
    }
}

/* Writes the overflow message for `co` (NULL-safe) and aborts. */
static void __attribute__((noreturn))
overflow_abort(const at__coro_t *co, const void *fault, const at__stack_t *st, const char *how)
{
    msgbuf_t m = {.n = 0};
    char name[sizeof co->name + 1];
    uint64_t id = 0;
    if (co && co->magic == CORO_MAGIC) {
        memcpy(name, co->name, sizeof co->name);
        name[sizeof co->name] = '\0';
        id = co->id;
    } else {
        strcpy(name, "?");
    }
    msg_s(&m, "asynctop: stack overflow in task '");
    msg_s(&m, name);
    msg_s(&m, "' (id ");
    msg_u(&m, id, 10);
    msg_s(&m, "): ");
    msg_s(&m, how);
    if (fault) {
        msg_s(&m, " at ");
        msg_u(&m, (uintptr_t)fault, 16);
    }
    msg_s(&m, "; its stack is ");
    msg_u(&m, (uint64_t)(st->hi - st->lo), 10);
    msg_s(&m, " bytes [");
    msg_u(&m, (uintptr_t)st->lo, 16);
    msg_s(&m, ", ");
    msg_u(&m, (uintptr_t)st->hi, 16);
    msg_s(&m, "). Give the task a bigger stack (stack_size) or make it recurse less. Aborting.\n");
    ssize_t unused = write(STDERR_FILENO, m.b, m.n);
    (void)unused;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGABRT, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGABRT);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    abort();
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    at__stack_fault_t f;
    if (at__stack_lookup(si->si_addr, &f) && f.in_guard) {
        at__stack_t st = {.lo = f.stack_lo, .hi = f.stack_hi};
        overflow_abort(ctl_of_stack_hi(f.stack_hi), si->si_addr, &st,
                       "it ran into the guard below its stack");
    }
    /* Not ours: hand the fault to whoever had SIGSEGV before us. */
    if ((old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_sigaction) {
        old_segv.sa_sigaction(sig, si, uctx);
        return;
    }
    if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
        old_segv.sa_handler(sig);
        return;
    }
    /* Default action: restore it and return; the fault repeats and kills. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &dfl, NULL);
}

/* Serialises the check-and-install of the SIGSEGV handler. fork() (rank AT__FORK_CORO_SIGNAL,
 * loopmon.h): a child's first coroutine takes it. */
static pthread_mutex_t segv_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((constructor)) static void segv_fork_register(void)
{
    at__fork_register_mutex(AT__FORK_CORO_SIGNAL, &segv_lock);
}

/* Makes sure this thread can take SIGSEGV on a stack that is not the
 * overflowed one, and that the handler is installed. The handler is checked
 * (and put back if someone replaced it) on a thread's first coroutine and
 * whenever the pool maps a new chunk, so a program or test framework that
 * installs its own SIGSEGV handler later still gets overflow reports for the
 * stacks created after that; faults that are not overflows are passed on to
 * the handler we found. */
static void overflow_reporter_init(void)
{
    static __thread size_t seen_generation __attribute__((tls_model("initial-exec"))) = (size_t)-1;
    size_t gen = at__stack_pool_generation();
    if (altstack_done && gen == seen_generation)
        return;
    seen_generation = gen;
    if (!altstack_done) {
        stack_t old;
        if (sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_DISABLE)) {
            size_t sz = 64 * 1024;
            void *p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p != MAP_FAILED) {
                stack_t ss = {.ss_sp = p, .ss_size = sz, .ss_flags = 0};
                if (sigaltstack(&ss, NULL) != 0)
                    munmap(p, sz);
            }
        }
        altstack_done = true;
    }
    pthread_mutex_lock(&segv_lock);
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 &&
        !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == segv_handler)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = segv_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
    }
    pthread_mutex_unlock(&segv_lock);
}

/* ---- switching ---------------------------------------------------------- */

bool at__coro_have_asm(void)
{
#ifdef AT_HAVE_ASM
    return true;
#else
    return false;
#endif
}

at__coro_backend_t at__coro_default_backend(void)
{
    static at__coro_backend_t chosen;
    if (chosen == AT__CORO_DEFAULT) {
        at__coro_backend_t b = AT_CORO_DEFAULT_UCONTEXT ? AT__CORO_UCONTEXT : AT__CORO_ASM;
        const char *env = getenv("ASYNCTOP_CORO_SWITCH");
        if (env && strcmp(env, "ucontext") == 0)
            b = AT__CORO_UCONTEXT;
        else if (env && strcmp(env, "asm") == 0)
            b = AT__CORO_ASM;
        if (!at__coro_have_asm())
            b = AT__CORO_UCONTEXT;
        chosen = b;
    }
    return chosen;
}

void at__coro_set_switch_hook(at__coro_switch_hook_fn hook)
{
    atomic_store_explicit(&switch_hook, hook, memory_order_relaxed);
}

static inline void run_switch_hook(const at__coro_t *to)
{
    at__coro_switch_hook_fn hook = atomic_load_explicit(&switch_hook, memory_order_relaxed);
    if (hook) {
        const void *lo = NULL, *hi = NULL;
        if (to)
            at__coro_stack_bounds(to, &lo, &hi);
        hook(lo, hi);
    }
}

/* Switch from the running context to `co` (resume) or back (yield). */
static inline void switch_into(at__coro_t *co)
{
#ifdef AT_HAVE_ASM
    if (co->backend == AT__CORO_ASM) {
        at__coro_switch_asm(&co->caller_sp, co->sp);
        return;
    }
#endif
    ucontext_t here;
    co->caller_uc = &here;
    swapcontext(&here, co->uc);
}

static inline void switch_out(at__coro_t *co)
{
#ifdef AT_HAVE_ASM
    if (co->backend == AT__CORO_ASM) {
        at__coro_switch_asm(&co->sp, co->caller_sp);
        return;
    }
#endif
    swapcontext(co->uc, co->caller_uc);
}

AT__AWAIT_TEXT void at__coro_entry(at__coro_t *co)
{
#ifdef AT_ASAN
    __sanitizer_finish_switch_fiber(NULL, &co->caller_stack_lo, &co->caller_stack_size);
#endif
    co->fn(co->arg);
    co->state = AT__CORO_DONE;
    co->low_water = __builtin_frame_address(0);
#ifdef AT_ASAN
    /* NULL: this fiber is dying, ASan may drop its fake stack. */
    __sanitizer_start_switch_fiber(NULL, co->caller_stack_lo, co->caller_stack_size);
#endif
#ifdef AT_TSAN
    __tsan_switch_to_fiber(co->tsan_caller_fiber, 0); /* destroyed with the coroutine */
#endif
    switch_out(co);
    __builtin_unreachable();
}

#ifdef AT_HAVE_ASM
static void initial_frame_asm(at__coro_t *co, char *top)
{
    uintptr_t *sp = (uintptr_t *)((uintptr_t)top & ~(uintptr_t)15);
#if defined(__x86_64__)
    /* Popped by at__coro_switch_asm: mxcsr+fpcw, r15, r14, r13, r12, rbx,
     * rbp, then `ret` to the trampoline with rsp 16-byte aligned. */
    *--sp = (uintptr_t)at__coro_trampoline_asm;
    *--sp = 0;                 /* rbp: ends frame-pointer walks */
    *--sp = (uintptr_t)co;     /* rbx: the trampoline's argument */
    *--sp = 0;                 /* r12 */
    *--sp = 0;                 /* r13 */
    *--sp = 0;                 /* r14 */
    *--sp = 0;                 /* r15 */
    *--sp = 0x037f00001f80ULL; /* mxcsr default, x87 control word default */
#elif defined(__aarch64__)
    sp -= 176 / sizeof(uintptr_t);
    memset(sp, 0, 176);
    sp[0] = (uintptr_t)co;                       /* x19: the trampoline's argument */
    sp[10] = 0;                                  /* x29: ends frame-pointer walks */
    sp[11] = (uintptr_t)at__coro_trampoline_asm; /* x30 */
#endif
    co->sp = sp;
}
#endif

static void uc_trampoline(unsigned hi, unsigned lo)
{
    at__coro_entry((at__coro_t *)(((uintptr_t)hi << 32) | lo));
}

int at__coro_create(at__coro_t **out, at__coro_fn fn, void *arg, const at__coro_opts_t *opts)
{
    assert(out && fn);
    at__coro_opts_t none = {0};
    if (!opts)
        opts = &none;
    at__coro_backend_t backend = opts->backend ? opts->backend : at__coro_default_backend();
    if (backend != AT__CORO_UCONTEXT && (backend != AT__CORO_ASM || !at__coro_have_asm()))
        return -EINVAL;
    at__stack_t st;
    int rc = at__stack_alloc(opts->stack_size ? opts->stack_size : AT__STACK_DEFAULT, &st);
    if (rc < 0)
        return rc;
    overflow_reporter_init();
    at__coro_t *co = ctl_of_stack_hi(st.hi);
    /* Every field set one by one (a memset of the block compiles to a slow
     * `rep stos` on the spawn path). */
    co->sp = NULL;
    co->caller_sp = NULL;
    co->caller = NULL;
    co->uc = NULL;
    co->caller_uc = NULL;
#ifdef AT_ASAN
    co->caller_stack_lo = NULL;
    co->caller_stack_size = 0;
#endif
    co->fn = fn;
    co->arg = arg;
    co->user = opts->user;
    co->id = opts->id;
    co->stack = st;
    co->magic = CORO_MAGIC;
    co->state = AT__CORO_CREATED;
    co->backend = (uint8_t)backend;
    at__coro_set_name(co, opts->name);
    char *top = (char *)co;
    co->low_water = top;
#ifdef AT_TSAN
    co->tsan_fiber = __tsan_create_fiber(0);
    co->tsan_caller_fiber = NULL;
    __tsan_set_fiber_name(co->tsan_fiber, co->name);
#endif
#ifdef AT_HAVE_ASM
    if (backend == AT__CORO_ASM) {
        initial_frame_asm(co, top);
        *out = co;
        return 0;
    }
#endif
    co->uc = (ucontext_t *)(top - UC_BYTES);
    if (getcontext(co->uc) != 0) {
        int err = -errno;
#ifdef AT_TSAN
        __tsan_destroy_fiber(co->tsan_fiber);
#endif
        at__stack_free(&st, NULL);
        return err;
    }
    co->uc->uc_stack.ss_sp = st.lo;
    co->uc->uc_stack.ss_size = (size_t)((char *)co->uc - st.lo) & ~(size_t)15;
    co->uc->uc_link = NULL;
    uintptr_t p = (uintptr_t)co;
    makecontext(co->uc, (void (*)(void))uc_trampoline, 2, (unsigned)(p >> 32),
                (unsigned)(p & 0xffffffffu));
    *out = co;
    return 0;
}

void at__coro_resume(at__coro_t *co)
{
    assert(co && co->magic == CORO_MAGIC);
    assert(co->state == AT__CORO_CREATED || co->state == AT__CORO_SUSPENDED);
    co->caller = current;
    current = co;
    co->state = AT__CORO_RUNNING;
    run_switch_hook(co);
#ifdef AT_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, co->stack.lo, (size_t)(co->stack.hi - co->stack.lo));
#endif
#ifdef AT_TSAN
    co->tsan_caller_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(co->tsan_fiber, 0);
#endif
    switch_into(co);
#ifdef AT_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    current = co->caller;
    run_switch_hook(current);
    if (co->stack.guard == AT__GUARD_CANARY && !at__stack_canary_ok(&co->stack)) {
        overflow_abort(co, NULL, &co->stack,
                       "the canary at the bottom of its stack was overwritten");
    }
}

AT__AWAIT_TEXT void at__coro_yield(void)
{
    at__coro_t *co = current;
    assert(co && co->state == AT__CORO_RUNNING);
    co->state = AT__CORO_SUSPENDED;
    char *here = __builtin_frame_address(0);
    if (here < co->low_water)
        co->low_water = here;
#ifdef AT_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, co->caller_stack_lo, co->caller_stack_size);
#endif
#ifdef AT_TSAN
    __tsan_switch_to_fiber(co->tsan_caller_fiber, 0);
#endif
    switch_out(co);
#ifdef AT_ASAN
    __sanitizer_finish_switch_fiber(fake, &co->caller_stack_lo, &co->caller_stack_size);
#endif
}

at__coro_t *at__coro_current(void)
{
    return current;
}

at__coro_state_t at__coro_state(const at__coro_t *co)
{
    return (at__coro_state_t)co->state;
}

const char *at__coro_name(const at__coro_t *co)
{
    return co->name;
}

void at__coro_set_name(at__coro_t *co, const char *name)
{
    if (!name)
        name = "coro";
    size_t n = strlen(name);
    if (n > sizeof co->name - 1)
        n = sizeof co->name - 1;
    memcpy(co->name, name, n);
    co->name[n] = '\0';
}

uint64_t at__coro_id(const at__coro_t *co)
{
    return co->id;
}

void *at__coro_user(const at__coro_t *co)
{
    return co->user;
}

void at__coro_stack_bounds(const at__coro_t *co, const void **lo, const void **hi)
{
    *lo = co->stack.lo;
    *hi = co->uc ? (const void *)co->uc : (const void *)co;
}

void at__coro_destroy(at__coro_t *co)
{
    assert(co && co->magic == CORO_MAGIC);
    assert(co->state != AT__CORO_RUNNING);
    at__stack_t st = co->stack;
    const void *low = co->low_water;
#ifdef AT_ASAN
    /* Frames still on the stack (a finished coroutine's last ones, or an
     * abandoned one's) keep their redzones poisoned: clear them for reuse. */
    if (co->state != AT__CORO_CREATED)
        __asan_unpoison_memory_region(low, (size_t)(st.hi - (const char *)low));
#endif
    if (st.guard == AT__GUARD_CANARY && !at__stack_canary_ok(&st))
        overflow_abort(co, NULL, &st, "the canary at the bottom of its stack was overwritten");
    co->magic = 0;
#ifdef AT_TSAN
    __tsan_destroy_fiber(co->tsan_fiber); /* (it lives in the control block, on the stack) */
#endif
    at__stack_free(&st, low);
}

/* ---- suspended-stack walk ----------------------------------------------- */

/* Defined by the linker for the section of AT__AWAIT_TEXT functions. */
extern const char __start_at_await_text[] __attribute__((weak, visibility("hidden")));
extern const char __stop_at_await_text[] __attribute__((weak, visibility("hidden")));

bool at__coro_pc_is_await_machinery(uintptr_t pc)
{
    /* pc is a return address: the call it returns from is at pc - 1. */
    return pc - 1 >= (uintptr_t)__start_at_await_text && pc - 1 < (uintptr_t)__stop_at_await_text;
}

/* The coroutine that `co` resumed, if `co` is RUNNING but not the innermost coroutine of this
 * thread (it resumed one that runs now, or that resumed another): found up the chain of
 * resumers from the current one. NULL otherwise (and on any other thread than co's). */
static const at__coro_t *resumed_by(const at__coro_t *co)
{
    for (const at__coro_t *c = current; c; c = c->caller)
        if (c->caller == co)
            return c;
    return NULL;
}

/* The registers co's switch away saved, DWARF-numbered for at__unwind, and where its stack
 * then began: the state just after the switch function returns into co. */
static void saved_regs(uint8_t backend, const void *saved_sp, const ucontext_t *saved_uc,
                       at__unwind_regs_t *r)
{
    memset(r, 0, sizeof *r);
    if (backend == AT__CORO_ASM) {
        const uintptr_t *sp = saved_sp;
#if defined(__x86_64__)
        /* +8 r15 +16 r14 +24 r13 +32 r12 +40 rbx +48 rbp +56 return address */
        r->r[15] = sp[1];
        r->r[14] = sp[2];
        r->r[13] = sp[3];
        r->r[12] = sp[4];
        r->r[3] = sp[5];
        r->r[6] = sp[6];
        r->r[7] = (uintptr_t)(sp + 8);
        r->pc = r->r[16] = sp[7];
#elif defined(__aarch64__)
        for (int i = 0; i < 10; i++) /* x19-x28 */
            r->r[19 + i] = sp[i];
        r->r[29] = sp[10];
        r->r[30] = sp[11];
        r->r[31] = (uintptr_t)sp + 176;
        r->pc = sp[11];
#endif
    } else {
        at__unwind_regs_from_ucontext(saved_uc, r);
    }
}

__attribute__((no_sanitize_address)) int at__coro_backtrace(const at__coro_t *co, uintptr_t *pcs,
                                                            int max)
{
    if (max <= 0)
        return 0;
    /* Where co's registers were saved: by its own yield (suspended), or by its resume of
     * another coroutine (then that one keeps them, as its resumer's). */
    const void *saved_sp;
    const ucontext_t *saved_uc;
    uint8_t backend;
    if (co->state == AT__CORO_SUSPENDED) {
        saved_sp = co->sp;
        saved_uc = co->uc;
        backend = co->backend;
    } else if (co->state == AT__CORO_RUNNING && co != current) {
        const at__coro_t *inner = resumed_by(co);
        if (!inner)
            return 0;
        saved_sp = inner->caller_sp;
        saved_uc = inner->caller_uc;
        backend = inner->backend;
    } else {
        return 0;
    }
    uintptr_t lo = (uintptr_t)co->stack.lo;
    uintptr_t hi = (uintptr_t)co->stack.hi;
    uintptr_t pc, fp;
    if (backend == AT__CORO_ASM) {
        const uintptr_t *sp = saved_sp;
#if defined(__x86_64__)
        fp = sp[6];
        pc = sp[7];
#elif defined(__aarch64__)
        fp = sp[10];
        pc = sp[11];
#else
        return 0;
#endif
    } else {
#if defined(__x86_64__)
        fp = (uintptr_t)saved_uc->uc_mcontext.gregs[REG_RBP];
        pc = (uintptr_t)saved_uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
        fp = (uintptr_t)saved_uc->uc_mcontext.regs[29];
        pc = (uintptr_t)saved_uc->uc_mcontext.pc;
#else
        return 0;
#endif
    }
    int n = 0;
    pcs[n++] = pc;
    while (n < max && fp != 0) {
        if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) || (fp & (sizeof(uintptr_t) - 1)))
            break;
        const uintptr_t *frame = (const uintptr_t *)fp;
        uintptr_t ra = frame[1];
        if (ra == 0)
            break;
        pcs[n++] = ra;
        uintptr_t next = frame[0];
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

/* co's saved state, as at__coro_backtrace finds it; false when co has none to walk. */
static bool saved_state(const at__coro_t *co, at__unwind_regs_t *r)
{
    if (co->state == AT__CORO_SUSPENDED) {
        saved_regs(co->backend, co->sp, co->uc, r);
        return true;
    }
    if (co->state == AT__CORO_RUNNING && co != current) {
        const at__coro_t *inner = resumed_by(co);
        if (inner) {
            saved_regs(inner->backend, inner->caller_sp, inner->caller_uc, r);
            return true;
        }
    }
    return false;
}

int at__coro_unwind(const at__coro_t *co, uintptr_t *pcs, int max)
{
    int nfp = at__coro_backtrace(co, pcs, max);
    at__unwind_regs_t r;
    if (nfp <= 0 || !saved_state(co, &r))
        return nfp;
    uintptr_t sp = r.r[AT__UNWIND_NREGS == 17 ? 7 : 31];
    uintptr_t lo = (uintptr_t)co->stack.lo, hi = (uintptr_t)co->stack.hi;
    if (sp < lo || sp >= hi)
        return nfp;
    /* The stack cannot change meanwhile (co is not running, and only this thread could run
     * it): unwound in place. Another thread unwinding holds the unwinder: keep the walk. */
    uintptr_t cfi[128];
    int want = max < 128 ? max : 128;
    int n = at__unwind(&r, sp, hi, (const void *)sp, cfi, want, false, NULL);
    if (n < nfp)
        return nfp;
    memcpy(pcs, cfi, (size_t)n * sizeof *pcs);
    return n;
}
