/* export_sample.c: sampling a loop thread's stack from the exporter thread — a running thread
 * gets a real-time signal whose handler walks frame pointers (async-signal-safe, bounded by the
 * stack's known bounds) into a preallocated buffer; a thread blocked in a system call is never
 * signalled (that would cut its sleep or poll short with EINTR): its stack is read from outside,
 * from the user sp and pc in /proc/self/task/TID/syscall (docs/exporter.md). */
#include "export_int.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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
static bool g_syscall_site; /* g_pcs[0] is a blocked thread's system call site */
static _Atomic int g_installed;

/* For the CFI unwind on the exporter thread (perf --call-graph=dwarf's way): the registers
 * and a copy of the top of the stack, taken by the handler (or by sample_blocked) into these
 * preallocated buffers; g_snap_len 0 = none. Owned like g_pcs by whoever holds the slot. */
#define SNAP_BYTES (32 * 1024)
static at__unwind_regs_t g_regs;
static uintptr_t g_snap[SNAP_BYTES / sizeof(uintptr_t)];
static uintptr_t g_snap_lo;
static size_t g_snap_len;

#if defined(__aarch64__)
#define SP_REG 31
#define FP_REG 29
#else
#define SP_REG 7
#define FP_REG 6
#endif

/* Copies the interrupted thread's stack [sp, sp + len) word by word: the handler runs on that
 * thread, whose stack is mapped there; not instrumented (ASan's redzones lie in it). */
__attribute__((no_sanitize("address", "thread"))) static void snap_copy(uintptr_t sp, size_t len)
{
    const volatile uintptr_t *p = (const volatile uintptr_t *)sp;
    for (size_t i = 0; i < len / sizeof(uintptr_t); i++)
        g_snap[i] = p[i];
    g_snap_lo = sp;
    g_snap_len = len & ~(sizeof(uintptr_t) - 1);
}

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
    /* Registers and the top of the stack, for the CFI unwind (frames without frame pointers)
     * the exporter makes of them: bounded by the stack sp is on. */
    at__unwind_regs_from_ucontext(uc, &g_regs);
    uintptr_t sp = g_regs.r[SP_REG];
    uintptr_t slo = at__stack_bounds.lo, shi = at__stack_bounds.hi;
    if (slo == 0 || sp < slo || sp >= shi) {
        slo = g_lo;
        shi = g_hi;
    }
    if (slo != 0 && sp >= slo && sp < shi && (sp & (sizeof(uintptr_t) - 1)) == 0)
        snap_copy(sp, shi - sp < SNAP_BYTES ? shi - sp : SNAP_BYTES);
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

void at__export_sample_atfork_child(void)
{
    /* signals pending for the parent's threads are not the child's (fork(2)): no handler can
     * be writing into the slot */
    atomic_store(&g_tid, 0);
    atomic_store(&g_state, S_IDLE);
}

/* ---- a blocked thread, sampled from outside --------------------------------------------------
 * Everything below runs on the exporter thread only, and reads the other thread's stack, which
 * may wake and change under us, with process_vm_readv on our own pid: an unmapped or guard
 * page costs an EFAULT, never a fault, and no sanitizer sees a racy load. Every value read is
 * untrusted: frames must stay inside the stack's bounds and return addresses must lie in an
 * executable mapping; every loop is bounded. */

#define SCAN_BYTES (64 * 1024) /* how far above sp the first frame record is looked for */
#define CAND_MAX   256         /* candidate frame records considered */
#define LEAF_MAX   8           /* return addresses kept between sp and that record */
#define EXEC_MAX   2048        /* executable mappings remembered */
#define FUNC_MAX   (64 * 1024) /* a function larger than this is not recognised by its call */

static unsigned char g_win[SCAN_BYTES]; /* a copy of [g_win_lo, g_win_lo + g_win_len) */
static uintptr_t g_win_lo;
static size_t g_win_len;
static struct {
    uintptr_t lo, hi;
} g_exec[EXEC_MAX];
static int g_nexec;
static uintptr_t g_cand[CAND_MAX], g_cand_next[CAND_MAX];

