/* Action.c: the key table and the handlers it names (see Action.h). */
#include "Action.h"

#include "Duration.h"
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

static Panel *panel(App *app)
{
    return &App_current(app)->panel;
}

static Reaction act_up(App *app, int key)
{
    Panel_move(panel(app), -1);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_down(App *app, int key)
{
    Panel_move(panel(app), 1);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_pgup(App *app, int key)
{
    Panel_movePage(panel(app), -1);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_pgdn(App *app, int key)
{
    Panel_movePage(panel(app), 1);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_home(App *app, int key)
{
    Panel_home(panel(app));
    return R_HANDLED | R_REDRAW;
}

static Reaction act_end(App *app, int key)
{
    Panel_end(panel(app));
    return R_HANDLED | R_REDRAW;
}

static Reaction act_enter(App *app, int key)
{
    Screen *s = App_current(app);
    return s->cls->enter ? s->cls->enter(s, app) : R_HANDLED;
}

static TaskView *view_of(App *app)
{
    return App_currentId(app) == SCR_GROUP_TASKS ? &app->group_tasks : &app->tasks;
}

/* The filter text of the current screen's list: the Slow screen's own, else the task view's. */
static const char *filter_text(App *app)
{
    return App_currentId(app) == SCR_SLOW ? app->slow_filter : view_of(app)->filter;
}

static void set_filter(App *app, const char *text)
{
    if (App_currentId(app) == SCR_SLOW) {
        snprintf(app->slow_filter, sizeof app->slow_filter, "%s", text);
        Panel_home(panel(app));
    } else {
        TaskView_setFilter(view_of(app), text);
    }
}

static Reaction act_back(App *app, int key)
{
    if (app->depth > 0 && App_currentId(app) != SCR_PICK) {
        App_pop(app);
        return R_HANDLED | R_REDRAW;
    }
    if (App_currentId(app) == SCR_SLOW && app->slow_filter[0]) {
        set_filter(app, "");
        App_status(app, "filter cleared");
        return R_HANDLED | R_REDRAW;
    }
    if (App_currentId(app) == SCR_TASKS && app->tasks.filter[0]) {
        TaskView_setFilter(&app->tasks, "");
        App_status(app, "filter cleared");
        return R_HANDLED | R_REDRAW;
    }
    return R_HANDLED;
}

static Reaction act_next_tab(App *app, int key)
{
    App_setTab(app, (app->tab + 1) % SCR_NTABS);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_prev_tab(App *app, int key)
{
    App_setTab(app, (app->tab + SCR_NTABS - 1) % SCR_NTABS);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_tab_n(App *app, int key)
{
    App_setTab(app, key - '1');
    return R_HANDLED | R_REDRAW;
}

static Reaction act_filter(App *app, int key)
{
    app->prompt = PROMPT_FILTER;
    snprintf(app->input, sizeof app->input, "%s", filter_text(app));
    app->input_len = strlen(app->input);
    app->prompt_error[0] = '\0';
    return R_HANDLED | R_REDRAW;
}

static Reaction act_sort_next(App *app, int key)
{
    TaskView *v = view_of(app);
    int dir = key == '<' || key == ',' ? -1 : 1;
    TaskColumn c = (TaskColumn)((v->sort + TC_COUNT + dir) % TC_COUNT);
    TaskView_setSort(v, c, TaskColumn_info[c].descending);
    App_status(app, "sorted by %s%s", TaskColumn_info[c].title,
               v->descending ? " (descending)" : "");
    return R_HANDLED | R_REDRAW;
}

static Reaction act_invert(App *app, int key)
{
    TaskView *v = view_of(app);
    TaskView_setSort(v, v->sort, !v->descending);
    App_status(app, "sorted by %s%s", TaskColumn_info[v->sort].title,
               v->descending ? " (descending)" : " (ascending)");
    return R_HANDLED | R_REDRAW;
}

static Reaction act_pause(App *app, int key)
{
    if (app->client.state != CL_LIVE) {
        App_status(app, "not connected");
        return R_HANDLED | R_REDRAW;
    }
    at_wire_request_t req;
    memset(&req, 0, sizeof req);
    req.op = app->paused ? AT_WIRE_OP_RESUME : AT_WIRE_OP_PAUSE;
    app->req_pause = Client_request(&app->client, &req);
    app->paused = !app->paused;
    app->model.conn = app->paused ? CONN_PAUSED : CONN_LIVE;
    App_status(app,
               app->paused ? "paused: the screen keeps the last state (space resumes)" : "resumed");
    return R_HANDLED | R_REDRAW;
}

static Reaction act_help(App *app, int key)
{
    if (App_currentId(app) == SCR_HELP)
        App_pop(app);
    else
        App_push(app, SCR_HELP);
    return R_HANDLED | R_REDRAW;
}

static Reaction act_quit(App *app, int key)
{
    app->quit = true;
    return R_HANDLED | R_QUIT;
}

static Reaction act_step(App *app, int key)
{
    if (app->client.state != CL_LIVE) {
        App_status(app, "not connected: the threshold cannot be changed");
        return R_HANDLED | R_REDRAW;
    }
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
    if (app->client.state != CL_LIVE) {
        App_status(app, "not connected: the threshold cannot be changed");
        return R_HANDLED | R_REDRAW;
    }
    app->prompt = PROMPT_THRESHOLD;
    app->input[0] = '\0';
    app->input_len = 0;
    app->prompt_error[0] = '\0';
    return R_HANDLED | R_REDRAW;
}

static Reaction act_debug(App *app, int key)
{
    if (app->client.state != CL_LIVE) {
        App_status(app, "not connected: debug mode cannot be changed");
        return R_HANDLED | R_REDRAW;
    }
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
    ScreenId s = App_currentId(app);
    if (s == SCR_DETAIL)
        id = app->model.detail_id;
    else {
        TaskView *v = TasksScreen_view(app); /* up to date: rows of an older build may dangle */
        Panel *p = panel(app);
        if (v && p->selected < v->n)
            id = v->rows[p->selected]->id;
    }
    Task *t = Model_findTask(&app->model, id);
    if (!t || t->gone_ms) {
        App_status(app, "no live task selected");
        return R_HANDLED | R_REDRAW;
    }
    app->cancel_id = id;
    app->prompt = PROMPT_CONFIRM_CANCEL;
    app->prompt_error[0] = '\0';
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
    if (App_currentId(app) == SCR_LOOPS) {
        App_pop(app);
        return R_HANDLED | R_REDRAW;
    }
    App_push(app, SCR_LOOPS);
    /* the cursor starts on the loop shown */
    Screen *s = &app->screens[SCR_LOOPS];
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

const KeyBinding Action_bindings[] = {
    {KEY_UP, "Up", SCOPE_LISTS, "move the cursor up", act_up},
    {'k', "k", SCOPE_LISTS, "move the cursor up", act_up},
    {KEY_DOWN, "Down", SCOPE_LISTS, "move the cursor down", act_down},
    {'j', "j", SCOPE_LISTS, "move the cursor down", act_down},
    {KEY_PPAGE, "PgUp", SCOPE_LISTS, "one page up", act_pgup},
    {KEY_NPAGE, "PgDn", SCOPE_LISTS, "one page down", act_pgdn},
    {KEY_HOME, "Home", SCOPE_LISTS, "first row", act_home},
    {'g', "g", SCOPE_LISTS, "first row", act_home},
    {KEY_END, "End", SCOPE_LISTS, "last row", act_end},
    {'G', "G", SCOPE_LISTS, "last row", act_end},
    {'\r', "Enter", SCOPE_ALL, "open the selected row (task, group, event, process)", act_enter},
    {'\n', "Enter", SCOPE_ALL, "open the selected row (task, group, event, process)", act_enter},
    {KEY_ENTER, "Enter", SCOPE_ALL, "open the selected row (task, group, event, process)",
     act_enter},
    {KEY_ESC, "Esc", SCOPE_ALL, "back to the previous screen (or clear the filter)", act_back},
    {KEY_BACKSPACE, "Bksp", SCOPE_ATTACHED & ~SCOPE_TABS, "back to the previous screen", act_back},
    {'\t', "Tab", SCOPE_ATTACHED, "next screen", act_next_tab},
    {KEY_BTAB, "S-Tab", SCOPE_ATTACHED, "previous screen", act_prev_tab},
    {'1', "1", SCOPE_ATTACHED, "Tasks screen", act_tab_n},
    {'2', "2", SCOPE_ATTACHED, "Task tree screen", act_tab_n},
    {'3', "3", SCOPE_ATTACHED, "Grouped-by-stack screen", act_tab_n},
    {'4', "4", SCOPE_ATTACHED, "Slow callbacks screen", act_tab_n},
    {'5', "5", SCOPE_ATTACHED, "Exceptions screen", act_tab_n},
    {'6', "6", SCOPE_ATTACHED, "Loop screen", act_tab_n},
    {'/', "/", SCOPE_TASKS | SCOPE(SCR_SLOW),
     "filter tasks (id, name, state, waits on, where) / slow (callback, task, site)", act_filter},
    {KEY_F(4), "F4", SCOPE_TASKS | SCOPE(SCR_SLOW),
     "filter tasks (id, name, state, waits on, where) / slow (callback, task, site)", act_filter},
    {'>', ">", SCOPE_TASKS, "sort by the next column", act_sort_next},
    {'.', ".", SCOPE_TASKS, "sort by the next column", act_sort_next},
    {KEY_F(6), "F6", SCOPE_TASKS, "sort by the next column", act_sort_next},
    {'<', "<", SCOPE_TASKS, "sort by the previous column", act_sort_next},
    {',', ",", SCOPE_TASKS, "sort by the previous column", act_sort_next},
    {'i', "i", SCOPE_TASKS, "invert the sort order", act_invert},
    {'c', "c", SCOPE_TASKS | SCOPE(SCR_DETAIL), "cancel the task (asks first)", act_cancel},
    {'+', "+", SCOPE_ATTACHED, "raise the slow threshold one step (10ms ... 5s)", act_step},
    {'=', "=", SCOPE_ATTACHED, "raise the slow threshold one step (10ms ... 5s)", act_step},
    {'-', "-", SCOPE_ATTACHED, "lower the slow threshold one step", act_step},
    {'t', "t", SCOPE_ATTACHED, "type a slow threshold (50ms, 0.2s, 250, 500us)", act_threshold},
    {'d', "d", SCOPE_ATTACHED, "toggle debug mode in the process", act_debug},
    {' ', "Space", SCOPE_ATTACHED, "pause / resume updates", act_pause},
    {']', "]", SCOPE_ATTACHED, "show the next event loop of the process", act_loop_step},
    {'[', "[", SCOPE_ATTACHED, "show the previous event loop of the process", act_loop_step},
    {'L', "L", SCOPE_ATTACHED, "list the process's loops to pick one (Enter)", act_loops},
    {'r', "r", SCOPE_ATTACHED, "reattach when the process came back", act_reattach},
    {'?', "?", SCOPE_ATTACHED, "this help", act_help},
    {KEY_F(1), "F1", SCOPE_ATTACHED, "this help", act_help},
    {'h', "h", SCOPE_ATTACHED, "this help", act_help},
    {12, "^L", SCOPE_ALL, "redraw the screen", act_redraw},
    {'q', "q", SCOPE_ALL, "quit", act_quit},
    {KEY_F(10), "F10", SCOPE_ALL, "quit", act_quit},
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

/* ---- the prompt ---------------------------------------------------------------- */

static Reaction prompt_key(App *app, int key)
{
    if (app->prompt == PROMPT_CONFIRM_CANCEL) {
        if (key == 'y' || key == 'Y') {
            at_wire_request_t req;
            memset(&req, 0, sizeof req);
            req.op = AT_WIRE_OP_CANCEL;
            req.task = app->cancel_id;
            app->req_cancel = Client_request(&app->client, &req);
            App_status(app,
                       app->req_cancel ? "cancelling task %llu..." : "not connected (task %llu)",
                       (unsigned long long)app->cancel_id);
        } else {
            App_status(app, "task %llu not cancelled", (unsigned long long)app->cancel_id);
        }
        app->prompt = PROMPT_NONE;
        return R_HANDLED | R_REDRAW;
    }
    if (key == KEY_ESC) {
        if (app->prompt == PROMPT_FILTER)
            set_filter(app, "");
        app->prompt = PROMPT_NONE;
        return R_HANDLED | R_REDRAW;
    }
    if (key == '\r' || key == '\n' || key == KEY_ENTER) {
        if (app->prompt == PROMPT_FILTER) {
            app->prompt = PROMPT_NONE;
            return R_HANDLED | R_REDRAW;
        }
        uint64_t ns;
        char err[96];
        if (Duration_parse(app->input, &ns, err, sizeof err) != 0) {
            snprintf(app->prompt_error, sizeof app->prompt_error, "%s", err);
            return R_HANDLED | R_REDRAW;
        }
        if (ns == 0) {
            snprintf(app->prompt_error, sizeof app->prompt_error, "the threshold must be above 0");
            return R_HANDLED | R_REDRAW;
        }
        at_wire_config_t cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.has_slow_ns = true;
        cfg.slow_ns = ns;
        App_setConfig(app, &cfg);
        app->prompt = PROMPT_NONE;
        return R_HANDLED | R_REDRAW;
    }
    if (key == KEY_BACKSPACE || key == 127 || key == 8) {
        /* drop a whole UTF-8 character */
        while (app->input_len > 0) {
            unsigned char c = (unsigned char)app->input[--app->input_len];
            if ((c & 0xc0) != 0x80)
                break;
        }
        app->input[app->input_len] = '\0';
    } else if (key == 21) { /* ^U */
        app->input_len = 0;
        app->input[0] = '\0';
    } else if (key >= 32 && key < 256 && key != 127 && app->input_len + 1 < sizeof app->input) {
        app->input[app->input_len++] = (char)key;
        app->input[app->input_len] = '\0';
    } else {
        return R_HANDLED;
    }
    app->prompt_error[0] = '\0';
    if (app->prompt == PROMPT_FILTER)
        set_filter(app, app->input); /* live filtering */
    return R_HANDLED | R_REDRAW;
}

Reaction Action_dispatch(App *app, int key)
{
    if (app->prompt != PROMPT_NONE)
        return prompt_key(app, key);
    const KeyBinding *b = Action_lookup(App_currentId(app), key);
    if (!b)
        return R_IGNORED;
    Reaction r = b->fn(app, key);
    TasksScreen_syncSelection(app);
    return r;
}
