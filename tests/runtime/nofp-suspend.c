/* nofp-suspend.c: a program built as most are (-O2, no frame pointers; meson.build), once as
 * is and once stripped: the suspension stack of a task waiting three calls deep
 * (task_main -> wait_level1 -> wait_level2 -> wait_level3 -> at_event_wait) lists the four
 * application frames in order. Each frame's address is checked against the functions' own
 * addresses (right when stripped too); with argument "names", also their symbolised names.
 * Exit 0 = right. */
#include <asynctop.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#if defined(__clang__)
#define NOFP_NOIPA __attribute__((noinline)) /* clang has no noipa */
#else
#define NOFP_NOIPA __attribute__((noipa))
#endif

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "nofp-suspend: %s:%d: %s\n", __FILE__, __LINE__, #c);                  \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* noipa: not inlined, cloned or tail-called (each keeps its frame, as real code would). */
NOFP_NOIPA static int wait_level3(at_event_t *ev)
{
    int rc = at_event_wait(ev);
    __asm__ volatile("" ::: "memory");
    return rc;
}
NOFP_NOIPA static int wait_level2(at_event_t *ev)
{
    int rc = wait_level3(ev);
    __asm__ volatile("" ::: "memory");
    return rc;
}
NOFP_NOIPA static int wait_level1(at_event_t *ev)
{
    int rc = wait_level2(ev);
    __asm__ volatile("" ::: "memory");
    return rc;
}
NOFP_NOIPA static int task_main(void *arg, void **result)
{
    (void)result;
    int rc = wait_level1(arg);
    __asm__ volatile("" ::: "memory");
    return rc;
}

/* The one of fns[] whose code holds return address pc: the nearest start below the call. */
static int which(uintptr_t pc, const uintptr_t *fns, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (fns[i] <= pc - 1 && (best < 0 || fns[i] > fns[best]))
            best = i;
    return best >= 0 && pc - 1 - fns[best] < 256 ? best : -1;
}

int main(int argc, char **argv)
{
    int names = argc > 1 && strcmp(argv[1], "names") == 0;
    at_loop_t *loop;
    at_event_t *ev;
    at_task_t *t;
    CHECK(at_loop_new(&loop, NULL) == 0);
    CHECK(at_event_new(loop, &ev) == 0);
    CHECK(at_task_spawn(loop, task_main, ev, NULL, &t) == 0);
    at_loop_run(loop, AT_RUN_NOWAIT);

    void *pcs[AT_STACK_MAX];
    size_t n = at_task_suspension_stack(t, pcs, AT_STACK_MAX);
    at_frame_t fr[AT_STACK_MAX];
    at_frames_symbolise(pcs, n, fr);
    for (size_t i = 0; i < n; i++)
        printf("#%zu %p %s\n", i, pcs[i], fr[i].func);
    /* Not main or main_fn: all four, the last one reached: the application's outermost. */
    const uintptr_t fns[] = {(uintptr_t)wait_level3, (uintptr_t)wait_level2, (uintptr_t)wait_level1,
                             (uintptr_t)task_main,   (uintptr_t)main,        (uintptr_t)which};
    const char *want[] = {"wait_level3", "wait_level2", "wait_level1", "task_main"};
    CHECK(n >= 4);
    for (int i = 0; i < 4; i++) {
        if (which((uintptr_t)pcs[i], fns, 6) != i) {
            fprintf(stderr, "nofp-suspend: frame #%d %p is not in %s\n", i, pcs[i], want[i]);
            return 1;
        }
        if (names && strcmp(fr[i].func, want[i]) != 0) {
            fprintf(stderr, "nofp-suspend: frame #%d named '%s', want '%s'\n", i, fr[i].func,
                    want[i]);
            return 1;
        }
    }

    at_event_set(ev);
    CHECK(at_loop_run(loop, AT_RUN_DEFAULT) == 0);
    at_task_unref(t);
    at_event_free(ev);
    at_close_report_t rep;
    CHECK(at_loop_close(loop, &rep) == 0);
    return 0;
}