static bool read_mem(uintptr_t addr, void *out, size_t n)
{
    struct iovec local = {out, n}, remote = {(void *)addr, n};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n;
}

static bool stack_word(uintptr_t addr, uintptr_t *out)
{
    if (addr >= g_win_lo && addr - g_win_lo + sizeof *out <= g_win_len) {
        memcpy(out, g_win + (addr - g_win_lo), sizeof *out);
        return true;
    }
    return read_mem(addr, out, sizeof *out);
}

/* Reads a small /proc file into buf (NUL-terminated); its length or -errno. */
static ssize_t read_proc(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return n;
}

/* The thread's state letter (stat field 3: R running, S/D blocked, ...), or 0 if unknown. */
static char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    if (read_proc(path, buf, sizeof buf) <= 0)
        return 0;
    char *paren = strrchr(buf, ')'); /* the command name may itself contain ')' */
    return paren && paren[1] == ' ' ? paren[2] : 0;
}

char at__export_sample_thread_state(pid_t tid)
{
    return thread_state(tid);
}

/* The thread's context switches so far (voluntary and involuntary, /proc/self/task/TID/status),
 * or -1 if unknown. A thread that ran between two reads and is blocked again at the second
 * switched out in between: the count moved. */
static long long ctxt_switches(pid_t tid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    if (read_proc(path, buf, sizeof buf) <= 0)
        return -1;
    const char *v = strstr(buf, "\nvoluntary_ctxt_switches:");
    const char *nv = strstr(buf, "\nnonvoluntary_ctxt_switches:");
    if (v == NULL || nv == NULL)
        return -1;
    char *end;
    errno = 0;
    long long a = strtoll(v + strlen("\nvoluntary_ctxt_switches:"), &end, 10);
    long long b = strtoll(nv + strlen("\nnonvoluntary_ctxt_switches:"), &end, 10);
    return errno == 0 && a >= 0 && b >= 0 ? a + b : -1;
}

/* The executable mappings, from /proc/self/maps (read afresh for every sample: libraries come
 * and go). false if it cannot be read. */
static bool load_exec_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return false;
    char line[512];
    g_nexec = 0;
    while (g_nexec < EXEC_MAX && fgets(line, sizeof line, f)) {
        /* "lo-hi perms ...", hex addresses */
        char *end;
        unsigned long lo = strtoul(line, &end, 16), hi = 0;
        bool ok = *end == '-';
        if (ok) {
            char *p = end + 1;
            hi = strtoul(p, &end, 16);
            ok = end != p && end[0] == ' ' && end[1] != '\0' && end[2] != '\0' && end[3] != '\0';
        }
        if (ok && end[3] == 'x') {
            g_exec[g_nexec].lo = lo;
            g_exec[g_nexec].hi = hi;
            g_nexec++;
        }
        /* a line longer than the buffer: skip its rest */
        while (!strchr(line, '\n') && fgets(line, sizeof line, f))
            ;
    }
    fclose(f);
    return g_nexec > 0;
}

/* The index of the executable mapping holding a, or -1. */
static int map_of(uintptr_t a)
{
    for (int i = 0; i < g_nexec; i++)
        if (a >= g_exec[i].lo && a < g_exec[i].hi)
            return i;
    return -1;
}

static bool is_exec(uintptr_t a)
{
    for (int i = 0; i < g_nexec; i++)
        if (a >= g_exec[i].lo && a < g_exec[i].hi)
            return true;
    return false;
}

/* Whether `ret` looks like a return address: in an executable mapping, and (where the
 * instruction set lets us tell) just after a call instruction. */
