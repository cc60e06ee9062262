/* Prompt.h: the one-line editor in the status line: a filter typed live, a slow threshold
 * typed and checked, or "cancel task N?" answered with y. While it is open it takes every
 * key. */
#ifndef ASYNCTOP_PROMPT_H
#define ASYNCTOP_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "ScreenManager.h"

typedef enum PromptMode {
    PROMPT_NONE,
    PROMPT_FILTER,
    PROMPT_THRESHOLD,
    PROMPT_CONFIRM_CANCEL,
} PromptMode;

#define PROMPT_INPUT_MAX 128

typedef struct Prompt {
    PromptMode mode;
    char input[PROMPT_INPUT_MAX];
    size_t input_len;
    char error[128];    /* why the input was refused (threshold), "" none */
    uint64_t cancel_id; /* the task "cancel task N?" asks about */
} Prompt;

/* Opens the prompt in mode with initial text (NULL: empty), no error shown. */
void Prompt_open(Prompt *this, PromptMode mode, const char *initial);
/* Asks "cancel task id? y/N". */
void Prompt_confirmCancel(Prompt *this, uint64_t id);
/* Whether a prompt is open and takes the keys. */
bool Prompt_isOpen(const Prompt *this);
/* Feeds key to the open prompt: edits the input (whole UTF-8 characters, ^U clears), applies
 * the filter as typed, sends the threshold on Enter (an error stays shown when it does not
 * parse or is 0), answers the cancel question (y: the request is sent; anything else: not),
 * Esc closes (and clears a filter). */
Reaction Prompt_key(App *app, int key);
/* Draws the open prompt on line y of width w; false (nothing drawn) when none is open. */
bool Prompt_draw(App *app, int y, int w);

/* The filter text of the current screen's list: the Slow screen's own, else the task view's
 * (the Tasks screen's or a group's). */
const char *Prompt_filterText(App *app);
/* Sets the filter of the current screen's list (the Slow screen's cursor goes home). */
void Prompt_setFilter(App *app, const char *text);

#endif
