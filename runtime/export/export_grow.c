/* export_grow.c: the exporter's growable arrays and open-addressed indexes (exporter thread). */
#include "export_int.h"

#include <errno.h>
#include <stdlib.h>

int at__export_grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < n)
        nc *= 2;
    void *q = realloc(*p, nc * size);
    if (q == NULL)
        return -ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

uint64_t at__export_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (s && *s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

void at__export_idx_put(uint32_t *idx, size_t cap, uint64_t h, uint32_t id)
{
    size_t j = (size_t)h & (cap - 1);
    while (idx[j] != 0)
        j = (j + 1) & (cap - 1);
    idx[j] = id;
}

int at__export_idx_rehash(uint32_t **idx, size_t *cap, size_t n, uint64_t (*key)(void *, size_t),
                          void *ctx)
{
    size_t nc = *cap ? *cap * 2 : 1024;
    uint32_t *ni = calloc(nc, sizeof *ni);
    if (ni == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        at__export_idx_put(ni, nc, key(ctx, i), (uint32_t)(i + 1));
    free(*idx);
    *idx = ni;
    *cap = nc;
    return 0;
}