static bool is_ret(uintptr_t ret)
{
    if (ret < 4096 || !is_exec(ret) || !is_exec(ret - 1))
        return false;
#if defined(__x86_64__)
    unsigned char b[8];
    if (!is_exec(ret - sizeof b) || !read_mem(ret - sizeof b, b, sizeof b))
        return true; /* cannot read the code: trust the mapping */
    if (b[3] == 0xE8)
        return true;             /* call rel32 */
    for (int k = 2; k <= 7; k++) /* call r/m64: FF /2, with a ModRM of k-1 bytes at most */
        if (b[8 - k] == 0xFF && ((b[8 - k + 1] >> 3) & 7) == 2)
            return true;
    return false;
#elif defined(__aarch64__)
    uint32_t insn;
    if (!read_mem(ret - 4, &insn, sizeof insn))
        return true;
    return (insn & 0xFC000000u) == 0x94000000u /* bl */ ||
           (insn & 0xFFFFFC1Fu) == 0xD63F0000u /* blr */;
#else
    return true;
#endif
}

/* The target of a direct call that returns to `ret` (call rel32, bl): true and *target. A call
 * to an x86-64 PLT stub targets what the stub's GOT slot holds (the function the dynamic
 * linker bound, an interposed one included: libuv's call to epoll_wait reaches the shim's). */
static bool call_target(uintptr_t ret, uintptr_t *target)
{
#if defined(__x86_64__)
    unsigned char b[5];
    int32_t rel;
    if (!is_exec(ret - 5) || !read_mem(ret - 5, b, sizeof b) || b[0] != 0xE8)
        return false;
    memcpy(&rel, b + 1, sizeof rel);
    *target = ret + (uintptr_t)(intptr_t)rel;
    /* a PLT stub: jmp *disp32(%rip), maybe after endbr64 and bnd */
    unsigned char p[12];
    if (!is_exec(*target) || !read_mem(*target, p, sizeof p))
        return false;
    size_t k = 0;
    if (p[0] == 0xF3 && p[1] == 0x0F && p[2] == 0x1E && p[3] == 0xFA)
        k += 4;
    if (p[k] == 0xF2)
        k++;
    if (p[k] == 0xFF && p[k + 1] == 0x25) {
        int32_t disp;
        uintptr_t slot;
        memcpy(&disp, p + k + 2, sizeof disp);
        /* a slot not bound yet (lazy binding) points back into the stub: no target known */
        if (!read_mem(*target + k + 6 + (uintptr_t)(intptr_t)disp, &slot, sizeof slot) ||
            !is_exec(slot) || (slot >= *target && slot - *target < 16))
            return false;
        *target = slot;
    }
    return true;
#elif defined(__aarch64__)
    uint32_t insn;
    if (!read_mem(ret - 4, &insn, sizeof insn) || (insn & 0xFC000000u) != 0x94000000u)
        return false;
    int32_t imm = (int32_t)(insn << 6) >> 6;
    *target = ret - 4 + (uintptr_t)((intptr_t)imm * 4);
    return true;
#else
    (void)ret;
    (void)target;
    return false;
#endif
}

/* Whether the frame record at `a` is that of the function `inner` is in, judged by the direct
 * call before its return address: 1 yes, -1 no (a call to another function of the same
 * mapping), 0 cannot tell (an indirect call, a PLT stub, another mapping). */
static int direct_call_verdict(uintptr_t a, uintptr_t inner)
{
    uintptr_t ret, target;
    if (!stack_word(a + 8, &ret) || !call_target(ret, &target))
        return 0;
    if (target <= inner && inner - target < FUNC_MAX)
        return 1;
    for (int i = 0; i < g_nexec; i++)
        if (target >= g_exec[i].lo && target < g_exec[i].hi)
            return inner >= g_exec[i].lo && inner < g_exec[i].hi ? -1 : 0;
    return 0;
}

/* Whether the record at `a` holds the return address after a call to the function holding pc:
 * when a dynamic symbol's extent says where that function starts, the call must target that
 * start (a call to a neighbour below it, such as another of the shim's interposed functions
 * in a stale record, is not it); else direct_call_verdict's judgement. */
