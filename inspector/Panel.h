/* Panel.h: a scrolling list with a cursor (htop's Panel, without the drawing
 * policy): it knows how many rows there are, which is selected and which is
 * at the top, and draws only the visible rows through a callback. */
#ifndef ASYNCTOP_PANEL_H
#define ASYNCTOP_PANEL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct Panel {
    uint32_t count;    /* rows */
    uint32_t selected; /* cursor row (0 when count is 0) */
    uint32_t top;      /* first visible row */
    int height;        /* visible rows at the last draw (page size) */
} Panel;

/* Draws row i at screen line y; selected says whether the cursor is on it. */
typedef void (*Panel_DrawRow)(void *ctx, uint32_t i, int y, bool selected);

void Panel_init(Panel *this);
/* Sets the row count, keeping the cursor inside [0, count). */
void Panel_setCount(Panel *this, uint32_t count);
/* Moves the cursor by delta rows, clamped at both ends. */
void Panel_move(Panel *this, int64_t delta);
void Panel_home(Panel *this);
void Panel_end(Panel *this);
void Panel_select(Panel *this, uint32_t row);
/* Page size for PgUp/PgDn (height - 1, at least 1). */
int Panel_page(const Panel *this);
/* PgDn (dir > 0) / PgUp (dir < 0): scrolls the view one page (the last page shows full, the
 * first starts at row 0) and moves the cursor one page with it, clamped at both ends; so a
 * page of text longer than the screen scrolls at once, not only once the cursor has reached
 * its bottom. */
void Panel_movePage(Panel *this, int dir);
/* Draws the rows visible in h lines from line y (scrolling so the cursor is
 * visible); calls draw only for those rows. Lines past the last row are
 * left to the caller (cleared by the screen). */
void Panel_draw(Panel *this, int y, int h, Panel_DrawRow draw, void *ctx);

#endif
