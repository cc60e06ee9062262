/* Prompt.c: the one-line editor in the status line (see Prompt.h). */
#include "Prompt.h"

#include "App.h"
#include "CRT.h"
#include "Duration.h"
#include "Screens.h"

#include <curses.h>
#include <stdio.h>
#include <string.h>

#define KEY_ESC 27

void Prompt_open(Prompt *this, PromptMode mode, const char *initial)
{
    this->mode = mode;
    snprintf(this->input, sizeof this->input, "%s", initial ? initial : "");
    this->input_len = strlen(this->input);
    this->error[0] = '\0';
}

void Prompt_confirmCancel(Prompt *this, uint64_t id)
{
    this->cancel_id = id;
    this->mode = PROMPT_CONFIRM_CANCEL;
    this->error[0] = '\0';
}

bool Prompt_isOpen(const Prompt *this)
{
    return this->mode != PROMPT_NONE;
}

const char *Prompt_filterText(App *app)
{
    return ScreenManager_currentId(&app->sm) == SCR_SLOW ? app->slow_filter
                                                         : TasksScreen_keyView(app)->filter;
}

void Prompt_setFilter(App *app, const char *text)
{
    if (ScreenManager_currentId(&app->sm) == SCR_SLOW) {
        snprintf(app->slow_filter, sizeof app->slow_filter, "%s", text);
        Panel_home(&ScreenManager_current(&app->sm)->panel);
    } else {
        TaskView_setFilter(TasksScreen_keyView(app), text);
    }
}

static Reaction answer_cancel(App *app, int key)
{
    Prompt *p = &app->prompt;
    if (key == 'y' || key == 'Y') {
        at_wire_request_t req;
        memset(&req, 0, sizeof req);
        req.op = AT_WIRE_OP_CANCEL;
        req.task = p->cancel_id;
        App_request(app, &req);
    } else {
        App_status(app, "task %llu not cancelled", (unsigned long long)p->cancel_id);
    }
    p->mode = PROMPT_NONE;
    return R_HANDLED | R_REDRAW;
}

/* Enter: the filter is already applied; a threshold is checked, then asked for. */
static Reaction submit(App *app)
{
    Prompt *p = &app->prompt;
    if (p->mode == PROMPT_FILTER) {
        p->mode = PROMPT_NONE;
        return R_HANDLED | R_REDRAW;
    }
    uint64_t ns;
    char err[96];
    if (Duration_parse(p->input, &ns, err, sizeof err) != 0) {
        snprintf(p->error, sizeof p->error, "%s", err);
        return R_HANDLED | R_REDRAW;
    }
    if (ns == 0) {
        snprintf(p->error, sizeof p->error, "the threshold must be above 0");
        return R_HANDLED | R_REDRAW;
    }
    at_wire_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.has_slow_ns = true;
    cfg.slow_ns = ns;
    App_setConfig(app, &cfg);
    p->mode = PROMPT_NONE;
    return R_HANDLED | R_REDRAW;
}

Reaction Prompt_key(App *app, int key)
{
    Prompt *p = &app->prompt;
    if (p->mode == PROMPT_CONFIRM_CANCEL)
        return answer_cancel(app, key);
    if (key == KEY_ESC) {
        if (p->mode == PROMPT_FILTER)
            Prompt_setFilter(app, "");
        p->mode = PROMPT_NONE;
        return R_HANDLED | R_REDRAW;
    }
    if (key == '\r' || key == '\n' || key == KEY_ENTER)
        return submit(app);
    if (key == KEY_BACKSPACE || key == 127 || key == 8) {
        /* drop a whole UTF-8 character */
        while (p->input_len > 0) {
            unsigned char c = (unsigned char)p->input[--p->input_len];
            if ((c & 0xc0) != 0x80)
                break;
        }
        p->input[p->input_len] = '\0';
    } else if (key == 21) { /* ^U */
        p->input_len = 0;
        p->input[0] = '\0';
    } else if (key >= 32 && key < 256 && key != 127 && p->input_len + 1 < sizeof p->input) {
        p->input[p->input_len++] = (char)key;
        p->input[p->input_len] = '\0';
    } else {
        return R_HANDLED;
    }
    p->error[0] = '\0';
    if (p->mode == PROMPT_FILTER)
        Prompt_setFilter(app, p->input); /* live filtering */
    return R_HANDLED | R_REDRAW;
}

bool Prompt_draw(App *app, int y, int w)
{
    const Prompt *p = &app->prompt;
    char buf[300];
    switch (p->mode) {
    case PROMPT_FILTER:
        snprintf(buf, sizeof buf, "Filter: %s", p->input);
        CRT_put(y, 0, buf, w, CRT_colors[C_PROMPT], true);
        curs_set(1);
        move(y, CRT_width(buf) < w ? CRT_width(buf) : w - 1);
        return true;
    case PROMPT_THRESHOLD: {
        char d[32];
        snprintf(buf, sizeof buf, "Slow threshold (now %s; e.g. 50ms, 0.2s, 250): %s%s%s",
                 Duration_format(app->model.slow_threshold_ns, d, sizeof d), p->input,
                 p->error[0] ? "   <- " : "", p->error);
        CRT_put(y, 0, buf, w, CRT_colors[p->error[0] ? C_ERROR : C_PROMPT], true);
        return true;
    }
    case PROMPT_CONFIRM_CANCEL: {
        Task *t = Model_findTask(&app->model, p->cancel_id);
        snprintf(buf, sizeof buf, "Cancel task %llu (%s)? y/N", (unsigned long long)p->cancel_id,
                 t ? t->name : "?");
        CRT_put(y, 0, buf, w, CRT_colors[C_WARN], true);
        return true;
    }
    case PROMPT_NONE:
        break;
    }
    return false;
}