static bool calls_function_of(uintptr_t a, uintptr_t pc)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    uintptr_t ret, target;
    if (dladdr1((void *)pc, &info, (void **)&sym, RTLD_DL_SYMENT) != 0 && sym != NULL &&
        info.dli_saddr != NULL && pc - (uintptr_t)info.dli_saddr < sym->st_size)
        return stack_word(a + 8, &ret) && call_target(ret, &target) &&
               target == (uintptr_t)info.dli_saddr;
    return direct_call_verdict(a, pc) > 0;
}

/* A frame record at `a`: [saved fp, return address], the saved fp 16-byte aligned and higher in
 * the same stack. */
static bool frame_link(uintptr_t a, uintptr_t lo, uintptr_t hi, uintptr_t *next, uintptr_t *ret)
{
    if (a < lo || a > hi - 16 || (a & 15) != 0)
        return false;
    return stack_word(a, next) && stack_word(a + 8, ret);
}

/* Whether a frame record at `a` starts a believable chain: two links, each with a return
 * address after a call instruction. */
static bool frame_chain_ok(uintptr_t a, uintptr_t lo, uintptr_t hi)
{
    uintptr_t next, ret, next2, ret2;
    if (!frame_link(a, lo, hi, &next, &ret) || next <= a || !is_ret(ret))
        return false;
    return frame_link(next, lo, hi, &next2, &ret2) && is_ret(ret2);
}

/* Parses /proc/self/task/TID/syscall: "nr a1 .. a6 sp pc" (in a system call) or "-1 sp pc"
 * (blocked elsewhere). 0 and *sp, *pc; -EAGAIN if the thread is running again. */
static int blocked_sp_pc(pid_t tid, uintptr_t *sp, uintptr_t *pc)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    ssize_t n = read_proc(path, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    if (strncmp(buf, "running", 7) == 0)
        return -EAGAIN;
    unsigned long long w[9];
    char *p = buf, *end;
    int k = 0;
    while (k < 9) {
        errno = 0;
        w[k] = strtoull(p, &end, 0);
        if (end == p || errno != 0)
            break;
        k++;
        p = end;
    }
    if (k == 9) {
        *sp = (uintptr_t)w[7];
        *pc = (uintptr_t)w[8];
    } else if (k == 3 && (long long)w[0] == -1) {
        *sp = (uintptr_t)w[1];
        *pc = (uintptr_t)w[2];
    } else {
        return -EPROTO;
    }
    return 0;
}

/* Copies the stack just above sp into g_win (a partial copy ends at the first unreadable
 * page). The copy is the stack of that sp and pc only if the thread did not run meanwhile:
 * still in a system call at the same site and not switched out since (an idle loop woken for a
 * moment polls again from the same sp and pc, its callbacks having written over the frames
 * between sp and libuv's). `switches` is the count read before sp and pc, -1 unknown, -2 no
 * check. 0, -EAGAIN (it ran: read again, as when it woke before), or a negative errno. */
static int copy_window(pid_t tid, uintptr_t sp, uintptr_t pc, uintptr_t hi, long long switches)
{
    g_win_lo = sp & ~(uintptr_t)7;
    size_t want = hi - g_win_lo < SCAN_BYTES ? hi - g_win_lo : SCAN_BYTES;
    struct iovec local = {g_win, want}, remote = {(void *)g_win_lo, want};
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (got < 16)
        return got < 0 ? -errno : -EFAULT;
    g_win_len = (size_t)got;
    if (switches == -2)
        return 0;
    uintptr_t sp2 = 0, pc2 = 0;
    if (blocked_sp_pc(tid, &sp2, &pc2) != 0 || sp2 != sp || pc2 != pc ||
        (switches >= 0 && ctxt_switches(tid) != switches))
        return -EAGAIN;
    return 0;
}

