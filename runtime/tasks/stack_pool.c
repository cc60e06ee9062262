/* stack_pool.c: pooled coroutine stacks carved from big lazily committed chunks,
 * guarded without splitting mappings where the kernel allows it. */
#include "stack_pool.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "at_tasks_config.h"
#include "loopmon.h"

#if AT_HAVE_VALGRIND_H
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi)   ((void)(lo), (void)(hi), 0u)
#define VALGRIND_MAKE_MEM_UNDEFINED(p, n) ((void)(p), (void)(n))
#define VALGRIND_MAKE_MEM_DEFINED(p, n)   ((void)(p), (void)(n))
#define VALGRIND_MAKE_MEM_NOACCESS(p, n)  ((void)(p), (void)(n))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13; Debian 12's headers predate it */
#endif

/* Page size assumed for the layout; checked against sysconf once. Stacks and
 * guards are multiples of it. 16 KiB / 64 KiB page kernels (aarch64) still
 * work: everything is rounded to the real page size at first use. */
static size_t page_size;

/* Guard region below every stack. With MADV_GUARD_INSTALL or mprotect it
 * costs no memory, only address space; it is this large so that a frame
 * with up to 64 KiB of locals still lands in it instead of jumping over it
 * into the neighbouring slot. In canary mode it is an unprotected gap. */
#define GUARD_BYTES ((size_t)64 * 1024)

/* Target size of one chunk (address space, not memory). */
#define CHUNK_TARGET_BYTES ((size_t)32 * 1024 * 1024)

/* At most this many chunks in the process (16384 x 32 MiB = 512 GiB of stacks). */
#define MAX_CHUNKS 16384

/* Size classes: powers of two from AT__STACK_MIN (2^14) to AT__STACK_MAX (2^26). */
#define CLASS_MIN_SHIFT 14
#define NCLASSES        (26 - CLASS_MIN_SHIFT + 1)

#define NO_SLOT UINT64_MAX

/* Per-slot bookkeeping, kept in the chunk's header pages (not in the slot, so
 * that a cold slot's pages stay untouched while it sits in the pool). */
typedef struct slot_meta {
    uint64_t next; /* free-list link: (chunk index << 32) | slot index */
    uint8_t guard; /* at__guard_mode_t */
    uint8_t warm;  /* top page assumed resident */
} slot_meta_t;

/* One chunk: a single mapping of header pages then nslots slots. Published
 * in the global registry so the SIGSEGV handler can find any slot. */
typedef struct chunk {
    char *map;        /* start of the mapping */
    size_t map_bytes; /* length of the mapping */
    char *slots;      /* first slot */
    size_t slot_size; /* guard + stack */
    uint32_t nslots;
    uint32_t carved; /* slots handed out at least once (owner thread only) */
    uint32_t size_class;
    slot_meta_t *meta; /* nslots entries, in the header pages */
} chunk_t;

static chunk_t chunks[MAX_CHUNKS];
static atomic_size_t nchunks; /* entries [0, nchunks) are complete */
static pthread_mutex_t chunks_lock = PTHREAD_MUTEX_INITIALIZER;

/* fork() (rank AT__FORK_STACK_POOL, loopmon.h): another loop thread may be adding a chunk when
 * a thread forks; the child's first new chunk takes the lock. */
__attribute__((constructor)) static void chunks_fork_register(void)
{
    at__fork_register_mutex(AT__FORK_STACK_POOL, &chunks_lock);
}

typedef struct size_class_pool {
    uint64_t warm, cold; /* free lists (LIFO) */
    size_t nwarm, ncold;
    uint32_t chunk; /* chunk being carved, or UINT32_MAX */
} size_class_pool_t;

typedef struct thread_pool {
    bool init;
    bool valgrind; /* running under valgrind: tell memcheck what the pool does (see VG) */
    size_class_pool_t classes[NCLASSES];
    size_t carved, trims, by_mode[4];
} thread_pool_t;

static __thread thread_pool_t tpool __attribute__((tls_model("initial-exec")));

/* A memcheck client request on the per-spawn path, made only under valgrind: natively each
 * one still costs its magic sequence and argument block (a tenth of a stack's get and put). */
#define VG(req)                                                                                    \
    do {                                                                                           \
        if (AT__VG_UNLIKELY(tpool.valgrind))                                                       \
            (void)(req);                                                                           \
    } while (0)
#define AT__VG_UNLIKELY(x) __builtin_expect(!!(x), 0)

static atomic_int guard_mode_global; /* 0 = not decided yet */
static atomic_bool strict_mode;
static atomic_long vma_budget = -1; /* -1 = not computed yet */

