/* preload_int.h: the internals shared by the LD_PRELOAD shim's files — the side table of
 * original callbacks, the per-loop state, and the timing trampoline helpers. */
#ifndef ASYNCTOP_PRELOAD_INT_H
#define ASYNCTOP_PRELOAD_INT_H

#include "export.h"
#include "loopmon.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Which callback of an address the side table holds. A handle has at most one "main"
 * callback at a time (timer, read, listen, recv, poll, ...) plus its close callback; a request
 * has one (plus, for uv_queue_work, the work function in `cb2`). */
enum { PL_SLOT_MAIN = 0, PL_SLOT_CLOSE = 1, PL_SLOT_REQ = 2 };

/* In-flight request types (rows of the pending view). */
typedef enum pl_rtype {
    PL_R_NONE = 0, /* a handle callback, not a request */
    PL_R_FS,
    PL_R_WORK,
    PL_R_WRITE,
    PL_R_CONNECT,
    PL_R_SHUTDOWN,
    PL_R_UDP_SEND,
    PL_R_GETADDRINFO,
    PL_R_GETNAMEINFO,
    PL_R_RANDOM,
} pl_rtype_t;

#define PL_NAME_MAX  38 /* as at_export_task_row_t.name */
#define PL_STACK_MAX 16

/* One side-table entry, copied out by lookups (the table owns the stored one). */
typedef struct pl_hit {
    void *cb;        /* the program's callback (NULL: none, e.g. uv_queue_work without after) */
    void *cb2;       /* uv_queue_work: the work function */
    uv_loop_t *loop; /* the loop it belongs to */
    uint64_t id;     /* requests: the in-flight row id (0 for handles) */
    uint64_t issued_ns;
    void *create_pc; /* requests: a return address in the issuing code */
    uint8_t kind;    /* at__cb_kind_t of the callback */
    uint8_t rtype;   /* pl_rtype_t */
    uint8_t posted;  /* an "added" row was posted to the exporter */
    char name[PL_NAME_MAX];
} pl_hit_t;

/* The shim's state of one watched loop: the loopmon monitor, the exporter attachment and the
 * thread that runs it. Created by the first uv_run on the loop, freed by uv_loop_close. */
typedef struct pl_loop {
    uv_loop_t *loop;
    at__mon_t *mon;
    at_export_attach_t *att;
    pthread_t thread;
    at_export_provider_t prov;
    struct pl_loop *next;
} pl_loop_t;

/* ---- setup (preload.c) ---------------------------------------------------------------------- */

/* Process-wide set-up (once): callback address ranges of the shim and of libuv, the off switch
 * (ASYNCTOP_PRELOAD=0), logging, the static-libuv check. Any thread, idempotent, cheap after
 * the first call. */
void pl_init(void);
extern _Atomic int pl_ready; /* 1 once pl_init finished */
extern int pl_off;           /* ASYNCTOP_PRELOAD=0: pass everything through */

/* The address ranges of executable code of the shim and of libuv (pl_init fills them). */
extern uintptr_t pl_self_lo, pl_self_hi, pl_uv_lo, pl_uv_hi;

/* True if `cb` must be passed through untouched: NULL, a function of the shim itself (its
 * trampolines, loopmon's and the exporter's handles), or one of libuv's own internal
 * callbacks (the loop's work-completion async, fs-poll's timer and stat callbacks, the child
 * watcher): every program callback those run is timed by its own trampoline. Any thread. */
static inline bool pl_pass(const void *cb)
{
    uintptr_t a = (uintptr_t)cb;
    return cb == NULL || pl_off || (a >= pl_self_lo && a < pl_self_hi) ||
           (a >= pl_uv_lo && a < pl_uv_hi);
}

/* True if the return address `ra` is inside the shim (a call made by loopmon/the exporter). */
static inline bool pl_from_self(const void *ra)
{
    uintptr_t a = (uintptr_t)ra;
    return a >= pl_self_lo && a < pl_self_hi;
}

/* True if `h` is one of the shim's own handles on a program's loop (the exporter's async,
 * loopmon's prepare and check): its callback is the shim's, and not one of the trampolines
 * that call the program's own (tr_prepare, tr_check, tr_async). Such handles get libuv's
 * internal flag when the loop is first watched. Loop thread. (interpose.c) */
bool pl_handle_is_self(const uv_handle_t *h);

/* The real libuv function `name` (dlsym RTLD_NEXT), aborting with a message if absent. */
void *pl_real(const char *name);

/* ---- side table (table.c) -------------------------------------------------------------------
 * Keyed by (address, slot); thread-safe (sharded locks); put replaces (addresses are reused). */

/* Store `h` for (key, slot). Returns 0 or -ENOMEM (then the caller passes the callback through
 * untimed). Any thread. */
