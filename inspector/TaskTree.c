/* TaskTree.c: cycle-safe task tree and grouping by stack (see TaskTree.h). */
#include "TaskTree.h"

#include "TaskColumn.h"
#include "TaskView.h"

#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t sz)
{
    p = realloc(p, sz ? sz : 1);
    if (!p)
        abort();
    return p;
}

void TaskTree_init(TaskTree *this)
{
    memset(this, 0, sizeof *this);
}

void TaskTree_done(TaskTree *this)
{
    free(this->rows);
    memset(this, 0, sizeof *this);
}

static int cmp_task_id(const void *a, const void *b)
{
    uint64_t x = (*(Task *const *)a)->id, y = (*(Task *const *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_by_parent(const void *a, const void *b)
{
    const Task *x = *(Task *const *)a, *y = *(Task *const *)b;
    if (x->parent != y->parent)
        return (x->parent > y->parent) - (x->parent < y->parent);
    return (x->id > y->id) - (x->id < y->id);
}

/* Children of `parent` in the by-parent sorted array: [*lo, *hi). */
static void children_range(Task **byp, uint32_t n, uint64_t parent, uint32_t *lo, uint32_t *hi)
{
    uint32_t a = 0, b = n;
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        if (byp[mid]->parent < parent)
            a = mid + 1;
        else
            b = mid;
    }
    *lo = a;
    b = n;
    while (a < b) {
        uint32_t mid = a + (b - a) / 2;
        if (byp[mid]->parent <= parent)
            a = mid + 1;
        else
            b = mid;
    }
    *hi = a;
}

typedef struct Frame {
    uint32_t next, end; /* children still to visit in byp */
    uint32_t depth;
    uint32_t more; /* `more` bits of the parent row */
} Frame;

void TaskTree_update(TaskTree *this, Model *m)
{
    if (this->built && this->built_gen == m->gen)
        return;
    uint32_t n = m->ntasks;
    this->rows = xrealloc(this->rows, n * sizeof *this->rows);
    this->n = 0;
    Task **byp = xrealloc(NULL, n * sizeof *byp);
    Task **byid = xrealloc(NULL, n * sizeof *byid);
    Frame *stack = xrealloc(NULL, (n + 1) * sizeof *stack);
    if (n) {
        memcpy(byp, m->tasks, n * sizeof *byp);
        memcpy(byid, m->tasks, n * sizeof *byid);
    }
    qsort(byp, n, sizeof *byp, cmp_by_parent);
    qsort(byid, n, sizeof *byid, cmp_task_id);
    for (uint32_t i = 0; i < n; i++)
        m->tasks[i]->mark = 0;

    /* Two passes over candidate roots: first the real roots (no parent, or a
     * parent we do not know), then anything not reached (cycles). */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t r = 0; r < n; r++) {
            Task *root = byid[r];
            if (root->mark)
                continue;
            bool real_root = root->parent == 0 || !Model_findTask(m, root->parent);
            if (pass == 0 && !real_root)
                continue;
            root->mark = 1;
            this->rows[this->n++] = (TreeRow){root, 0, true, 0, pass == 1};
            uint32_t sp = 0;
            children_range(byp, n, root->id, &stack[0].next, &stack[0].end);
            stack[0].depth = 1;
            stack[0].more = 0;
            sp = 1;
            while (sp) {
                Frame *f = &stack[sp - 1];
                if (f->next >= f->end) {
                    sp--;
                    continue;
                }
                Task *c = byp[f->next++];
                if (c->mark)
                    continue; /* already shown: a cycle closes here */
                c->mark = 1;
                /* siblings already shown (only possible on parent cycles) do not count */
                while (f->next < f->end && byp[f->next]->mark)
                    f->next++;
                bool later = f->next < f->end;
                uint32_t more = f->more;
                if (later && f->depth <= TASKTREE_MAX_INDENT)
                    more |= 1u << (f->depth - 1);
                this->rows[this->n++] = (TreeRow){c, f->depth, !later, more, false};
                if (sp <= n) {
                    Frame *nf = &stack[sp++];
                    children_range(byp, n, c->id, &nf->next, &nf->end);
                    nf->depth = f->depth + 1;
                    nf->more = more;
                }
            }
        }
    }
    free(byp);
    free(byid);
    free(stack);
    this->built_gen = m->gen;
    this->built = true;
}

void TaskGroups_init(TaskGroups *this)
{
    memset(this, 0, sizeof *this);
}

void TaskGroups_done(TaskGroups *this)
{
    free(this->g);
    memset(this, 0, sizeof *this);
}

static int cmp_group(const void *a, const void *b)
{
    const TaskGroup *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    if (x->longest_wait_ns != y->longest_wait_ns)
        return x->longest_wait_ns < y->longest_wait_ns ? 1 : -1;
    return (x->key > y->key) - (x->key < y->key);
}

void TaskGroups_update(TaskGroups *this, const Model *m)
{
    if (this->built && this->built_gen == m->gen)
        return;
    /* open-addressing table of group keys, sized for every task */
    uint32_t hcap = 16;
    while (hcap < m->ntasks * 2u + 2)
        hcap <<= 1;
    uint32_t *h = calloc(hcap, sizeof *h);
    if (!h)
        abort();
    this->n = 0;
    this->g = xrealloc(this->g, (m->ntasks + 1) * sizeof *this->g);
    for (uint32_t i = 0; i < m->ntasks; i++) {
        Task *t = m->tasks[i];
        if (t->gone_ms)
            continue;
        uint64_t key = Task_groupKey(t);
        uint32_t s = (uint32_t)(key * 0x9e3779b97f4a7c15ull >> 32) & (hcap - 1);
        while (h[s] && this->g[h[s] - 1].key != key)
            s = (s + 1) & (hcap - 1);
        if (!h[s]) {
            this->g[this->n] = (TaskGroup){key, 0, 0, t};
            h[s] = ++this->n;
        }
        TaskGroup *g = &this->g[h[s] - 1];
        g->count++;
        uint64_t w = Task_waitingNs(t, m);
        if (w > g->longest_wait_ns)
            g->longest_wait_ns = w;
        if (t->id < g->example->id)
            g->example = t;
    }
    free(h);
    qsort(this->g, this->n, sizeof *this->g, cmp_group);
    this->built_gen = m->gen;
    this->built = true;
}
