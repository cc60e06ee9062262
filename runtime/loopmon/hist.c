/* hist.c: reading log-linear latency histograms (the writer side is inline in loopmon.h). */
#include "loopmon.h"

uint64_t at__hist_bucket_low(unsigned i)
{
    if (i < AT__HIST_SUB)
        return i;
    unsigned lg = i / AT__HIST_SUB + 3, sub = i % AT__HIST_SUB;
    return (1ull << lg) + ((uint64_t)sub << (lg - 4));
}

uint64_t at__hist_bucket_mid(unsigned i)
{
    if (i < AT__HIST_SUB)
        return i;
    unsigned lg = i / AT__HIST_SUB + 3;
    return at__hist_bucket_low(i) + ((1ull << (lg - 4)) >> 1);
}

void at__hist_read(const at__hist_t *h, at__hist_snap_t *out)
{
    out->n = 0;
    for (unsigned i = 0; i < AT__HIST_BUCKETS; i++) {
        out->b[i] = atomic_load_explicit(&h->b[i], memory_order_relaxed);
        out->n += out->b[i];
    }
}

uint64_t at__hist_quantile(const at__hist_snap_t *s, double q)
{
    if (s->n == 0)
        return 0;
    if (q <= 0)
        q = 1e-12;
    if (q > 1)
        q = 1;
    double want = q * (double)s->n;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < AT__HIST_BUCKETS; i++) {
        seen += s->b[i];
        if (seen >= rank)
            return at__hist_bucket_mid(i);
    }
    return at__hist_bucket_mid(AT__HIST_BUCKETS - 1);
}