static void page_size_init(void)
{
    if (page_size == 0) {
        long p = sysconf(_SC_PAGESIZE);
        page_size = p > 0 ? (size_t)p : 4096;
    }
}

static long count_lines(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[8192];
    long lines = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

static long read_long(const char *path, long fallback)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fallback;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return fallback;
    buf[n] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    return end == buf ? fallback : v;
}

long at__stack_pool_vma_budget(void)
{
    long b = atomic_load(&vma_budget);
    if (b >= 0)
        return b;
    long max = read_long("/proc/sys/vm/max_map_count", 65530);
    long used = count_lines("/proc/self/maps");
    if (used < 0)
        used = max / 2; /* cannot tell: be conservative */
    long budget = max - used - max / 8;
    if (budget < 0)
        budget = 0;
    long expected = -1;
    atomic_compare_exchange_strong(&vma_budget, &expected, budget);
    return atomic_load(&vma_budget);
}

void at__stack_pool_set_vma_budget(long vmas)
{
    assert(vmas >= 0);
    atomic_store(&vma_budget, vmas);
}

/* Takes `n` VMAs from the budget; false if there are not that many left. */
static bool vma_budget_take(long n)
{
    long b = at__stack_pool_vma_budget();
    while (b >= n)
        if (atomic_compare_exchange_weak(&vma_budget, &b, b - n))
            return true;
    return false;
}

at__guard_mode_t at__stack_guard_mode(void)
{
    int m = atomic_load(&guard_mode_global);
    if (m != 0)
        return (at__guard_mode_t)m;
    const char *env = getenv("ASYNCTOP_STACK_GUARD");
    int want = AT__GUARD_MADVISE;
    if (env && strcmp(env, "mprotect") == 0)
        want = AT__GUARD_MPROTECT;
    else if (env && strcmp(env, "strict") == 0)
        atomic_store(&strict_mode, true);
    int expected = 0;
    atomic_compare_exchange_strong(&guard_mode_global, &expected, want);
    return (at__guard_mode_t)atomic_load(&guard_mode_global);
}

void at__stack_pool_force_guard_mode(at__guard_mode_t mode)
{
    (void)at__stack_guard_mode(); /* read the environment first */
    atomic_store(&guard_mode_global, (int)mode);
}

void at__stack_pool_force_strict(bool strict)
{
    atomic_store(&strict_mode, strict);
}

static uint32_t size_class_of(size_t size)
{
    if (size < AT__STACK_MIN)
        size = AT__STACK_MIN;
    if (size > AT__STACK_MAX)
        size = AT__STACK_MAX;
    /* the smallest c with 2^(c + CLASS_MIN_SHIFT) >= size */
    return (uint32_t)(64 - __builtin_clzll((unsigned long long)size - 1)) - CLASS_MIN_SHIFT;
}

static size_t class_bytes(uint32_t c)
{
    return (size_t)1 << (c + CLASS_MIN_SHIFT);
}

static void tpool_init(void)
{
    if (tpool.init)
        return;
    page_size_init();
    for (int c = 0; c < NCLASSES; c++) {
        tpool.classes[c].warm = NO_SLOT;
        tpool.classes[c].cold = NO_SLOT;
        tpool.classes[c].chunk = UINT32_MAX;
    }
#if AT_HAVE_VALGRIND_H
    tpool.valgrind = RUNNING_ON_VALGRIND != 0;
#endif
    tpool.init = true;
}

static slot_meta_t *meta_of(uint64_t ref)
{
    return &chunks[ref >> 32].meta[(uint32_t)ref];
}

static void stack_of(uint64_t ref, at__stack_t *out)
{
    chunk_t *ch = &chunks[ref >> 32];
    char *slot = ch->slots + (size_t)(uint32_t)ref * ch->slot_size;
    out->lo = slot + GUARD_BYTES;
    out->hi = slot + ch->slot_size;
    out->guard = (at__guard_mode_t)ch->meta[(uint32_t)ref].guard;
    out->size_class = ch->size_class;
    out->ref = ref;
}

