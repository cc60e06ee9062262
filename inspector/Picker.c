/* Picker.c: the process picker's scan and probes (see Picker.h). */
#include "Picker.h"

#include "Model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void Picker_init(Picker *this, uv_loop_t *loop, bool *dirty)
{
    memset(this, 0, sizeof *this);
    this->loop = loop;
    this->dirty = dirty;
}

static void pick_msg(Client *c, const at_wire_msg_t *msg)
{
    PickEntry *e = c->data;
    if (!e)
        return;
    if (msg->type == AT_WIRE_HELLO) {
        snprintf(e->program, sizeof e->program, "%s",
                 msg->u.hello.program ? msg->u.hello.program : "?");
        e->uptime_ns = msg->u.hello.now_ns;
        e->answered = true;
    } else if (msg->type == AT_WIRE_UPDATE) {
        const at_wire_update_t *u = &msg->u.update;
        e->uptime_ns = u->ts_ns;
        e->tasks = 0;
        if (u->has_stats)
            for (int i = 0; i < TS_DONE; i++)
                e->tasks += u->stats.tasks_by_state[i];
        else
            e->tasks = u->n_tasks_new;
        if (u->n_loops > 1) { /* every loop's, not only the main one's */
            e->tasks = 0;
            for (uint32_t i = 0; i < u->n_loops; i++)
                e->tasks += u->loops[i].pending;
        }
        e->probing = false;
        Client_close(c);
    }
    *e->picker->dirty = true;
}

static void pick_end(Client *c)
{
    PickEntry *e = c->data;
    e->probing = false;
    if (!e->answered || c->end != END_NONE) {
        if (!e->answered)
            snprintf(e->note, sizeof e->note, "%s",
                     c->end == END_REFUSED ? "stale socket (nobody listens)"
                                           : Client_endName(c->end));
    }
    *e->picker->dirty = true;
}

static void pick_closed(Client *c)
{
    PickEntry *e = c->data;
    e->used = false;
}

void Picker_scan(Picker *this)
{
    Target *t = calloc(DISCOVERY_MAX, sizeof *t);
    if (!t)
        return;
    size_t n = Discovery_list(t, DISCOVERY_MAX);
    /* keep entries whose probe is still closing: they own live handles */
    Picker_close(this);
    bool busy = false;
    for (size_t i = 0; i < this->n; i++)
        busy |= this->entries[i].used;
    if (busy) {
        free(t);
        return; /* rescan on the next tick, once probes have closed */
    }
    PickEntry *old = this->entries;
    size_t nold = this->n;
    this->entries = calloc(n ? n : 1, sizeof *this->entries);
    this->n = n;
    for (size_t i = 0; i < n; i++) {
        PickEntry *e = &this->entries[i];
        e->picker = this;
        e->target = t[i];
        snprintf(e->program, sizeof e->program, "%s", t[i].comm);
        if (!t[i].alive) {
            snprintf(e->note, sizeof e->note, "stale socket (process gone)");
            continue;
        }
        /* what the last probe learnt stays shown (and pickable) while we ask again */
        bool known = false;
        for (size_t k = 0; k < nold; k++)
            if (old[k].target.pid == t[i].pid && old[k].answered) {
                memcpy(e->program, old[k].program, sizeof e->program);
                e->uptime_ns = old[k].uptime_ns;
                e->tasks = old[k].tasks;
                e->answered = known = true;
            }
        if (!known)
            e->program[0] = '\0';
        e->client.data = e;
        e->client.on_msg = pick_msg;
        e->client.on_end = pick_end;
        e->client.on_closed = pick_closed;
        if (Client_connect(&e->client, this->loop, t[i].path, 100, true) == 0) {
            e->used = true;
            e->probing = true;
        } else {
            snprintf(e->note, sizeof e->note, "%.90s", e->client.error);
        }
    }
    free(old);
    free(t);
    *this->dirty = true;
}

void Picker_close(Picker *this)
{
    for (size_t i = 0; i < this->n; i++)
        if (this->entries[i].used)
            Client_close(&this->entries[i].client);
}

void Picker_done(Picker *this)
{
    free(this->entries);
    this->entries = NULL;
    this->n = 0;
}
