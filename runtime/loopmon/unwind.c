/* unwind.c: DWARF call-frame-information (.eh_frame) unwinding of a stack snapshot of the own
 * process with libdw's unwinder, for code built without frame pointers; off the hot path. */
#include "loopmon.h"

#include <elfutils/libdwfl.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

/* One Dwfl for unwinding, separate from sym.c's (its lock is held for whole symbolisations;
 * an unwind takes microseconds once warm). Its modules' CFI is parsed once and cached by
 * libdw; the module list is re-read when a pc lies in no known module (a dlopen). */
static pthread_mutex_t unw_lock = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *unw_dwfl; /* under unw_lock */

/* The request being unwound: read by the callbacks, which libdw calls under unw_lock. */
typedef struct unw_req {
    const at__unwind_regs_t *regs;
    uintptr_t lo, hi;  /* the addresses the snapshot covers */
    const char *bytes; /* their contents (== lo for a live stack) */
    uintptr_t *pcs;
    int n, max;
    uintptr_t last_sp; /* the stack pointer of the last frame reached (0 = unknown) */
} unw_req_t;
static unw_req_t *unw_cur; /* under unw_lock */

/* The stack pointer's DWARF register number (x86-64: rsp 7, of rax rdx rcx rbx rsi rdi rbp rsp
 * r8..r15 and the return address 16; AArch64: sp 31, after x0..x30). Other architectures get
 * no CFI unwinding: at__unwind returns 0 and the callers keep their frame-pointer walks. */
#if defined(__x86_64__)
#define UNW_SP_REG 7
#elif defined(__aarch64__)
#define UNW_SP_REG 31
#endif

static char *debuginfo_path;
static const Dwfl_Callbacks unw_cbs = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

static bool cb_get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_arg)
{
    (void)dwfl, (void)tid, (void)arg;
    *thread_arg = unw_cur;
    return true;
}

static pid_t cb_next_thread(Dwfl *dwfl, void *arg, void **thread_arg)
{
    (void)dwfl, (void)arg, (void)thread_arg;
    return 0; /* only get_thread is used */
}

/* Only the snapshot is readable: an address outside it stops the unwind there (never a
 * fault on a wild CFI-computed address). ASan: a live coroutine stack holds redzones. */
__attribute__((no_sanitize("address"))) static bool cb_memory_read(Dwfl *dwfl, Dwarf_Addr addr,
                                                                   Dwarf_Word *result, void *arg)
{
    (void)dwfl, (void)arg;
    const unw_req_t *r = unw_cur;
    if (addr < r->lo || addr > r->hi - sizeof(Dwarf_Word) || r->hi < r->lo + sizeof(Dwarf_Word))
        return false;
    const volatile char *p = r->bytes + (addr - r->lo);
    Dwarf_Word w = 0;
    for (size_t i = 0; i < sizeof w; i++)
        w |= (Dwarf_Word)(unsigned char)p[i] << (8 * i);
    *result = w;
    return true;
}

static bool cb_set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
    const unw_req_t *r = thread_arg;
    Dwarf_Word regs[AT__UNWIND_NREGS];
    for (int i = 0; i < AT__UNWIND_NREGS; i++)
        regs[i] = r->regs->r[i];
    if (!dwfl_thread_state_registers(thread, 0, AT__UNWIND_NREGS, regs))
        return false;
    dwfl_thread_state_register_pc(thread, r->regs->pc);
    return true;
}

static const Dwfl_Thread_Callbacks unw_thread_cbs = {
    .next_thread = cb_next_thread,
    .get_thread = cb_get_thread,
    .memory_read = cb_memory_read,
    .set_initial_registers = cb_set_initial_registers,
};

static int cb_frame(Dwfl_Frame *frame, void *arg)
{
    unw_req_t *r = arg;
    Dwarf_Addr pc;
    bool activation;
    if (!dwfl_frame_pc(frame, &pc, &activation) || pc == 0)
        return DWARF_CB_ABORT;
    r->pcs[r->n++] = (uintptr_t)pc;
    Dwarf_Word sp;
#ifdef UNW_SP_REG
    r->last_sp = dwfl_frame_reg(frame, UNW_SP_REG, &sp) == 0 ? sp : 0;
#else
    r->last_sp = 0, (void)sp;
#endif
    return r->n < r->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}