static int chunk_new(uint32_t c, uint32_t *out)
{
    size_t slot_size = GUARD_BYTES + class_bytes(c);
    size_t nslots = CHUNK_TARGET_BYTES / slot_size;
    if (nslots < 1)
        nslots = 1;
    size_t header = (nslots * sizeof(slot_meta_t) + page_size - 1) & ~(page_size - 1);
    size_t bytes = header + nslots * slot_size;
    char *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return -errno;
    /* A stack touching one page must not be given a 2 MiB huge page. */
    (void)madvise(map, bytes, MADV_NOHUGEPAGE);
    /* memcheck: unused stacks hold nothing (and its leak check skips them). */
    (void)VALGRIND_MAKE_MEM_NOACCESS(map + header, bytes - header);

    pthread_mutex_lock(&chunks_lock);
    size_t idx = atomic_load(&nchunks);
    if (idx == MAX_CHUNKS) {
        pthread_mutex_unlock(&chunks_lock);
        munmap(map, bytes);
        return -ENOMEM;
    }
    chunk_t *ch = &chunks[idx];
    ch->map = map;
    ch->map_bytes = bytes;
    ch->slots = map + header;
    ch->slot_size = slot_size;
    ch->nslots = (uint32_t)nslots;
    ch->carved = 0;
    ch->size_class = c;
    ch->meta = (slot_meta_t *)map;
    atomic_store_explicit(&nchunks, idx + 1, memory_order_release);
    pthread_mutex_unlock(&chunks_lock);
    *out = (uint32_t)idx;
    return 0;
}

/* Protects the guard region of a fresh slot; returns the mode it got. */
static int guard_install(char *slot, slot_meta_t *m)
{
    at__guard_mode_t mode = at__stack_guard_mode();
    if (mode == AT__GUARD_MADVISE) {
        if (madvise(slot, GUARD_BYTES, MADV_GUARD_INSTALL) == 0) {
            m->guard = AT__GUARD_MADVISE;
            return 0;
        }
        /* EINVAL: a kernel before 6.13. Fall back for good. */
        int expected = AT__GUARD_MADVISE;
        atomic_compare_exchange_strong(&guard_mode_global, &expected, AT__GUARD_MPROTECT);
    }
    /* An mprotect'd page inside the chunk splits its VMA in up to 3. */
    if (vma_budget_take(2)) {
        if (mprotect(slot, GUARD_BYTES, PROT_NONE) == 0) {
            m->guard = AT__GUARD_MPROTECT;
            return 0;
        }
        atomic_store(&vma_budget, 0); /* ENOMEM: the kernel says we are out */
    }
    if (atomic_load(&strict_mode))
        return -ENOMEM;
    m->guard = AT__GUARD_CANARY;
    return 0;
}

/* Canary-mode stacks carry CANARY_WORDS words of a per-slot pattern at their
 * lowest end; an overflow that writes anywhere in them is caught. */
#define CANARY_WORDS 16

static uintptr_t canary_value(const at__stack_t *st, int i)
{
    return ((uintptr_t)0x5afe57ac4b1dd00dULL ^ (uintptr_t)st->lo) + (uintptr_t)i;
}

static void canary_write(const at__stack_t *st)
{
    volatile uintptr_t *w = (volatile uintptr_t *)st->lo;
    (void)VALGRIND_MAKE_MEM_UNDEFINED(st->lo, CANARY_WORDS * sizeof *w);
    for (int i = 0; i < CANARY_WORDS; i++)
        w[i] = canary_value(st, i);
}

__attribute__((no_sanitize_address)) bool at__stack_canary_ok(const at__stack_t *st)
{
    const volatile uintptr_t *w = (const volatile uintptr_t *)st->lo;
    for (int i = 0; i < CANARY_WORDS; i++)
        if (w[i] != canary_value(st, i))
            return false;
    return true;
}

int at__stack_alloc(size_t size, at__stack_t *out)
{
    tpool_init();
    uint32_t c = size_class_of(size);
    size_class_pool_t *p = &tpool.classes[c];
    uint64_t ref;
    if (p->warm != NO_SLOT) {
        ref = p->warm;
        p->warm = meta_of(ref)->next;
        p->nwarm--;
    } else if (p->cold != NO_SLOT) {
        ref = p->cold;
        p->cold = meta_of(ref)->next;
        p->ncold--;
    } else {
        if (p->chunk == UINT32_MAX || chunks[p->chunk].carved == chunks[p->chunk].nslots) {
            uint32_t idx = 0;
            int rc = chunk_new(c, &idx);
            if (rc < 0)
                return rc;
            p->chunk = idx;
        }
        chunk_t *ch = &chunks[p->chunk];
        uint32_t s = ch->carved;
        char *slot = ch->slots + (size_t)s * ch->slot_size;
        slot_meta_t *m = &ch->meta[s];
        int rc = guard_install(slot, m);
        if (rc < 0)
            return rc;
        ch->carved++;
        tpool.carved++;
        tpool.by_mode[m->guard]++;
        (void)VALGRIND_STACK_REGISTER(slot + GUARD_BYTES, slot + ch->slot_size);
        ref = ((uint64_t)p->chunk << 32) | s;
    }
    meta_of(ref)->next = NO_SLOT;
    meta_of(ref)->warm = 1;
    stack_of(ref, out);
    /* memcheck marked what earlier frames popped as inaccessible; the new
     * owner writes its control block and first frame on the top page from
     * another stack (frames pushed later are tracked by memcheck itself). */
    VG(VALGRIND_MAKE_MEM_UNDEFINED(out->hi - page_size, page_size));
    if (out->guard == AT__GUARD_CANARY)
        canary_write(out);
    return 0;
}

