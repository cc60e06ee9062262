/* coro.h: stackful coroutines, the engine under tasks (internal, one thread). */
#ifndef AT_TASKS_CORO_H
#define AT_TASKS_CORO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A coroutine: a function running on its own pooled stack that can suspend
 * (at__coro_yield) and be resumed (at__coro_resume). Coroutines are
 * asymmetric: yield always returns to whoever resumed. The control block
 * lives at the top of the coroutine's own stack, next to its first frames,
 * so a shallow suspended coroutine occupies a single resident page.
 *
 * Threads: a coroutine belongs to the thread that created it; every call
 * below must be made on that thread, except at__coro_backtrace, which
 * another thread may call while the owner guarantees the coroutine stays
 * suspended (e.g. the owner is blocked waiting for the caller). */
typedef struct at__coro at__coro_t;

typedef void (*at__coro_fn)(void *arg);

typedef enum at__coro_state {
    AT__CORO_CREATED = 0, /* never resumed */
    AT__CORO_RUNNING,     /* on its stack now (it, or a coroutine it resumed) */
    AT__CORO_SUSPENDED,   /* yielded, waiting to be resumed */
    AT__CORO_DONE,        /* its function returned */
} at__coro_state_t;

/* How a switch is done. ASM is the hand-written switch (x86_64, aarch64);
 * UCONTEXT uses swapcontext (any POSIX system; a system call per switch). */
typedef enum at__coro_backend {
    AT__CORO_DEFAULT = 0,
    AT__CORO_ASM = 1,
    AT__CORO_UCONTEXT = 2,
} at__coro_backend_t;

typedef struct at__coro_opts {
    size_t stack_size;          /* 0: AT__STACK_DEFAULT (256 KiB, pooled) */
    const char *name;           /* copied (truncated to 47 bytes); NULL: "coro" */
    at__coro_backend_t backend; /* AT__CORO_DEFAULT: the build's default */
    uint64_t id;                /* owner's id for messages (task id) */
    void *user;                 /* owner's pointer, see at__coro_user() */
} at__coro_opts_t;

/* The build's default backend (meson option coro_switch; ASYNCTOP_CORO_SWITCH
 * =asm|ucontext overrides at run time where both exist). */
at__coro_backend_t at__coro_default_backend(void);

/* True if this build has the assembly switch for this architecture. */
bool at__coro_have_asm(void);

/* Creates a coroutine that will run fn(arg) on a fresh stack from the pool.
 * Nothing runs until the first at__coro_resume. The first creation on a
 * thread also installs the stack-overflow reporter (a SIGSEGV handler on an
 * alternate signal stack; other faults are passed on to the previous
 * handler). Returns 0, -EINVAL (unknown backend or one this build lacks), or
 * -ENOMEM (no address space, or no guardable stack, see stack_pool.h). */
int at__coro_create(at__coro_t **out, at__coro_fn fn, void *arg, const at__coro_opts_t *opts);

/* Runs `co` until it yields or its function returns. Precondition: `co` is
 * CREATED or SUSPENDED, owned by this thread. May be called from inside
 * another coroutine (the resumer is suspended meanwhile and gets control
 * back). An overflow detected by canary (canary mode only) aborts here. */
void at__coro_resume(at__coro_t *co);

/* Suspends the running coroutine and returns to its resumer; returns when
 * it is resumed again. Precondition: called inside a coroutine. */
void at__coro_yield(void);

/* The coroutine running on this thread, or NULL on the thread's own stack. */
at__coro_t *at__coro_current(void);

at__coro_state_t at__coro_state(const at__coro_t *co);
const char *at__coro_name(const at__coro_t *co);
void at__coro_set_name(at__coro_t *co, const char *name);
uint64_t at__coro_id(const at__coro_t *co);
void *at__coro_user(const at__coro_t *co);

/* Releases a coroutine that is not running: DONE, CREATED, or SUSPENDED (then
 * it is abandoned: its frames are discarded without unwinding, so whatever
 * they held is leaked — the task layer reports this as a task destroyed while
 * pending). The stack goes back to the pool (see at__stack_free). */
void at__coro_destroy(at__coro_t *co);

/* The usable stack of `co`: [*lo, *hi). */
void at__coro_stack_bounds(const at__coro_t *co, const void **lo, const void **hi);

/* Walks the saved frame pointers of a SUSPENDED coroutine and stores up to
 * `max` return addresses, innermost first (the first is inside the runtime's
 * yield). Also of a RUNNING coroutine that is not the innermost one (it
 * resumed another coroutine, which runs now or resumed a third): then the walk
 * starts where its resume switched away (the first address is inside
 * at__coro_resume); on co's own thread only (elsewhere it returns 0). The walk
 * never leaves the coroutine's own stack: a frame pointer outside [lo, hi),
 * misaligned, or not strictly increasing ends it. Returns the number stored (0
 * if the coroutine is neither). No allocation, no locks; safe from another
 * thread under the condition in the header note. */
int at__coro_backtrace(const at__coro_t *co, uintptr_t *pcs, int max);

/* The same stack as at__coro_backtrace, right also where frames have no frame pointer (code
 * built -O2 without -fno-omit-frame-pointer: most programs and libraries): the saved
 * registers are unwound with the DWARF call-frame information (at__unwind, in place on co's
 * stack), and the frame-pointer walk is kept when it finds more frames (code without CFI)
 * or when another thread is unwinding (never waits for it). On co's thread only (co must
 * not resume meanwhile). Not async-signal-safe; microseconds once warm, ~ms the first time
 * (modules' CFI read). Returns the number stored. */
int at__coro_unwind(const at__coro_t *co, uintptr_t *pcs, int max);

/* Functions that sit on a suspended task's stack between the application's
 * frames and the switch (the await machinery, the entry trampolines) live in
 * their own text section, so suspension stacks can leave them out by address,
 * whether libasynctop is a shared library or linked statically. */
#define AT__AWAIT_TEXT __attribute__((section("at_await_text"), noinline))

/* True if `pc` (a return address) is in that section. Async-signal-safe. */
bool at__coro_pc_is_await_machinery(uintptr_t pc);

/* Called on every switch with the bounds of the stack being switched to:
 * a coroutine's [lo, hi), or (NULL, NULL) for the thread's own stack. The
 * task layer points it at loopmon's thread-local "current stack bounds".
 * Set once, before the first coroutine is created; NULL disables. */
typedef void (*at__coro_switch_hook_fn)(const void *lo, const void *hi);
void at__coro_set_switch_hook(at__coro_switch_hook_fn hook);

#endif
