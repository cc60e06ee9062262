/* Action.c: the key table and the handlers it names (see Action.h). */
#include "Action.h"

#include "Prompt.h"
#include "Screens.h"
#include "TaskColumn.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

const uint64_t Action_steps_ns[] = {10000000ull,   20000000ull,   50000000ull,
                                    100000000ull,  200000000ull,  500000000ull,
                                    1000000000ull, 2000000000ull, 5000000000ull};
const unsigned Action_nsteps = sizeof Action_steps_ns / sizeof Action_steps_ns[0];

uint64_t Action_thresholdStep(uint64_t cur, int dir)
{
    if (dir > 0) {
        for (unsigned i = 0; i < Action_nsteps; i++)
            if (Action_steps_ns[i] > cur)
                return Action_steps_ns[i];
        return Action_steps_ns[Action_nsteps - 1];
    }
    for (unsigned i = Action_nsteps; i-- > 0;)
        if (Action_steps_ns[i] < cur)
            return Action_steps_ns[i];
    return Action_steps_ns[0];
}

/* ---- handlers ------------------------------------------------------------- */

static Screen *current(App *app)
{
    return ScreenManager_current(&app->sm);
}

static ScreenId current_id(App *app)
{
    return ScreenManager_currentId(&app->sm);
}

/* The cursor keys: a row, a page, or an end, up or down. */
static Reaction act_move(App *app, int key)
{
    Panel *p = &current(app)->panel;
    switch (key) {
    case KEY_UP:
    case 'k':
        Panel_move(p, -1);
        break;
    case KEY_DOWN:
    case 'j':
        Panel_move(p, 1);
        break;
    case KEY_PPAGE:
        Panel_movePage(p, -1);
        break;
    case KEY_NPAGE:
        Panel_movePage(p, 1);
        break;
    case KEY_HOME:
    case 'g':
        Panel_home(p);
        break;
    default: /* End, G */
        Panel_end(p);
        break;
    }
    return R_HANDLED | R_REDRAW;
}

static Reaction act_enter(App *app, int key)
{
    Screen *s = current(app);
    return s->cls->enter ? s->cls->enter(s, app) : R_HANDLED;
}

static Reaction act_back(App *app, int key)
{
    ScreenId cur = current_id(app);
    if (cur >= SCR_NTABS && cur != SCR_PICK) {
        ScreenManager_pop(&app->sm);
        return R_HANDLED | R_REDRAW;
    }
    if (cur == SCR_SLOW && app->slow_filter[0]) {
        Prompt_setFilter(app, "");
        App_status(app, "filter cleared");
        return R_HANDLED | R_REDRAW;
    }
    if (cur == SCR_TASKS && app->tasks.filter[0]) {
        TaskView_setFilter(&app->tasks, "");
        App_status(app, "filter cleared");
        return R_HANDLED | R_REDRAW;
    }
    return R_HANDLED;
}

