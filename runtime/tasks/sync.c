/* sync.c: event, lock, semaphore and bounded queue for tasks, on the tasks layer's wait queues
 * (task_wait.c). */
#include "tasks.h"

#include "asynctop/sync.h"

#include <assert.h>
#include <stdlib.h>

/* What every primitive starts with: its loop, and its id for the inspector. */
typedef struct prim {
    at_loop_t *loop;
    uint64_t id;
} prim_t;

/* A zeroed primitive of `size` bytes (its struct begins with a prim_t) on `loop`, with a new
 * id; NULL on out-of-memory. */
static void *prim_new(at_loop_t *loop, size_t size)
{
    prim_t *p = calloc(1, size);
    if (p) {
        p->loop = loop;
        p->id = at__tasks_next_object_id();
    }
    return p;
}

/* Frees a primitive (NULL: nothing); `waiters` say how many tasks still wait on it: none may. */
static void prim_free(void *p, size_t waiters)
{
    assert(waiters == 0);
    (void)waiters;
    free(p);
}

struct at_event {
    prim_t p;
    bool set;
    at__waitq_t wq;
};

int at_event_new(at_loop_t *loop, at_event_t **out)
{
    assert(loop && out);
    AT__CHECK_THREAD(loop, "at_event_new");
    at_event_t *ev = prim_new(loop, sizeof *ev);
    if (!ev)
        return AT_ENOMEM;
    *out = ev;
    return 0;
}

void at_event_free(at_event_t *ev)
{
    if (ev)
        prim_free(ev, ev->wq.n);
}

void at_event_set(at_event_t *ev)
{
    ev->set = true;
    while (at__waitq_wake_one(&ev->wq, NULL)) {
    }
}

void at_event_clear(at_event_t *ev)
{
    ev->set = false;
}

bool at_event_is_set(const at_event_t *ev)
{
    return ev->set;
}

size_t at_event_waiters(const at_event_t *ev)
{
    return ev->wq.n;
}

AT__AWAIT_TEXT int at_event_wait(at_event_t *ev)
{
    if (ev->set)
        return at__task_current() ? 0 : AT_EINVALSTATE;
    at__waiter_t w;
    return at__waitq_wait(&ev->wq, &w, AT_WAIT_EVENT, ev->p.id);
}

struct at_lock {
    prim_t p;
    bool locked;
    at__waitq_t wq;
};

int at_lock_new(at_loop_t *loop, at_lock_t **out)
{
    assert(loop && out);
    AT__CHECK_THREAD(loop, "at_lock_new");
    at_lock_t *l = prim_new(loop, sizeof *l);
    if (!l)
        return AT_ENOMEM;
    *out = l;
    return 0;
}

void at_lock_free(at_lock_t *l)
{
    if (l)
        prim_free(l, l->wq.n);
}

AT__AWAIT_TEXT int at_lock_acquire(at_lock_t *l)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    if (!l->locked && l->wq.n == 0) {
        l->locked = true;
        return 0;
    }
    at__waiter_t w;
    /* On success the releaser handed the lock over to us: it stays locked. */
    return at__waitq_wait(&l->wq, &w, AT_WAIT_LOCK, l->p.id);
}

void at_lock_release(at_lock_t *l)
{
    assert(l->locked);
    if (!at__waitq_wake_one(&l->wq, NULL))
        l->locked = false;
}

bool at_lock_locked(const at_lock_t *l)
{
    return l->locked;
}

struct at_semaphore {
    prim_t p;
    unsigned value;
    at__waitq_t wq;
};

int at_semaphore_new(at_loop_t *loop, unsigned value, at_semaphore_t **out)
{
    assert(loop && out);
    AT__CHECK_THREAD(loop, "at_semaphore_new");
    at_semaphore_t *s = prim_new(loop, sizeof *s);
    if (!s)
        return AT_ENOMEM;
    s->value = value;
    *out = s;
    return 0;
}

void at_semaphore_free(at_semaphore_t *s)
{
    if (s)
        prim_free(s, s->wq.n);
}

AT__AWAIT_TEXT int at_semaphore_acquire(at_semaphore_t *s)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    if (s->value > 0 && s->wq.n == 0) {
        s->value--;
        return 0;
    }
    at__waiter_t w;
    /* A release hands its unit straight to the first waiter. */
    return at__waitq_wait(&s->wq, &w, AT_WAIT_SEMAPHORE, s->p.id);
}

void at_semaphore_release(at_semaphore_t *s)
{
    if (!at__waitq_wake_one(&s->wq, NULL))
        s->value++;
}

unsigned at_semaphore_value(const at_semaphore_t *s)
{
    return s->value;
}

struct at_queue {
    prim_t p;
    size_t cap, head, len;
    at__waitq_t getters; /* waiting for an item */
    at__waitq_t putters; /* waiting for room; their item rides in waiter.value */
    void **items;
};

int at_queue_new(at_loop_t *loop, size_t capacity, at_queue_t **out)
{
    assert(loop && out && capacity >= 1);
    AT__CHECK_THREAD(loop, "at_queue_new");
    at_queue_t *q = prim_new(loop, sizeof *q);
    void **items = calloc(capacity, sizeof *items);
    if (!q || !items) {
        free(q);
        free(items);
        return AT_ENOMEM;
    }
    q->cap = capacity;
    q->items = items;
    q->putters.role = AT__WQ_QUEUE_PUT;
    q->getters.role = AT__WQ_QUEUE_GET;
    *out = q;
    return 0;
}

void at_queue_free(at_queue_t *q)
{
    if (q) {
        assert(q->getters.n == 0 && q->putters.n == 0);
        free(q->items);
        free(q);
    }
}

static void ring_push(at_queue_t *q, void *item)
{
    q->items[(q->head + q->len) % q->cap] = item;
    q->len++;
}

static void *ring_pop(at_queue_t *q)
{
    void *item = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return item;
}

int at_queue_try_put(at_queue_t *q, void *item)
{
    /* A waiting getter takes the item directly. */
    if (q->len == 0 && at__waitq_wake_one(&q->getters, item))
        return 0;
    if (q->len == q->cap)
        return AT_EAGAIN;
    ring_push(q, item);
    return 0;
}

int at_queue_try_get(at_queue_t *q, void **item)
{
    if (q->len == 0)
        return AT_EAGAIN;
    *item = ring_pop(q);
    /* Room now: the first waiting putter's item goes in. */
    at__waiter_t *w = q->putters.head;
    if (w) {
        ring_push(q, w->value);
        at__waitq_wake_one(&q->putters, w->value);
    }
    return 0;
}

AT__AWAIT_TEXT int at_queue_put(at_queue_t *q, void *item)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    if (at_queue_try_put(q, item) == 0)
        return 0;
    at__waiter_t w;
    w.value = item; /* at_queue_try_get moves it into the ring when room frees */
    return at__waitq_wait(&q->putters, &w, AT_WAIT_QUEUE, q->p.id);
}

AT__AWAIT_TEXT int at_queue_get(at_queue_t *q, void **item)
{
    if (!at__task_current())
        return AT_EINVALSTATE;
    if (at_queue_try_get(q, item) == 0)
        return 0;
    at__waiter_t w;
    w.value = NULL;
    int rc = at__waitq_wait(&q->getters, &w, AT_WAIT_QUEUE, q->p.id);
    if (rc == 0)
        *item = w.value;
    return rc;
}

size_t at_queue_size(const at_queue_t *q)
{
    return q->len;
}
