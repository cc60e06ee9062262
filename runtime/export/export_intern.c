/* export_intern.c: the aggregator's interned tables, shared by every loop and every client —
 * code locations (call sites, stack frames) symbolised once, and stacks as lists of them — and
 * symbolised frames for a response. Exporter thread. */
#include "export_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- interning --------------------------------------------------------------------------- */

static uint64_t isite_key(uintptr_t addr, const char *name)
{
    return at__export_hash64((uint64_t)addr ^ at__export_hash_str(name));
}

static uint64_t isite_key_i(void *ctx, size_t i)
{
    agg_t *a = ctx;
    return isite_key(a->isites[i].addr, a->isites[i].name);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/* Symbolises pc into *loc (strings allocated): `given` as the function name if any, else the
 * symbol, else "lib+0xoffset". */
static void loc_symbolise(at_wire_loc_t *loc, const void *pc, bool is_return, const char *given)
{
    at__sym_t sym;
    at__sym_lookup(pc, is_return, &sym);
    loc->addr = (uint64_t)(uintptr_t)pc;
    loc->func = dup_or_null(given != NULL ? given : sym.func);
    if (loc->func == NULL && sym.lib[0]) {
        char buf[200];
        snprintf(buf, sizeof buf, "%s+0x%llx", sym.lib, (unsigned long long)sym.offset);
        loc->func = strdup(buf);
    }
    loc->file = dup_or_null(sym.file);
    loc->line = sym.line;
    loc->build_id = dup_or_null(sym.build_id);
}

uint32_t at__agg_intern_site(agg_t *a, uintptr_t addr, const char *name, bool is_return)
{
    if (addr == 0)
        return 0;
    if (name != NULL && *name == '\0')
        name = NULL;
    uint64_t k = isite_key(addr, name);
    if (a->isite_idx_cap != 0) {
        for (size_t h = (size_t)k & (a->isite_idx_cap - 1);; h = (h + 1) & (a->isite_idx_cap - 1)) {
            uint32_t v = a->isite_idx[h];
            if (v == 0)
                break;
            agg_intern_site_t *s = &a->isites[v - 1];
            if (s->addr == addr && (s->name == name || (s->name && name && !strcmp(s->name, name))))
                return v;
        }
    }
    if ((a->nisites + 1) * 2 > a->isite_idx_cap &&
        at__export_idx_rehash(&a->isite_idx, &a->isite_idx_cap, a->nisites, isite_key_i, a) != 0)
        return 0;
    if (at__export_grow((void **)&a->isites, &a->capisites, a->nisites + 1, sizeof *a->isites))
        return 0;
    agg_intern_site_t *s = &a->isites[a->nisites];
    memset(s, 0, sizeof *s);
    s->addr = addr;
    s->name = dup_or_null(name);
    s->ws.id = (uint32_t)(a->nisites + 1);
    loc_symbolise(&s->ws.loc, (const void *)addr, is_return, s->name);
    a->nisites++;
    at__export_idx_put(a->isite_idx, a->isite_idx_cap, k, s->ws.id);
    return s->ws.id;
}

static uint64_t stack_hash(const uint32_t *ids, unsigned n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (unsigned i = 0; i < n; i++)
        h = at__export_hash64(h ^ ids[i]);
    return h;
}

static uint64_t istack_key_i(void *ctx, size_t i)
{
    agg_t *a = ctx;
    return a->istacks[i].hash;
}

uint32_t at__agg_intern_stack(agg_t *a, void *const *pc, unsigned n)
{
    if (n == 0)
        return 0;
    if (n > AT_EXPORT_MAX_FRAMES)
        n = AT_EXPORT_MAX_FRAMES;
    uint32_t ids[AT_EXPORT_MAX_FRAMES] = {0};
    for (unsigned i = 0; i < n; i++)
        ids[i] = at__agg_intern_site(a, (uintptr_t)pc[i], NULL, i > 0);
    uint64_t h = stack_hash(ids, n);
    if (a->istack_idx_cap != 0) {
        for (size_t j = (size_t)h & (a->istack_idx_cap - 1);;
             j = (j + 1) & (a->istack_idx_cap - 1)) {
            uint32_t v = a->istack_idx[j];
            if (v == 0)
                break;
            agg_intern_stack_t *s = &a->istacks[v - 1];
            if (s->hash == h && s->wst.n_sites == n && !memcmp(s->wst.sites, ids, n * sizeof *ids))
                return v;
        }
    }
    if ((a->nistacks + 1) * 2 > a->istack_idx_cap &&
        at__export_idx_rehash(&a->istack_idx, &a->istack_idx_cap, a->nistacks, istack_key_i, a) !=
            0)
        return 0;
    if (at__export_grow((void **)&a->istacks, &a->capistacks, a->nistacks + 1, sizeof *a->istacks))
        return 0;
    uint32_t *copy = malloc(n * sizeof *copy);
    if (copy == NULL)
        return 0;
    memcpy(copy, ids, n * sizeof *ids);
    agg_intern_stack_t *s = &a->istacks[a->nistacks++];
    s->hash = h;
    s->wst.id = (uint32_t)a->nistacks;
    s->wst.n_sites = n;
    s->wst.sites = copy;
    at__export_idx_put(a->istack_idx, a->istack_idx_cap, h, s->wst.id);
    return s->wst.id;
}

at_wire_loc_t *at__agg_locs(void *const *pc, unsigned n)
{
    if (n == 0)
        return NULL;
    at_wire_loc_t *l = calloc(n, sizeof *l);
    if (l == NULL)
        return NULL;
    for (unsigned i = 0; i < n; i++)
        loc_symbolise(&l[i], pc[i], i > 0, NULL);
    return l;
}

/* Frees the strings of n locations. */
static void locs_clear(at_wire_loc_t *locs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        free((char *)locs[i].func);
        free((char *)locs[i].file);
        free((char *)locs[i].build_id);
    }
}

void at__agg_locs_free(at_wire_loc_t *locs, unsigned n)
{
    if (locs == NULL)
        return;
    locs_clear(locs, n);
    free(locs);
}

void at__agg_intern_free(agg_t *a)
{
    for (size_t i = 0; i < a->nisites; i++) {
        free(a->isites[i].name);
        locs_clear(&a->isites[i].ws.loc, 1);
    }
    for (size_t i = 0; i < a->nistacks; i++)
        free((uint32_t *)a->istacks[i].wst.sites);
    free(a->isites);
    free(a->isite_idx);
    free(a->istacks);
    free(a->istack_idx);
    free(a->sh_key);
    free(a->sh_id);
}