/* The innermost live record among the ncand candidates in g_cand, 0 none. A live record of
 * function F holds the return address after the call to F, and `inner` (the return into the
 * function that called the library) is inside F: for a direct call, that settles it (a stale
 * record, left in a frame's locals by an earlier call, names another callee). Else the lowest
 * candidate a such that no candidate b between a and a's parent links to a lower parent (a live
 * chain never jumps over a live record that links into its middle). */
static uintptr_t live_record(int ncand, uintptr_t inner)
{
    for (int i = 0; i < ncand && inner != 0; i++)
        if (direct_call_verdict(g_cand[i], inner) > 0)
            return g_cand[i];
    for (int i = 0; i < ncand; i++) {
        if (inner != 0 && direct_call_verdict(g_cand[i], inner) < 0)
            continue; /* a direct call to a function that is not the one we are in */
        bool stale = false;
        for (int j = i + 1; j < ncand && g_cand[j] < g_cand_next[i] && !stale; j++)
            stale = g_cand_next[j] < g_cand_next[i];
        if (!stale)
            return g_cand[i];
    }
    return 0;
}

/* Sets g_regs and the snapshot for the CFI unwind of a blocked thread (sp, pc, the innermost
 * live record rec, the ncand candidates, the window's end and the stack's bounds). */
static void cfi_regs(uintptr_t sp, uintptr_t pc, uintptr_t rec, int ncand, uintptr_t scan_end,
                     uintptr_t lo, uintptr_t hi)
{
    /* For the CFI unwind: sp and pc as the kernel gave them, the frame pointer that of the
     * innermost live record (frame-pointer-less code between it and sp leaves it alone, or
     * saves it where its CFI says), the other registers unknown; the window copied above. */
    memset(&g_regs, 0, sizeof g_regs);
    g_regs.r[SP_REG] = sp;
    g_regs.pc = pc;
#if !defined(__aarch64__)
    g_regs.r[16] = pc;
#endif
    size_t len = g_win_len < SNAP_BYTES ? g_win_len : SNAP_BYTES;
    memcpy(g_snap, g_win, len);
    g_snap_lo = g_win_lo;
    g_snap_len = len & ~(sizeof(uintptr_t) - 1);
    /* The frame pointer is not in the syscall file. Unwound without it, the CFI stops at the
     * first function F whose frame is addressed by its frame pointer, with F's pc and sp:
     * F's live record lies at or above that sp (one below it is stale, in the frames of the
     * library that made the call) and holds the return address after a call to F (a stale
     * one in F's own locals names another callee); failing that, the scan's choice. */
    static uintptr_t first[AT_EXPORT_MAX_FRAMES];
    uintptr_t first_sp = 0;
    int nfirst = at__unwind(&g_regs, g_snap_lo, g_snap_lo + g_snap_len, g_snap, first,
                            AT_EXPORT_MAX_FRAMES, true, &first_sp);
    g_regs.r[FP_REG] = rec;
    if (nfirst > 0 && nfirst < AT_EXPORT_MAX_FRAMES && first_sp != 0) {
        uintptr_t f_pc = first[nfirst - 1], found = 0;
        for (int i = 0; i < ncand && found == 0; i++)
            if (g_cand[i] >= first_sp && calls_function_of(g_cand[i], f_pc))
                found = g_cand[i];
        /* F's record need not start a chain: its saved frame pointer is the caller's, and a
         * caller without frame pointers (libuv calling the shim's epoll_wait, which makes the
         * poll's system call itself) keeps anything in that register. Any record slot then. */
        for (uintptr_t a = (first_sp + 15) & ~(uintptr_t)15; found == 0 && a + 16 <= scan_end;
             a += 16)
            if (a >= lo && a <= hi - 16 && calls_function_of(a, f_pc))
                found = a;
        if (found != 0)
            g_regs.r[FP_REG] = found;
    }
}

