/* ScreenManager.h: the screen stack (the tab screen and the screens pushed over it) and the
 * frame drawn around the current screen (header, tab bar, content, status/prompt line). */
#ifndef ASYNCTOP_SCREENMANAGER_H
#define ASYNCTOP_SCREENMANAGER_H

#include <stdint.h>

#include "Panel.h"

/* What a key handler asks for (htop's HandlerResult). */
typedef enum Reaction {
    R_IGNORED = 0,
    R_HANDLED = 1 << 0,
    R_REDRAW = 1 << 1, /* something visible changed */
    R_QUIT = 1 << 2,
} Reaction;

typedef enum ScreenId {
    SCR_TASKS, /* tab screens first, in tab order */
    SCR_TREE,
    SCR_GROUPS,
    SCR_SLOW,
    SCR_EXC,
    SCR_LOOP,
    SCR_NTABS,
    SCR_DETAIL = SCR_NTABS, /* pushed screens */
    SCR_GROUP_TASKS,
    SCR_SLOW_DETAIL,
    SCR_EXC_DETAIL,
    SCR_HELP,
    SCR_PICK,
    SCR_LOOPS, /* the loop picker */
    SCR_COUNT
} ScreenId;

typedef struct App App;
typedef struct Screen Screen;

typedef struct ScreenClass {
    ScreenId id;
    const char *name; /* tab label / title */
    /* Refreshes the panel's row count from the model and draws into lines
     * [y, y+h) of width w. */
    void (*draw)(Screen *s, App *app, int y, int h, int w);
    /* Enter on the selected row; NULL: nothing to open. */
    Reaction (*enter)(Screen *s, App *app);
    /* After every key handled while this screen is current (the cursor may have moved); NULL:
     * nothing to do. */
    void (*after_key)(Screen *s, App *app);
} ScreenClass;

struct Screen {
    const ScreenClass *cls;
    Panel panel;
    uint64_t sel_id; /* id under the cursor, to keep it across re-sorts */
};

#define SCREENMANAGER_DEPTH 8

/* Every screen (its cursor kept while it is not shown), the tab shown, and the screens pushed
 * over it (detail, help, pickers), the top one current. */
typedef struct ScreenManager {
    Screen screens[SCR_COUNT];
    int tab;
    ScreenId stack[SCREENMANAGER_DEPTH];
    int depth;
} ScreenManager;

/* The classes of every screen, indexed by ScreenId. */
extern const ScreenClass *const ScreenManager_classes[SCR_COUNT];

/* Sets up every screen from its class, the Tasks tab current. */
void ScreenManager_init(ScreenManager *this);
/* The screen the user sees now: the top of the stack, else the tab. */
ScreenId ScreenManager_currentId(const ScreenManager *this);
Screen *ScreenManager_current(ScreenManager *this);
Screen *ScreenManager_screen(ScreenManager *this, ScreenId id);
/* Pushes id over the current screen, its cursor on the first row (nothing when it is already
 * on top; the deepest stays when the stack is full). */
void ScreenManager_push(ScreenManager *this, ScreenId id);
/* Back to the screen below the top (nothing on a tab). */
void ScreenManager_pop(ScreenManager *this);
/* Shows tab screen tab (ignored outside [0, SCR_NTABS)), the stack emptied. */
void ScreenManager_setTab(ScreenManager *this, int tab);
/* Empties the stack down to the tab screen. */
void ScreenManager_popAll(ScreenManager *this);

/* Draws everything into the curses screen and refreshes it. */
void ScreenManager_draw(App *app);
/* Draws into the curses screen without refreshing (benchmarks). */
void ScreenManager_render(App *app, int rows, int cols);

#endif
