/* Sanitise.h: the one sanitiser of text that came from another process (names, messages,
 * reasons, /proc/PID/comm) on its way to a terminal. Every output path calls it at one point:
 * CRT_put (the TUI), Sanitise_fput/Sanitise_printf (ps, pstree, ls, set and messages on
 * stderr) and the JSON writer (Json.c, which escapes what this classifies as unsafe).
 *
 * Text is read as UTF-8. What can move the cursor or change the terminal's state never gets
 * through: C0 controls (ESC, BEL, CR, ...), DEL, C1 controls (U+0080-U+009F), invalid UTF-8
 * bytes (raw 0x80-0x9F are C1 controls to a non-UTF-8 terminal), bidi controls (U+061C,
 * U+200E/F, U+202A-U+202E, U+2066-U+2069), other invisible format characters and line or
 * paragraph separators, and code points the locale cannot print. Each is shown as a visible
 * marker: a control picture for C0 and DEL ("␛" for ESC, "␇" for BEL, "␉" for a TAB in one
 * line), "⏎" for a line break in one line, "�" for the rest; "?" (and "|" for a line break)
 * when the locale is not UTF-8, where only ASCII is written. A page that shows a message's
 * lines (the exception detail) splits it at its line breaks first (TextLines_wrap). Widths are
 * screen columns (wcwidth), so wide and zero-width characters keep columns aligned. */
#ifndef ASYNCTOP_SANITISE_H
#define ASYNCTOP_SANITISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What one decoded character is, for display. */
typedef enum SanClass {
    SAN_PRINT,      /* printable: written as it is */
    SAN_NEWLINE,    /* '\n' */
    SAN_TAB,        /* '\t' */
    SAN_CONTROL,    /* C0 other than \n and \t, DEL, C1 (U+0080-U+009F) */
    SAN_FORMAT,     /* bidi controls, invisible format characters, line/paragraph separators */
    SAN_INVALID,    /* a byte that does not start a valid UTF-8 sequence */
    SAN_UNPRINTABLE /* valid, but the locale gives it no width (unassigned, private use, ...) */
} SanClass;

typedef struct SanChar {
    SanClass cls;
    uint32_t cp; /* the code point (the byte for SAN_INVALID) */
    size_t len;  /* input bytes it took, >= 1 */
    int width;   /* columns when written as it is (SAN_PRINT only), 0..2 */
} SanChar;

/* Output flags. */
enum {
    SAN_ASCII = 1,    /* write ASCII only (the locale is not UTF-8): non-ASCII becomes '?' */
    SAN_MULTILINE = 2 /* keep '\n' and '\t' (a page or a stream); else they get markers */
};

/* Decodes the character at s (len > 0 bytes available; s[0] may be any byte, NUL included)
 * into *c; returns c->len. Strict UTF-8: overlong forms, surrogates, code points above
 * U+10FFFF and truncated sequences are SAN_INVALID, one byte each. Printability and width
 * come from the current locale's wcwidth (so call setlocale first). */
size_t Sanitise_decode(const char *s, size_t len, SanChar *c);
/* Whether a decoded character is written unchanged under flags (SAN_PRINT; \n and \t under
 * SAN_MULTILINE; with SAN_ASCII only ASCII). */
bool Sanitise_passes(const SanChar *c, unsigned flags);
/* The bytes to write for c under flags (its own bytes `in` when it passes, else its marker),
 * NUL-terminated in out (at least 8 bytes); *width gets its columns (every marker 1; a kept
 * '\n' 0 and a kept '\t' 8, though where a tab ends depends on where it starts). Returns
 * out. */
const char *Sanitise_show(const SanChar *c, const char *in, unsigned flags, char out[8],
                          int *width);
/* SAN_ASCII when the locale's character set is not UTF-8, else 0. */
unsigned Sanitise_localeFlags(void);

/* Columns s takes once sanitised under flags (s NULL: 0). */
int Sanitise_width(const char *s, unsigned flags);
/* s sanitised under flags into out (always NUL-terminated, cut at a character boundary when
 * out is too small; outlen > 0). Returns out. */
char *Sanitise_copy(char *out, size_t outlen, const char *s, unsigned flags);
/* Writes s (NULL: nothing) sanitised as one line (SAN_MULTILINE is ignored) under the locale's
 * flags, padded with blanks to `width` columns (left-aligned; negative: right-aligned in
 * -width; 0: no padding; never cut). Returns the columns written. */
int Sanitise_fput(FILE *f, const char *s, int width);
/* fprintf of one message line whose whole output is sanitised as one line under the locale's
 * flags: for messages that carry a process's text (reasons, names). Line breaks and TABs
 * inside get markers (a process cannot start a line of its own); a final '\n' is written as
 * it is. */
void Sanitise_printf(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
