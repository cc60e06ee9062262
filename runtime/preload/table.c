/* table.c: the shim's side table — the program's original callbacks keyed by (handle or request
 * address, slot), because handle->data belongs to the program. Sharded chained hash with a
 * free list per shard; entries are copied out so no pointer into the table escapes a lock. */
#include "preload_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS  64
#define BUCKETS 256 /* per shard */

typedef struct node {
    _Atomic unsigned ver; /* first (pl_tab_ver): bumped by every change of the entry */
    const void *key;
    int slot;
    pl_hit_t h;
    void **stack; /* debug-mode creation stack (requests), NULL otherwise */
    int nstack;
    struct node *next;
} node_t;

typedef struct shard {
    pthread_mutex_t lock;
    _Atomic unsigned seq; /* seqlock for lock-free lookups: odd while a writer changes it */
    node_t *b[BUCKETS];
    node_t *free;
    size_t n;
} shard_t;

_Static_assert(offsetof(node_t, ver) == 0, "pl_tab_ver reads the version at offset 0");

static shard_t g_shards[SHARDS];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void tab_init(void)
{
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&g_shards[i].lock, NULL);
}

static inline uint64_t mix(const void *key, int slot)
{
    uint64_t x = ((uintptr_t)key >> 3) ^ ((uint64_t)slot << 61);
    x *= 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

static inline shard_t *shard_of(uint64_t h)
{
    return &g_shards[h >> 58];
}

static inline node_t **bucket_of(shard_t *s, uint64_t h)
{
    return &s->b[(h >> 40) & (BUCKETS - 1)];
}

static node_t **find(node_t **pp, const void *key, int slot)
{
    for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->key == key && (*pp)->slot == slot)
            return pp;
    return NULL;
}

/* Writers (under s->lock) bracket every change with w_begin/w_end; readers of pl_tab_get
 * retry when the sequence moved. Nodes are never freed (free list), so a reader racing a
 * writer reads stale but mapped memory, and throws it away. */
static inline void w_begin(shard_t *s)
{
    unsigned q = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static inline void w_end(shard_t *s)
{
    unsigned q = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, q + 1, memory_order_release);
}

/* Under s->lock, between w_begin and w_end. */
static inline void bump(node_t *n)
{
    atomic_store_explicit(&n->ver, atomic_load_explicit(&n->ver, memory_order_relaxed) + 1,
                          memory_order_release);
}

static void node_release(shard_t *s, node_t *n)
{
    bump(n);
    free(n->stack);
    n->stack = NULL;
    n->next = s->free;
    s->free = n;
    s->n--;
}