/* Whether the top of the page below the stack's top page was written: the
 * first frames to cross the boundary leave return addresses there. Reading
 * an untouched page maps the shared zero page, which costs no memory. */
__attribute__((no_sanitize_address)) static bool below_top_page_dirty(const at__stack_t *st,
                                                                      size_t pg)
{
    const uintptr_t *w = (const uintptr_t *)(st->hi - pg) - 16;
    /* For memcheck, popped frames are garbage, not errors: we only test for
     * "ever written". */
    VG(VALGRIND_MAKE_MEM_DEFINED((const void *)w, 16 * sizeof *w));
    /* one OR of all 16 words, branch-free (written out: -O2 does not vectorise the loop) */
    uintptr_t a = (w[0] | w[1]) | (w[2] | w[3]), b = (w[4] | w[5]) | (w[6] | w[7]);
    uintptr_t c = (w[8] | w[9]) | (w[10] | w[11]), d = (w[12] | w[13]) | (w[14] | w[15]);
    return ((a | b) | (c | d)) != 0;
}

void at__stack_free(at__stack_t *st, const void *low_water)
{
    assert(tpool.init);
    uint64_t ref = st->ref;
    assert(ref >> 32 < atomic_load(&nchunks));
    size_class_pool_t *p = &tpool.classes[st->size_class];
    slot_meta_t *m = meta_of(ref);
    size_t pg = page_size;
    if (p->nwarm >= AT__STACK_KEEP_WARM) {
        /* Enough warm stacks: give back everything, top page included. */
        (void)madvise(st->lo, (size_t)(st->hi - st->lo), MADV_DONTNEED);
        tpool.trims++;
        m->warm = 0;
        m->next = p->cold;
        p->cold = ref;
        p->ncold++;
        VG(VALGRIND_MAKE_MEM_NOACCESS(st->lo, (size_t)(st->hi - st->lo)));
        return;
    }
    bool deep =
        (low_water && (const char *)low_water < st->hi - pg) || below_top_page_dirty(st, pg);
    if (deep) {
        (void)madvise(st->lo, (size_t)(st->hi - pg - st->lo), MADV_DONTNEED);
        tpool.trims++;
    }
    m->next = p->warm;
    p->warm = ref;
    p->nwarm++;
    VG(VALGRIND_MAKE_MEM_NOACCESS(st->lo, (size_t)(st->hi - st->lo)));
}

bool at__stack_lookup(const void *addr, at__stack_fault_t *out)
{
    const char *a = addr;
    size_t n = atomic_load_explicit(&nchunks, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        const chunk_t *ch = &chunks[i];
        if (a < ch->slots || a >= ch->map + ch->map_bytes)
            continue;
        size_t s = (size_t)(a - ch->slots) / ch->slot_size;
        char *slot = ch->slots + s * ch->slot_size;
        out->stack_lo = slot + GUARD_BYTES;
        out->stack_hi = slot + ch->slot_size;
        out->in_guard = a < out->stack_lo;
        return true;
    }
    return false;
}

size_t at__stack_pool_generation(void)
{
    return atomic_load_explicit(&nchunks, memory_order_relaxed);
}

void at__stack_pool_stats(at__stack_pool_stats_t *out)
{
    tpool_init();
    memset(out, 0, sizeof *out);
    out->chunks = atomic_load(&nchunks);
    out->slots_carved = tpool.carved;
    for (int c = 0; c < NCLASSES; c++)
        out->slots_free += tpool.classes[c].nwarm + tpool.classes[c].ncold;
    out->trims = tpool.trims;
    out->guard_madvise = tpool.by_mode[AT__GUARD_MADVISE];
    out->guard_mprotect = tpool.by_mode[AT__GUARD_MPROTECT];
    out->guard_canary = tpool.by_mode[AT__GUARD_CANARY];
}
