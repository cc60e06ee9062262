/* sym-lib: a library for sym-prog, built so that its code is laid (gcc: -fno-toplevel-reorder)
 * out in source order. symlib_exported and symlib_hidden_addr are in .dynsym with their
 * sizes; symlib_marker is an exported label without a size (as hand-written assembly or
 * _init have); symlib_hidden is static and comes last, so once the library is stripped no
 * table names it: its code lies past the end of every .dynsym symbol's extent. */
#include <stdint.h>

/* default visibility: the project builds with -fvisibility=hidden */
#define SYMLIB_EXPORT __attribute__((visibility("default")))

SYMLIB_EXPORT unsigned symlib_exported(unsigned n);
SYMLIB_EXPORT const void *symlib_hidden_addr(void);

volatile unsigned symlib_sink;

static unsigned symlib_hidden(unsigned n);

__attribute__((noinline)) unsigned symlib_exported(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        symlib_sink += i * 11u + 2u;
    return symlib_sink;
}

const void *symlib_hidden_addr(void)
{
    return (const void *)(uintptr_t)symlib_hidden;
}

__asm__(".text\n"
        ".globl symlib_marker\n"
        ".type symlib_marker, @function\n"
        "symlib_marker:\n"
        "  nop\n");

__attribute__((noinline, used)) static unsigned symlib_hidden(unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        symlib_sink ^= i * 13u + 9u;
    return symlib_sink;
}
