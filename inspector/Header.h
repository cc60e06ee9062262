/* Header.h: the lines at the top of every screen: process, loop health,
 * which of the process's loops is shown, tasks by state, threshold, debug, dropped counters,
 * connection state, and the BLOCKED banner (as the process last reported it). */
#ifndef ASYNCTOP_HEADER_H
#define ASYNCTOP_HEADER_H

#include "App.h"

/* Lines the header needs now: 2, one more naming the loop shown when the process has (had)
 * several loops or another than the main one is shown (a single-loop program's header does not
 * change), and the BLOCKED banner's line, always (blank while the loop is not blocked), so the
 * rows below never move when the banner comes and goes. */
int Header_height(App *app);
/* True when the header has the line naming the loop shown. */
bool Header_showsLoop(App *app);
/* Draws the header from line 0 in width w. */
void Header_draw(App *app, int w);
/* How long the loop had been blocked when the process last reported it (not extrapolated:
 * the callback may have returned since). 0 when not blocked. */
uint64_t Header_blockedNs(App *app);
/* How long ago (local ms) that report arrived; 0 when not blocked. */
uint64_t Header_blockedAgeMs(App *app);
/* "1.3 s": ns in seconds cut (not rounded) to 0.1 s, so a running time reads no more than
 * was reported (the BLOCKED banner, the loop line, the Loops list). */
void Header_seconds(uint64_t ns, char *buf, size_t len);
/* "12.3k" style for rates. */
void Header_rate(double v, char *buf, size_t len);

#endif