/* Samples thread `tid`, blocked, into out[0..max): its pc (the system call site), the return
 * addresses between sp and the first frame record (the frame-pointer-less libc frames and the
 * call into them), then the frame-pointer chain. The count, or -EAGAIN (running again, or,
 * with `verify`, it ran while its stack was copied), -ENOENT (sp on no known stack), or
 * another negative errno. */
static int sample_blocked(pid_t tid, uintptr_t lo, uintptr_t hi, void **out, int max, bool verify)
{
    uintptr_t sp = 0, pc = 0;
    long long switches = verify ? ctxt_switches(tid) : -1;
    int r = blocked_sp_pc(tid, &sp, &pc);
    if (r < 0)
        return r;
    if (lo == 0 || sp < lo || sp >= hi) {
        /* not on the loop thread's own stack: on a coroutine's (a task blocked in a call) */
        if (!at__stack_resolve(sp, &lo, &hi) || sp < lo || sp >= hi)
            return -ENOENT;
    }
    if (hi - lo < 32 || !load_exec_maps())
        return -ENOENT;
    r = copy_window(tid, sp, pc, hi, verify ? switches : -2);
    if (r < 0)
        return r;
    uintptr_t scan_end = g_win_lo + g_win_len;
    /* Every believable frame record above sp. Some are stale: left in a frame's locals by an
     * earlier call, they link to a live frame higher up and skip the live ones in between. */
    int ncand = 0;
    for (uintptr_t a = (g_win_lo + 15) & ~(uintptr_t)15; a + 16 <= scan_end && ncand < CAND_MAX;
         a += 16) {
        if (frame_chain_ok(a, lo, hi)) {
            g_cand[ncand] = a;
            (void)stack_word(a, &g_cand_next[ncand]);
            ncand++;
        }
    }
    /* Return addresses below the lowest record, innermost first: those of the library that
     * made the system call (no frame pointers: libc), then the first one outside it — the
     * return into the function that called the library — and no more (further up, between
     * frames, lie stale values). `inner` is that last one. */
    void *leaf[LEAF_MAX];
    int nleaf = 0, pc_map = map_of(pc);
    uintptr_t inner = 0;
    for (uintptr_t a = g_win_lo; a + 8 <= (ncand > 0 ? g_cand[0] : scan_end) && nleaf < LEAF_MAX;
         a += 8) {
        uintptr_t w;
        if (!stack_word(a, &w) || !is_ret(w))
            continue;
        leaf[nleaf++] = (void *)w;
        inner = w;
        if (pc_map < 0 || map_of(w) != pc_map)
            break;
    }
    uintptr_t rec = live_record(ncand, inner);
    int n = 0;
    if (pc != 0 && n < max)
        out[n++] = (void *)pc;
    for (int i = 0; i < nleaf && n < max; i++)
        out[n++] = leaf[i];
    /* the chain, as the signal handler walks it */
    for (uintptr_t fp = rec; fp != 0 && n < max;) {
        uintptr_t next, ret;
        if (!frame_link(fp, lo, hi, &next, &ret) || !is_exec(ret))
            break;
        out[n++] = (void *)ret;
        if (next <= fp)
            break;
        fp = next;
    }
    cfi_regs(sp, pc, rec, ncand, scan_end, lo, hi);
    return n;
}

