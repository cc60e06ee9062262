/* ListScreen.c: tables (column titles, rows of cells) and the list screens drawn with them
 * (see Screens.h). */
#include "CRT.h"
#include "Screens.h"

#include <assert.h>
#include <stdio.h>

static void cells(int y, int w, int n, const char *const *text, const TableColumn *cols, int attr,
                  int hl, bool desc)
{
    int x = 0;
    for (int i = 0; i < n && x < w; i++) {
        int cw = cols[i].width ? cols[i].width : w - x;
        if (cw > w - x)
            cw = w - x;
        int a = i == hl ? CRT_colors[C_SORTHEAD] : attr;
        char buf[300];
        if (i == hl) {
            /* the arrow always shows: the title gives way when the cell is narrow */
            int room = cw - 1;
            snprintf(buf, sizeof buf, "%.*s%s", room > 0 ? room : 0, text[i],
                     CRT_glyph(desc ? G_DOWN : G_UP));
        } else {
            snprintf(buf, sizeof buf, "%s", text[i]);
        }
        int tw = CRT_width(buf);
        if (cols[i].right && tw < cw) {
            CRT_put(y, x, "", cw - tw, a, true);
            CRT_put(y, x + cw - tw, buf, tw, a, false);
        } else {
            CRT_put(y, x, buf, cw, a, true);
        }
        x += cw;
        if (x < w && cols[i].width) {
            CRT_put(y, x, " ", 1, attr, true);
            x++;
        }
    }
    if (x < w)
        CRT_put(y, x, "", w - x, attr, true);
}

void Table_head(int y, int w, int n, const TableColumn *cols, int hl, bool descending)
{
    const char *titles[TABLE_MAX_COLUMNS];
    assert(n <= TABLE_MAX_COLUMNS);
    for (int i = 0; i < n; i++)
        titles[i] = cols[i].title;
    cells(y, w, n, titles, cols, CRT_colors[C_COLHEAD], hl, descending);
}

void Table_row(int y, int w, int n, const char *const *text, const TableColumn *cols, int attr)
{
    cells(y, w, n, text, cols, attr, -1, false);
}

static void draw_row(void *arg, uint32_t i, int y, bool sel)
{
    const ListScreen *ls = arg;
    ls->row(ls, i, y, sel);
}

void ListScreen_draw(const ListScreen *this, Screen *s, int y, int h, const char *info,
                     uint32_t count, const char *empty)
{
    if (info) {
        CRT_put(y, 0, info, this->w, CRT_colors[C_DIM], true);
        y++;
        h--;
    }
    Table_head(y, this->w, this->ncols, this->cols, -1, false);
    Panel_setCount(&s->panel, count);
    if (!count) {
        CRT_put(y + 1, 1, empty, this->w - 1, CRT_colors[C_DIM], false);
        return;
    }
    Panel_draw(&s->panel, y + 1, h - 1, draw_row, (void *)this);
}

void ListScreen_row(const ListScreen *this, int y, const char *const *cells, int attr)
{
    Table_row(y, this->w, this->ncols, cells, this->cols, attr);
}
