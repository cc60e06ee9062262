/* TaskTree.h: the spawn/await hierarchy flattened into display rows (pstree
 * order), and tasks grouped by suspension stack. Both are safe against
 * cycles and arbitrary depth in what the runtime reports. */
#ifndef ASYNCTOP_TASKTREE_H
#define ASYNCTOP_TASKTREE_H

#include "Model.h"

#define TASKTREE_MAX_INDENT 32 /* deeper levels are drawn at this indent */

typedef struct TreeRow {
    Task *task;
    uint32_t depth;
    bool last;     /* last child of its parent */
    uint32_t more; /* bit k (1..TASKTREE_MAX_INDENT): the ancestor at depth k has later siblings */
    bool cycle;    /* its parent chain loops: shown as a root, marked */
} TreeRow;

typedef struct TaskTree {
    TreeRow *rows;
    uint32_t n;
    uint64_t built_gen;
    bool built;
} TaskTree;

void TaskTree_init(TaskTree *this);
void TaskTree_done(TaskTree *this);
/* Rebuilds if the model changed. Every task appears exactly once: children
 * follow their parent ordered by id; tasks whose parent is unknown are roots;
 * tasks on a parent cycle appear once, the first reached as a root marked
 * cycle. Iterative: no recursion whatever the depth. */
void TaskTree_update(TaskTree *this, Model *m);

typedef struct TaskGroup {
    uint64_t key;
    uint32_t count;
    uint64_t longest_wait_ns;
    Task *example; /* a task of the group, for its stack and label */
} TaskGroup;

typedef struct TaskGroups {
    TaskGroup *g;
    uint32_t n;
    uint64_t built_gen;
    bool built;
} TaskGroups;

void TaskGroups_init(TaskGroups *this);
void TaskGroups_done(TaskGroups *this);
/* Rebuilds if the model changed: live tasks only, largest group first
 * (ties: longest wait first, then key). */
void TaskGroups_update(TaskGroups *this, const Model *m);

#endif