int at__export_sample_request(pid_t tid, const void *lo, const void *hi)
{
    /* reserve the slot: a stray handler (a signal of a timed-out request) leaves it alone */
    int expect = S_IDLE;
    if (!atomic_compare_exchange_strong(&g_state, &expect, S_WRITING))
        return -EBUSY;
    g_lo = (uintptr_t)lo;
    g_hi = (uintptr_t)hi;
    g_n = 0;
    g_snap_len = 0;
    g_syscall_site = false;
    g_req_ns = uv_hrtime();
    /* Never signal a thread blocked in a system call: nanosleep, poll or epoll_wait with a
     * timeout, select... are not restarted after a handler even with SA_RESTART (signal(7)),
     * so the signal would change what the program does. The race: a thread seen running (R)
     * may enter such a call before the signal lands. The window is from the kernel's answer
     * to the read of its state to tgkill: two atomic stores, a few microseconds. */
    char st = thread_state(tid);
    for (int tries = 0; st == 'S' || st == 'D'; tries++) {
        /* The last try keeps its copy unverified: a thread that wakes more often than a copy
         * takes (every few microseconds) is still sampled, as it was read. */
        int n = sample_blocked(tid, g_lo, g_hi, g_pcs, AT_EXPORT_MAX_FRAMES, tries < 8);
        if (n >= 0) {
            g_n = n;
            g_syscall_site = n > 0;
            atomic_store_explicit(&g_state, S_DONE, memory_order_release);
            return 0;
        }
        if (n != -EAGAIN || tries == 8) {
            atomic_store(&g_state, S_IDLE);
            return n == -EAGAIN ? -EBUSY : n; /* woke every time: try again later */
        }
        /* It woke between the two reads (the kernel's syscall file says "running" when the
         * thread ran in between): look again. Running now: sampled the usual way below.
         * Asleep again (a loop thread woken by its timer for a moment): read it again. */
        st = thread_state(tid);
    }
    int err = 0;
    if (st != 'R')
        err = st == 0 ? -ESRCH : -EAGAIN; /* gone, stopped, traced, zombie: leave it alone */
    else if (!atomic_load(&g_installed))
        err = -ENOTSUP;
    if (err != 0) {
        atomic_store(&g_state, S_IDLE);
        return err;
    }
    atomic_store_explicit(&g_tid, tid, memory_order_release);
    atomic_store_explicit(&g_state, S_REQUESTED, memory_order_release);
    if (syscall(SYS_tgkill, getpid(), tid, at__export_sample_signal()) != 0) {
        int e = errno;
        atomic_store(&g_state, S_IDLE);
        return -e;
    }
    return 0;
}

/* The code at__export_hide_code leaves out of samples ([lo, hi), empty by default). */
static _Atomic uintptr_t g_hide_lo, g_hide_hi;

void at__export_hide_code(const void *lo, const void *hi)
{
    atomic_store_explicit(&g_hide_lo, (uintptr_t)lo, memory_order_relaxed);
    atomic_store_explicit(&g_hide_hi, (uintptr_t)hi, memory_order_relaxed);
}

int at__export_sample_poll(uint64_t now_ns, uint64_t timeout_ns, at_export_stack_t *out)
{
    int st = atomic_load_explicit(&g_state, memory_order_acquire);
    if (st == S_DONE) {
        /* The CFI unwind of the snapshot, here on the exporter thread: right through code
         * without frame pointers. The frame-pointer walk stays when it found more (code
         * without unwind tables, or no snapshot). */
        static uintptr_t cfi[AT_EXPORT_MAX_FRAMES];
        int ncfi = 0;
        if (g_snap_len > 0)
            ncfi = at__unwind(&g_regs, g_snap_lo, g_snap_lo + g_snap_len, g_snap, cfi,
                              AT_EXPORT_MAX_FRAMES, true, NULL);
        if (ncfi > 0 && ncfi >= g_n) {
            for (int i = 0; i < ncfi; i++)
                g_pcs[i] = (void *)cfi[i];
            g_n = ncfi;
        }
        uintptr_t lo = atomic_load_explicit(&g_hide_lo, memory_order_relaxed);
        uintptr_t hi = atomic_load_explicit(&g_hide_hi, memory_order_relaxed);
        /* A blocked thread's system call site stays even in hidden code: it is the call the
         * program made (the shim's epoll_wait makes the loop's poll itself). */
        uint32_t n = 0;
        for (int i = 0; i < g_n; i++)
            if ((uintptr_t)g_pcs[i] < lo || (uintptr_t)g_pcs[i] >= hi || (i == 0 && g_syscall_site))
                out->pc[n++] = g_pcs[i];
        out->depth = n;
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
