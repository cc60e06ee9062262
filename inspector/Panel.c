/* Panel.c: cursor and scrolling arithmetic of lists (see Panel.h). */
#include "Panel.h"

void Panel_init(Panel *this)
{
    this->count = this->selected = this->top = 0;
    this->height = 1;
}

void Panel_setCount(Panel *this, uint32_t count)
{
    this->count = count;
    if (count == 0)
        this->selected = this->top = 0;
    else if (this->selected >= count)
        this->selected = count - 1;
    if (this->top > this->selected)
        this->top = this->selected;
}

void Panel_move(Panel *this, int64_t delta)
{
    if (this->count == 0)
        return;
    int64_t s = (int64_t)this->selected + delta;
    if (s < 0)
        s = 0;
    if (s >= (int64_t)this->count)
        s = this->count - 1;
    this->selected = (uint32_t)s;
}

void Panel_home(Panel *this)
{
    this->selected = 0;
}

void Panel_end(Panel *this)
{
    this->selected = this->count ? this->count - 1 : 0;
}

void Panel_select(Panel *this, uint32_t row)
{
    this->selected = row;
    Panel_setCount(this, this->count);
}

void Panel_movePage(Panel *this, int dir)
{
    if (this->count == 0)
        return;
    int64_t page = Panel_page(this) * (int64_t)(dir < 0 ? -1 : 1);
    int64_t h = this->height > 0 ? this->height : 1;
    int64_t top = (int64_t)this->top + page, max_top = (int64_t)this->count - h;
    if (top > max_top)
        top = max_top;
    if (top < 0)
        top = 0;
    this->top = (uint32_t)top;
    Panel_move(this, page);
}

int Panel_page(const Panel *this)
{
    return this->height > 2 ? this->height - 1 : 1;
}

void Panel_draw(Panel *this, int y, int h, Panel_DrawRow draw, void *ctx)
{
    if (h < 1)
        h = 1;
    this->height = h;
    if (this->selected < this->top)
        this->top = this->selected;
    if (this->selected >= this->top + (uint32_t)h)
        this->top = this->selected - (uint32_t)h + 1;
    if (this->count > (uint32_t)h && this->top > this->count - (uint32_t)h)
        this->top = this->count - (uint32_t)h;
    if (this->count <= (uint32_t)h)
        this->top = 0;
    for (int i = 0; i < h && this->top + (uint32_t)i < this->count; i++)
        draw(ctx, this->top + (uint32_t)i, y + i, this->top + (uint32_t)i == this->selected);
}