/* Tab, S-Tab, and 1 to 6. */
static Reaction act_tab(App *app, int key)
{
    int tab = app->sm.tab;
    if (key == '\t')
        tab = (tab + 1) % SCR_NTABS;
    else if (key == KEY_BTAB)
        tab = (tab + SCR_NTABS - 1) % SCR_NTABS;
    else
        tab = key - '1';
    ScreenManager_setTab(&app->sm, tab);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_filter(App *app, int key)
{
    Prompt_open(&app->prompt, PROMPT_FILTER, Prompt_filterText(app));
    return R_HANDLED | R_REDRAW;
}

static Reaction act_sort_next(App *app, int key)
{
    TaskView *v = TasksScreen_keyView(app);
    int dir = key == '<' || key == ',' ? -1 : 1;
    TaskColumn c = (TaskColumn)((v->sort + TC_COUNT + dir) % TC_COUNT);
    TaskView_setSort(v, c, TaskColumn_info[c].descending);
    App_status(app, "sorted by %s%s", TaskColumn_info[c].title,
               v->descending ? " (descending)" : "");
    return R_HANDLED | R_REDRAW;
}

static Reaction act_invert(App *app, int key)
{
    TaskView *v = TasksScreen_keyView(app);
    TaskView_setSort(v, v->sort, !v->descending);
    App_status(app, "sorted by %s%s", TaskColumn_info[v->sort].title,
               v->descending ? " (descending)" : " (ascending)");
    return R_HANDLED | R_REDRAW;
}

static Reaction act_pause(App *app, int key)
{
    at_wire_request_t req;
    memset(&req, 0, sizeof req);
    req.op = app->paused ? AT_WIRE_OP_RESUME : AT_WIRE_OP_PAUSE;
    App_request(app, &req);
    return R_HANDLED | R_REDRAW;
}

/* ? and L: open the screen, or close it when it is the current one. */
static void toggle(App *app, ScreenId id)
{
    if (current_id(app) == id)
        ScreenManager_pop(&app->sm);
    else
        ScreenManager_push(&app->sm, id);
}

static Reaction act_help(App *app, int key)
{
    toggle(app, SCR_HELP);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_quit(App *app, int key)
{
    app->quit = true;
    return R_HANDLED | R_QUIT;
}

static Reaction act_step(App *app, int key)
{
    at_wire_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.has_slow_ns = true;
    /* step from the value already asked for when its answer is still on its way */
    uint64_t from = app->pending_slow_ns ? app->pending_slow_ns : app->model.slow_threshold_ns;
    cfg.slow_ns = Action_thresholdStep(from, key == '-' || key == '_' ? -1 : 1);
    App_setConfig(app, &cfg);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_threshold(App *app, int key)
{
    Prompt_open(&app->prompt, PROMPT_THRESHOLD, NULL);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_debug(App *app, int key)
{
    at_wire_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.has_debug = true;
    cfg.debug = !app->model.debug;
    App_setConfig(app, &cfg);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_cancel(App *app, int key)
{
    uint64_t id = 0;
    if (current_id(app) == SCR_DETAIL)
        id = app->model.detail_id;
    else {
        TaskView *v = TasksScreen_view(app); /* up to date: rows of an older build may dangle */
        Panel *p = &current(app)->panel;
        if (v && p->selected < v->n)
            id = v->rows[p->selected]->id;
    }
    Task *t = Model_findTask(&app->model, id);
    if (!t || t->gone_ms) {
        App_status(app, "no live task selected");
        return R_HANDLED | R_REDRAW;
    }
    Prompt_confirmCancel(&app->prompt, id);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_reattach(App *app, int key)
{
    if (!app->reattach_pid) {
        App_status(app, "nothing to reattach to");
        return R_HANDLED | R_REDRAW;
    }
    char path[256];
    uint64_t pid = app->reattach_pid;
    Discovery_path(pid, path, sizeof path);
    app->loop_id = 0; /* a new process: its loop ids are its own */
    /* the "press r to reattach" offer is answered: say what happens now (the hello says when
     * it is done; App_attach says why not) */
    App_status(app, "reattaching to pid %llu...", (unsigned long long)pid);
    App_attach(app, pid, path);
    app->reattaching = app->model.conn == CONN_CONNECTING; /* attach started */
    return R_HANDLED | R_REDRAW;
}

static Reaction act_loop_step(App *app, int key)
{
    Model *m = &app->model;
    uint32_t next;
    uint32_t from = app->switching ? app->switch_to : m->loop_id;
    if (!Model_nextLoop(m, from, key == '[' ? -1 : 1, &next)) {
        App_status(app, Model_liveLoops(m) ? "the process has no other loop"
                                           : "the process reports no loops to choose from");
        return R_HANDLED | R_REDRAW;
    }
    App_switchLoop(app, next);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_loops(App *app, int key)
{
    bool open = current_id(app) != SCR_LOOPS;
    toggle(app, SCR_LOOPS);
    if (!open)
        return R_HANDLED | R_REDRAW;
    /* the cursor starts on the loop shown */
    Screen *s = ScreenManager_screen(&app->sm, SCR_LOOPS);
    Panel_setCount(&s->panel, app->model.nloops);
    for (uint32_t i = 0; i < app->model.nloops; i++)
        if (app->model.loops[i].id == app->model.loop_id)
            Panel_select(&s->panel, i);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_redraw(App *app, int key)
{
    clearok(curscr, TRUE);
    return R_HANDLED | R_REDRAW;
}

/* ---- the table -------------------------------------------------------------- */

#define KEY_ESC 27

/* The last column: what the status line says when the key is pressed without a live
 * connection (the handler is not called), or ANYTIME. */
#define ANYTIME           NULL
#define OFFLINE           "not connected"
#define OFFLINE_THRESHOLD "not connected: the threshold cannot be changed"
#define OFFLINE_DEBUG     "not connected: debug mode cannot be changed"

const KeyBinding Action_bindings[] = {
    {KEY_UP, "Up", SCOPE_LISTS, "move the cursor up", act_move, ANYTIME},
    {'k', "k", SCOPE_LISTS, "move the cursor up", act_move, ANYTIME},
    {KEY_DOWN, "Down", SCOPE_LISTS, "move the cursor down", act_move, ANYTIME},
    {'j', "j", SCOPE_LISTS, "move the cursor down", act_move, ANYTIME},
    {KEY_PPAGE, "PgUp", SCOPE_LISTS, "one page up", act_move, ANYTIME},
    {KEY_NPAGE, "PgDn", SCOPE_LISTS, "one page down", act_move, ANYTIME},
    {KEY_HOME, "Home", SCOPE_LISTS, "first row", act_move, ANYTIME},
    {'g', "g", SCOPE_LISTS, "first row", act_move, ANYTIME},
    {KEY_END, "End", SCOPE_LISTS, "last row", act_move, ANYTIME},
    {'G', "G", SCOPE_LISTS, "last row", act_move, ANYTIME},
    {'\r', "Enter", SCOPE_ALL, "open the selected row (task, group, event, process)", act_enter,
     ANYTIME},
    {'\n', "Enter", SCOPE_ALL, "open the selected row (task, group, event, process)", act_enter,
     ANYTIME},
    {KEY_ENTER, "Enter", SCOPE_ALL, "open the selected row (task, group, event, process)",
     act_enter, ANYTIME},
    {KEY_ESC, "Esc", SCOPE_ALL, "back to the previous screen (or clear the filter)", act_back,
     ANYTIME},
    {KEY_BACKSPACE, "Bksp", SCOPE_ATTACHED & ~SCOPE_TABS, "back to the previous screen", act_back,
     ANYTIME},
    {'\t', "Tab", SCOPE_ATTACHED, "next screen", act_tab, ANYTIME},
    {KEY_BTAB, "S-Tab", SCOPE_ATTACHED, "previous screen", act_tab, ANYTIME},
    {'1', "1", SCOPE_ATTACHED, "Tasks screen", act_tab, ANYTIME},
    {'2', "2", SCOPE_ATTACHED, "Task tree screen", act_tab, ANYTIME},
    {'3', "3", SCOPE_ATTACHED, "Grouped-by-stack screen", act_tab, ANYTIME},
    {'4', "4", SCOPE_ATTACHED, "Slow callbacks screen", act_tab, ANYTIME},
    {'5', "5", SCOPE_ATTACHED, "Exceptions screen", act_tab, ANYTIME},
    {'6', "6", SCOPE_ATTACHED, "Loop screen", act_tab, ANYTIME},
    {'/', "/", SCOPE_TASKS | SCOPE(SCR_SLOW),
     "filter tasks (id, name, state, waits on, where) / slow (callback, task, site)", act_filter,
     ANYTIME},
    {KEY_F(4), "F4", SCOPE_TASKS | SCOPE(SCR_SLOW),
     "filter tasks (id, name, state, waits on, where) / slow (callback, task, site)", act_filter,
     ANYTIME},
    {'>', ">", SCOPE_TASKS, "sort by the next column", act_sort_next, ANYTIME},
    {'.', ".", SCOPE_TASKS, "sort by the next column", act_sort_next, ANYTIME},
    {KEY_F(6), "F6", SCOPE_TASKS, "sort by the next column", act_sort_next, ANYTIME},
    {'<', "<", SCOPE_TASKS, "sort by the previous column", act_sort_next, ANYTIME},
    {',', ",", SCOPE_TASKS, "sort by the previous column", act_sort_next, ANYTIME},
    {'i', "i", SCOPE_TASKS, "invert the sort order", act_invert, ANYTIME},
    {'c', "c", SCOPE_TASKS | SCOPE(SCR_DETAIL), "cancel the task (asks first)", act_cancel,
     ANYTIME},
    {'+', "+", SCOPE_ATTACHED, "raise the slow threshold one step (10ms ... 5s)", act_step,
     OFFLINE_THRESHOLD},
    {'=', "=", SCOPE_ATTACHED, "raise the slow threshold one step (10ms ... 5s)", act_step,
     OFFLINE_THRESHOLD},
    {'-', "-", SCOPE_ATTACHED, "lower the slow threshold one step", act_step, OFFLINE_THRESHOLD},
    {'t', "t", SCOPE_ATTACHED, "type a slow threshold (50ms, 0.2s, 250, 500us)", act_threshold,
     OFFLINE_THRESHOLD},
    {'d', "d", SCOPE_ATTACHED, "toggle debug mode in the process", act_debug, OFFLINE_DEBUG},
    {' ', "Space", SCOPE_ATTACHED, "pause / resume updates", act_pause, OFFLINE},
    {']', "]", SCOPE_ATTACHED, "show the next event loop of the process", act_loop_step, ANYTIME},
    {'[', "[", SCOPE_ATTACHED, "show the previous event loop of the process", act_loop_step,
     ANYTIME},
    {'L', "L", SCOPE_ATTACHED, "list the process's loops to pick one (Enter)", act_loops, ANYTIME},
    {'r', "r", SCOPE_ATTACHED, "reattach when the process came back", act_reattach, ANYTIME},
    {'?', "?", SCOPE_ATTACHED, "this help", act_help, ANYTIME},
    {KEY_F(1), "F1", SCOPE_ATTACHED, "this help", act_help, ANYTIME},
    {'h', "h", SCOPE_ATTACHED, "this help", act_help, ANYTIME},
    {12, "^L", SCOPE_ALL, "redraw the screen", act_redraw, ANYTIME},
    {'q', "q", SCOPE_ALL, "quit", act_quit, ANYTIME},
    {KEY_F(10), "F10", SCOPE_ALL, "quit", act_quit, ANYTIME},
};
const unsigned Action_nbindings = sizeof Action_bindings / sizeof Action_bindings[0];

const KeyBinding *Action_lookup(ScreenId screen, int key)
{
    for (unsigned i = 0; i < Action_nbindings; i++)
        if (Action_bindings[i].key == key && (Action_bindings[i].scope & SCOPE(screen)))
            return &Action_bindings[i];
    return NULL;
}

unsigned Action_helpLines(char (*lines)[96], unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < Action_nbindings && n < max; i++) {
        const KeyBinding *b = &Action_bindings[i];
        bool seen = false;
        for (unsigned j = 0; j < i; j++)
            if (!strcmp(Action_bindings[j].help, b->help))
                seen = true;
        if (seen)
            continue;
        char keys[40] = "";
        size_t o = 0;
        for (unsigned j = i; j < Action_nbindings; j++) {
            const KeyBinding *c = &Action_bindings[j];
            if (strcmp(c->help, b->help) != 0 || strstr(keys, c->keyname))
                continue;
            int k = snprintf(keys + o, sizeof keys - o, "%s%s", o ? " " : "", c->keyname);
            if (k > 0 && (size_t)k < sizeof keys - o)
                o += (size_t)k;
        }
        snprintf(lines[n++], 96, "%-14s %s", keys, b->help);
    }
    return n;
}

Reaction Action_dispatch(App *app, int key)
{
    if (Prompt_isOpen(&app->prompt))
        return Prompt_key(app, key);
    const KeyBinding *b = Action_lookup(current_id(app), key);
    if (!b)
        return R_IGNORED;
    Reaction r;
    if (b->offline && !App_live(app)) {
        App_status(app, "%s", b->offline);
        r = R_HANDLED | R_REDRAW;
    } else {
        r = b->fn(app, key);
    }
    Screen *s = current(app); /* the handler may have changed it */
    if (s->cls->after_key)
        s->cls->after_key(s, app);
    return r;
}