int pl_tab_put(const void *key, int slot, const pl_hit_t *h)
{
    pthread_once(&g_once, tab_init);
    uint64_t x = mix(key, slot);
    shard_t *s = shard_of(x);
    pthread_mutex_lock(&s->lock);
    node_t **b = bucket_of(s, x);
    node_t **pp = find(b, key, slot);
    node_t *n;
    w_begin(s);
    if (pp != NULL) {
        n = *pp; /* an address reused without a close we saw: replace */
        free(n->stack);
        n->stack = NULL;
        n->nstack = 0;
    } else {
        n = s->free;
        if (n != NULL)
            s->free = n->next;
        else if ((n = calloc(1, sizeof *n)) == NULL) {
            w_end(s);
            pthread_mutex_unlock(&s->lock);
            return -ENOMEM;
        }
        n->key = key;
        n->slot = slot;
        n->next = *b;
        *b = n;
        s->n++;
    }
    n->h = *h;
    bump(n);
    w_end(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

bool pl_tab_get_ref(const void *key, int slot, pl_hit_t *out, const void **ref, unsigned *ver)
{
    uint64_t x = mix(key, slot);
    shard_t *s = shard_of(x);
    for (int tries = 0; tries < 8; tries++) {
        unsigned q = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (q & 1)
            continue;
        node_t *n = __atomic_load_n(bucket_of(s, x), __ATOMIC_RELAXED);
        while (n != NULL && !(__atomic_load_n(&n->key, __ATOMIC_RELAXED) == key &&
                              __atomic_load_n(&n->slot, __ATOMIC_RELAXED) == slot))
            n = __atomic_load_n(&n->next, __ATOMIC_RELAXED);
        unsigned v = 0;
        if (n != NULL) {
            v = atomic_load_explicit(&n->ver, memory_order_relaxed);
            memcpy(out, &n->h, sizeof *out);
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) == q) {
            if (ref != NULL) {
                *ref = n;
                *ver = v;
            }
            return n != NULL;
        }
    }
    pthread_once(&g_once, tab_init);
    pthread_mutex_lock(&s->lock);
    node_t **pp = find(bucket_of(s, x), key, slot);
    if (pp != NULL) {
        *out = (*pp)->h;
        if (ref != NULL) {
            *ref = *pp;
            *ver = atomic_load_explicit(&(*pp)->ver, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return pp != NULL;
}

bool pl_tab_get(const void *key, int slot, pl_hit_t *out)
{
    return pl_tab_get_ref(key, slot, out, NULL, NULL);
}

bool pl_tab_take(const void *key, int slot, pl_hit_t *out)
{
    pthread_once(&g_once, tab_init);
    uint64_t x = mix(key, slot);
    shard_t *s = shard_of(x);
    pthread_mutex_lock(&s->lock);
    node_t **pp = find(bucket_of(s, x), key, slot);
    if (pp != NULL) {
        node_t *n = *pp;
        if (out != NULL)
            *out = n->h;
        w_begin(s);
        *pp = n->next;
        node_release(s, n);
        w_end(s);
    }
    pthread_mutex_unlock(&s->lock);
    return pp != NULL;
}

void pl_tab_set_posted(const void *key, int slot)
{
    uint64_t x = mix(key, slot);
    shard_t *s = shard_of(x);
    pthread_mutex_lock(&s->lock);
    node_t **pp = find(bucket_of(s, x), key, slot);
    if (pp != NULL) {
        w_begin(s);
        (*pp)->h.posted = 1;
        bump(*pp);
        w_end(s);
    }
    pthread_mutex_unlock(&s->lock);
}

void pl_tab_set_stack(const void *key, int slot, void *const *pcs, int n)
{
    void **copy = malloc(sizeof(void *) * (size_t)n);
    if (copy == NULL)
        return;
    memcpy(copy, pcs, sizeof(void *) * (size_t)n);
    uint64_t x = mix(key, slot);
    shard_t *s = shard_of(x);
    pthread_mutex_lock(&s->lock);
    node_t **pp = find(bucket_of(s, x), key, slot);
    if (pp != NULL) {
        free((*pp)->stack);
        (*pp)->stack = copy;
        (*pp)->nstack = n;
        copy = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    free(copy);
}

/* fork() (rank AT__FORK_PRELOAD_TABLE, loopmon.h): every shard's lock, in index order (nobody
 * holds two), so that no writer — a pool thread, another loop thread, the exporter closing a
 * handle — is inside a shard (its seqlock odd) across the fork. */
static void tab_fork_prepare(void)
{
    pthread_once(&g_once, tab_init);
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_lock(&g_shards[i].lock);
}

static void tab_fork_release(void)
{
    for (int i = SHARDS - 1; i >= 0; i--)
        pthread_mutex_unlock(&g_shards[i].lock);
}

static const at__fork_handlers_t tab_fork_handlers = {tab_fork_prepare, tab_fork_release,
                                                      tab_fork_release};

__attribute__((constructor)) static void tab_fork_register(void)
{
    at__fork_register(AT__FORK_PRELOAD_TABLE, &tab_fork_handlers);
}

size_t pl_tab_count(void)
{
    pthread_once(&g_once, tab_init);
    size_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&g_shards[i].lock);
        n += g_shards[i].n;
        pthread_mutex_unlock(&g_shards[i].lock);
    }
    return n;
}

/* Calls visit(n, arg) for every request node of `loop`, each under its shard's lock, until one
 * returns true; returns whether one did. */
static bool req_walk(uv_loop_t *loop, bool (*visit)(const node_t *n, void *arg), void *arg)
{
    pthread_once(&g_once, tab_init);
    for (int i = 0; i < SHARDS; i++) {
        shard_t *s = &g_shards[i];
        pthread_mutex_lock(&s->lock);
        for (int j = 0; j < BUCKETS; j++)
            for (node_t *n = s->b[j]; n != NULL; n = n->next)
                if (n->slot == PL_SLOT_REQ && n->h.loop == loop && visit(n, arg)) {
                    pthread_mutex_unlock(&s->lock);
                    return true;
                }
        pthread_mutex_unlock(&s->lock);
    }
    return false;
}

typedef struct foreach_ctx {
    void (*fn)(const void *key, const pl_hit_t *h, void *arg);
    void *arg;
} foreach_ctx_t;

static bool foreach_visit(const node_t *n, void *arg)
{
    foreach_ctx_t *c = arg;
    c->fn(n->key, &n->h, c->arg);
    return false;
}

void pl_tab_foreach_req(uv_loop_t *loop, void (*fn)(const void *key, const pl_hit_t *h, void *arg),
                        void *arg)
{
    foreach_ctx_t c = {fn, arg};
    req_walk(loop, foreach_visit, &c);
}

typedef struct find_ctx {
    uint64_t id;
    pl_hit_t *out;
    void **pcs;
    int *npcs;
} find_ctx_t;

static bool find_visit(const node_t *n, void *arg)
{
    find_ctx_t *c = arg;
    if (n->h.id != c->id)
        return false;
    *c->out = n->h;
    int k = n->nstack < *c->npcs ? n->nstack : *c->npcs;
    if (k > 0)
        memcpy(c->pcs, n->stack, sizeof(void *) * (size_t)k);
    *c->npcs = k;
    return true;
}

int pl_tab_find_id(uv_loop_t *loop, uint64_t id, pl_hit_t *out, void **pcs, int *npcs)
{
    find_ctx_t c = {id, out, pcs, npcs};
    return req_walk(loop, find_visit, &c) ? 0 : -ESRCH;
}
