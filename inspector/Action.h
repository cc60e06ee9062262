/* Action.h: every key binding of the TUI in one table (key, screens where it
 * applies, what it does); handlers change App state and return Reaction
 * flags, they never draw. The help screen is generated from this table. */
#ifndef ASYNCTOP_ACTION_H
#define ASYNCTOP_ACTION_H

#include "App.h"

typedef Reaction (*ActionFn)(App *app, int key);

#define SCOPE(id)   (1u << (id))
#define SCOPE_TABS  ((1u << SCR_NTABS) - 1)
#define SCOPE_TASKS (SCOPE(SCR_TASKS) | SCOPE(SCR_GROUP_TASKS))
#define SCOPE_LISTS                                                                                \
    (SCOPE_TABS | SCOPE(SCR_GROUP_TASKS) | SCOPE(SCR_DETAIL) | SCOPE(SCR_SLOW_DETAIL) |            \
     SCOPE(SCR_EXC_DETAIL) | SCOPE(SCR_HELP) | SCOPE(SCR_PICK) | SCOPE(SCR_LOOPS))
#define SCOPE_ATTACHED (SCOPE_LISTS & ~SCOPE(SCR_PICK))
#define SCOPE_ALL      ((1u << SCR_COUNT) - 1)

typedef struct KeyBinding {
    int key;             /* curses key code */
    const char *keyname; /* as shown in help ("Up", "j", "F6") */
    unsigned scope;      /* SCOPE() bits of the screens where it applies */
    const char *help;    /* one line; rows with equal help merge in the help screen */
    ActionFn fn;
    /* NULL: the key works at any time; else it needs a live connection, and this is what the
     * status line says when there is none (the handler is not called) */
    const char *offline;
} KeyBinding;

extern const KeyBinding Action_bindings[];
extern const unsigned Action_nbindings;

/* The binding for key on screen, or NULL. First match in table order. */
const KeyBinding *Action_lookup(ScreenId screen, int key);
/* Runs the binding for key on the current screen (or feeds the prompt when one is open; or
 * says "not connected" for a key that needs a live connection when there is none), then the
 * current screen's after_key hook. Returns R_IGNORED when nothing is bound. */
Reaction Action_dispatch(App *app, int key);

/* The threshold steps of + and -: 10, 20, 50, 100, 200, 500 ms, 1, 2, 5 s. */
extern const uint64_t Action_steps_ns[];
extern const unsigned Action_nsteps;
/* The next step above (dir > 0) or below (dir < 0) current; stays at the
 * ends. A current value between steps goes to the nearest step in dir. */
uint64_t Action_thresholdStep(uint64_t current_ns, int dir);

/* One help line per distinct action: "Up k      move the cursor up". Fills
 * at most max lines of width len; returns how many. */
unsigned Action_helpLines(char (*lines)[96], unsigned max);

#endif
