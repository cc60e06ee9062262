/* sym-prog: prints how libasynctop's symboliser (at__sym_lookup) names addresses inside two of
 * its own functions and inside a dlopen'ed library, one line per address:
 * label TAB lib TAB offset(hex) TAB func TAB file TAB line TAB build-id.
 * Built -O2; test-sym-stripped.py runs it unstripped, stripped, and stripped with a separate
 * debug file under ASYNCTOP_DEBUG_DIR. Usage: sym-prog LIBRARY */
#include "loopmon.h"

#include <dlfcn.h>
#include <stdio.h>

unsigned sym_alpha(unsigned n);
unsigned sym_beta(unsigned n);

volatile unsigned sym_sink;

__attribute__((noinline)) unsigned sym_alpha(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sym_sink += i * 3u + 1u;
    return sym_sink;
}

__attribute__((noinline)) unsigned sym_beta(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        sym_sink ^= i * 7u + 5u;
    return sym_sink;
}

static void show(const char *label, const void *addr)
{
    at__sym_t s;
    at__sym_lookup(addr, false, &s);
    printf("%s\t%s\t0x%llx\t%s\t%s\t%u\t%s\n", label, s.lib, (unsigned long long)s.offset, s.func,
           s.file, s.line, s.build_id);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: sym-prog LIBRARY\n");
        return 2;
    }
    sym_alpha(3);
    sym_beta(3);
    void *h = dlopen(argv[1], RTLD_NOW);
    if (h == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    const void *(*hidden)(void) = (const void *(*)(void))dlsym(h, "symlib_hidden_addr");
    const char *exported = (const char *)dlsym(h, "symlib_exported");
    if (hidden == NULL || exported == NULL) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    show("alpha", (const char *)(uintptr_t)sym_alpha + 4);
    show("beta", (const char *)(uintptr_t)sym_beta + 4);
    show("exported", exported + 4);
    show("hidden", (const char *)hidden() + 4);
    return 0;
}