/* A fresh Dwfl with the process's current modules and the unwinder attached. Under unw_lock. */
static int unw_open(void)
{
    if (unw_dwfl) {
        dwfl_end(unw_dwfl);
        unw_dwfl = NULL;
    }
    Dwfl *d = dwfl_begin(&unw_cbs);
    if (!d)
        return -ENOMEM;
    dwfl_report_begin(d);
    int rc = dwfl_linux_proc_report(d, getpid());
    dwfl_report_end(d, NULL, NULL);
    if (rc != 0 || !dwfl_attach_state(d, NULL, getpid(), &unw_thread_cbs, NULL)) {
        dwfl_end(d);
        return -EIO;
    }
    unw_dwfl = d;
    return 0;
}

/* fork() (rank AT__FORK_UNWIND): the child must not inherit unw_lock held by the exporter. */
__attribute__((constructor)) static void fork_register(void)
{
    at__fork_register_mutex(AT__FORK_UNWIND, &unw_lock);
}

static int unwind_locked(unw_req_t *r)
{
    if (!unw_dwfl || !dwfl_addrmodule(unw_dwfl, r->regs->pc)) {
        /* First use, or a module loaded since: read the module list again (once per call). */
        int rc = unw_open();
        if (rc != 0)
            return rc;
    }
    unw_cur = r;
    /* Ends with -1 when it stops at a frame it cannot unwind (the outermost one, a pc without
     * CFI, a read outside the snapshot): the frames before it are good. */
    (void)dwfl_getthread_frames(unw_dwfl, getpid(), cb_frame, r);
    unw_cur = NULL;
    return r->n;
}

int at__unwind(const at__unwind_regs_t *regs, uintptr_t lo, uintptr_t hi, const void *bytes,
               uintptr_t *pcs, int max, bool wait, uintptr_t *last_sp)
{
    if (last_sp)
        *last_sp = 0;
#ifndef UNW_SP_REG
    (void)regs, (void)lo, (void)hi, (void)bytes, (void)pcs, (void)max, (void)wait;
    return 0;
#else
    if (max <= 0 || hi < lo)
        return 0;
    unw_req_t r = {regs, lo, hi, bytes, pcs, 0, max, 0};
    if (wait)
        pthread_mutex_lock(&unw_lock);
    else if (pthread_mutex_trylock(&unw_lock) != 0)
        return -EBUSY;
    int rc = unwind_locked(&r);
    pthread_mutex_unlock(&unw_lock);
    if (last_sp)
        *last_sp = r.last_sp;
    return rc;
#endif
}

void at__unwind_reset(void)
{
    pthread_mutex_lock(&unw_lock);
    if (unw_dwfl)
        dwfl_end(unw_dwfl);
    unw_dwfl = NULL;
    pthread_mutex_unlock(&unw_lock);
}

void at__unwind_regs_from_ucontext(const ucontext_t *uc, at__unwind_regs_t *out)
{
    memset(out, 0, sizeof *out);
#if defined(__x86_64__)
    const greg_t *g = uc->uc_mcontext.gregs;
    static const int map[16] = {REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI,
                                REG_RBP, REG_RSP, REG_R8,  REG_R9,  REG_R10, REG_R11,
                                REG_R12, REG_R13, REG_R14, REG_R15};
    for (int i = 0; i < 16; i++)
        out->r[i] = (uintptr_t)g[map[i]];
    out->pc = (uintptr_t)g[REG_RIP];
    out->r[16] = out->pc;
#elif defined(__aarch64__)
    for (int i = 0; i < 31; i++)
        out->r[i] = (uintptr_t)uc->uc_mcontext.regs[i];
    out->r[31] = (uintptr_t)uc->uc_mcontext.sp;
    out->pc = (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
#endif
}
