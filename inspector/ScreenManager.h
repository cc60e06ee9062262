/* ScreenManager.h: lays out and draws the current screen (header, tab bar,
 * content, status/prompt line) and owns the screen stack. */
#ifndef ASYNCTOP_SCREENMANAGER_H
#define ASYNCTOP_SCREENMANAGER_H

#include "App.h"

/* The classes of every screen, indexed by ScreenId. */
extern const ScreenClass *const ScreenManager_classes[SCR_COUNT];

/* Sets up app->screens from the classes. */
void ScreenManager_init(App *app);
/* Draws everything into the curses screen and refreshes it. */
void ScreenManager_draw(App *app);
/* Draws into the curses screen without refreshing (benchmarks). */
void ScreenManager_render(App *app, int rows, int cols);

#endif