int pl_tab_put(const void *key, int slot, const pl_hit_t *h);
/* Copy the entry into *out; false if there is none. Any thread. */
bool pl_tab_get(const void *key, int slot, pl_hit_t *out);
/* As pl_tab_get, and also a reference to the stored entry and its version: while
 * pl_tab_ver(ref) == ver, the entry is unchanged (every put, take and change bumps the version;
 * entries are recycled, never freed, so a reference stays readable forever). */
bool pl_tab_get_ref(const void *key, int slot, pl_hit_t *out, const void **ref, unsigned *ver);
static inline unsigned pl_tab_ver(const void *ref)
{
    return __atomic_load_n((const unsigned *)ref, __ATOMIC_ACQUIRE);
}
/* Remove the entry, copying it into *out (may be NULL); false if there was none. Any thread. */
bool pl_tab_take(const void *key, int slot, pl_hit_t *out);
/* Mark the entry as posted to the exporter. Any thread. */
void pl_tab_set_posted(const void *key, int slot);
/* Number of entries (tests: nothing leaks once every handle is closed). Any thread. */
size_t pl_tab_count(void);
/* Call fn for every request entry of `loop` (under the shard locks: keep fn short). */
void pl_tab_foreach_req(uv_loop_t *loop, void (*fn)(const void *key, const pl_hit_t *h, void *arg),
                        void *arg);
/* The creation stack of a request entry (debug mode): set, and read by row id. */
void pl_tab_set_stack(const void *key, int slot, void *const *pcs, int n);
int pl_tab_find_id(uv_loop_t *loop, uint64_t id, pl_hit_t *out, void **pcs, int *npcs);

/* ---- loops (preload.c) ----------------------------------------------------------------------- */

/* Bumped whenever a loop starts or stops being watched (caches of loop state compare it). */
extern _Atomic uint64_t pl_gen;
/* The watched loop the calling thread is running (set by the uv_run wrapper), or NULL. */
extern __thread pl_loop_t *pl_running;
/* The loop pl_loop_watch is attaching on this thread (its exporter async is the shim's). */
extern __thread uv_loop_t *pl_watching;
/* Wake every watched loop run by `thread` (its poll returns and is made again): after a
 * pthread_cancel, so that a poll made with the raw syscall becomes a cancellation point. Any
 * thread. */
void pl_wake_loops_of(pthread_t thread);

/* The state of `loop`, or NULL when it is not watched. Any thread; O(1) with a per-thread cache. */
pl_loop_t *pl_loop_for(uv_loop_t *loop);
/* Watch `loop` from its thread (the caller of uv_run): loopmon monitor, exporter start (first
 * loop) and attachment. Returns the state or NULL (then the loop simply runs unwatched). */
pl_loop_t *pl_loop_watch(uv_loop_t *loop);
/* Stop watching before the real uv_loop_close: closes the monitor's and the attachment's
 * handles and lets the loop run their close callbacks, only if the real call is going to
 * succeed (no request in flight, no handle of the program's open or closing). Otherwise it
 * touches nothing, reading no more of the loop than the real call does (not even uv_walk),
 * so the real uv_loop_close fails with UV_EBUSY exactly as without the shim and the loop
 * stays watched. Thread that may close the loop. */
void pl_loop_unwatch(uv_loop_t *loop);

/* Start the process's exporter once (first watched loop; again in a forked child). Loop
 * thread of a watched loop. */
void pl_export_once(void);

/* ---- requests and timing (preload.c) ------------------------------------------------------- */

/* Register a request about to be issued: stores the callback and a new row id. */
int pl_req_put(const void *req, uv_loop_t *loop, pl_rtype_t rtype, unsigned kind, void *cb,
               void *cb2, const char *name, const char *detail, void *create_pc);
/* After the real call: on success post the "added" row (loop thread with an exporter), on
 * failure forget the entry. Returns rc. */
int pl_req_issued(const void *req, int rc);

/* Begin timing the callback described by *h on the current thread; returns the monitor (pass
 * it to pl_end) or NULL when the callback runs untimed (unwatched loop, other thread). For
 * finished requests also posts the "removed" row (whether or not their "added" row was posted:
 * a resync may have listed them). */
at__mon_t *pl_begin(const pl_hit_t *h, at__cb_t *c);
static inline void pl_end(at__mon_t *m, at__cb_t *c)
{
    if (m != NULL)
        at__cb_end(m, c);
}

/* Pool-thread timing of uv_queue_work's work functions (never loop callbacks). */
void pl_work_record(uint64_t ns);

/* Log once that a callback's side-table entry was missing (should not happen). */
void pl_lost(const char *what, const void *key);

#endif
