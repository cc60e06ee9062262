/* test-sanitise.c: the sanitiser of a process's text (Sanitise.h), each class of character
 * that could move the cursor or change the terminal's state, in a UTF-8 and in the C locale,
 * and the outputs built on it (the JSON writer, the padded writer of ps/ls). */
#include <locale.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "Json.h"
#include "Sanitise.h"

static int utf8_locale(void **state)
{
    (void)state;
    return setlocale(LC_ALL, "C.UTF-8") ? 0 : -1;
}

static int c_locale(void **state)
{
    (void)state;
    return setlocale(LC_ALL, "C") ? 0 : -1;
}

/* s as one line under flags */
static const char *one(const char *s, unsigned flags)
{
    static char out[512];
    return Sanitise_copy(out, sizeof out, s, flags);
}

/* No byte of out is a C0 control, DEL, or (UTF-8 out) a C1 control or a bidi/format
 * character; in ASCII out no byte is above 0x7f. */
static void assert_inert(const char *out, unsigned flags)
{
    for (const unsigned char *p = (const unsigned char *)out; *p; p++) {
        assert_false(*p < 0x20 && !((flags & SAN_MULTILINE) && (*p == '\n' || *p == '\t')));
        assert_int_not_equal(*p, 0x7f);
        if (flags & SAN_ASCII)
            assert_true(*p < 0x80);
    }
    if (flags & SAN_ASCII)
        return;
    size_t len = strlen(out);
    while (len) {
        SanChar c;
        size_t k = Sanitise_decode(out, len, &c);
        assert_true(Sanitise_passes(&c, flags));
        out += k;
        len -= k;
    }
}

static void test_c0_and_del(void **state)
{
    (void)state;
    /* the title-setting sequence of the bug report: ESC ] 0 ; pwned BEL */
    assert_string_equal(one("a\033]0;pwned\007b", 0), "a\u241b]0;pwned\u2407b");
    assert_string_equal(one("x\ry", 0), "x\u240dy");
    assert_string_equal(one("\033[2J\033[H", 0), "\u241b[2J\u241b[H");
    assert_string_equal(one("bs\b", 0), "bs\u2408");
    assert_string_equal(one("del\177", 0), "del\u2421");
    for (int b = 1; b < 0x20; b++) {
        char in[2] = {(char)b, 0};
        assert_inert(one(in, 0), 0);
        assert_int_equal(Sanitise_width(in, 0), 1);
    }
}

static void test_newline_and_tab(void **state)
{
    (void)state;
    /* one line: visible markers; a page or a stream: kept */
    assert_string_equal(one("a\nb\tc", 0), "a\u23ceb\u2409c");
    assert_string_equal(one("a\nb\tc", SAN_MULTILINE), "a\nb\tc");
    assert_string_equal(one("a\r\nb", SAN_MULTILINE), "a\u240d\nb");
    assert_string_equal(one("a\nb", SAN_ASCII), "a|b");
}

static void test_c1(void **state)
{
    (void)state;
    /* U+009B (CSI) and U+0085 (NEL) as UTF-8, and raw 0x9b / 0x85 bytes (C1 to a
     * non-UTF-8 terminal, invalid UTF-8 here) */
    assert_string_equal(one("a\xc2\x9b"
                            "31mb",
                            0),
                        "a\ufffd31mb");
    assert_string_equal(one("a\xc2\x85z", 0), "a\ufffdz");
    assert_string_equal(one("a\x9b"
                            "31m\x85z",
                            0),
                        "a\ufffd31m\ufffdz");
    assert_string_equal(one("a\xc2\x9b\x9b"
                            "b",
                            SAN_ASCII),
                        "a??b");
    for (unsigned cp = 0x80; cp <= 0x9f; cp++) {
        char in[3] = {(char)(0xc0 | (cp >> 6)), (char)(0x80 | (cp & 0x3f)), 0};
        SanChar c;
        assert_int_equal(Sanitise_decode(in, 2, &c), 2);
        assert_int_equal(c.cls, SAN_CONTROL);
        char raw[2] = {(char)cp, 0};
        assert_int_equal(Sanitise_decode(raw, 1, &c), 1);
        assert_int_equal(c.cls, SAN_INVALID);
    }
}

static void test_bidi_and_format(void **state)
{
    (void)state;
    static const unsigned cps[] = {0x061c, 0x200b, 0x200e, 0x200f, 0x2028, 0x2029,
                                   0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066,
                                   0x2067, 0x2068, 0x2069, 0xfeff, 0xe0041};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        unsigned cp = cps[i];
        char in[8];
        if (cp < 0x800)
            snprintf(in, sizeof in, "%c%c", 0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
        else if (cp < 0x10000)
            snprintf(in, sizeof in, "%c%c%c", 0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f),
                     0x80 | (cp & 0x3f));
        else
            snprintf(in, sizeof in, "%c%c%c%c", 0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f),
                     0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
        SanChar c;
        Sanitise_decode(in, strlen(in), &c);
        assert_int_equal(c.cls, SAN_FORMAT);
        assert_int_equal(c.cp, cp);
        assert_string_equal(one(in, 0), "\ufffd");
        assert_string_equal(one(in, SAN_MULTILINE), "\ufffd");
    }
    /* "Trojan source": RLO reverses what follows on a bidi terminal */
    assert_string_equal(one("user\u202eexe.txt", 0), "user\ufffdexe.txt");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* surrogate D800 */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf8\x88\x80\x80\x80",
        "\xe2\x82", /* truncated */
        "\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *out = one(bad[i], 0);
        assert_inert(out, 0);
        /* one marker per byte: no byte swallowed into a sequence, none passed */
        assert_int_equal(Sanitise_width(bad[i], 0), (int)strlen(bad[i]));
        for (const char *p = out; *p; p += 3)
            assert_memory_equal(p, "\ufffd", 3);
    }
    /* a valid character after a truncated one survives */
    assert_string_equal(one("\xe2\x82z\xc3\xa9", 0), "\ufffd\ufffdz\u00e9");
}

static void test_width(void **state)
{
    (void)state;
    assert_int_equal(Sanitise_width("abc", 0), 3);
    assert_int_equal(Sanitise_width("\u00e9t\u00e9", 0), 3);
    assert_int_equal(Sanitise_width("\u6f22\u5b57", 0), 4); /* wide */
    assert_int_equal(Sanitise_width("e\u0301", 0), 1);      /* combining acute: zero width */
    assert_int_equal(Sanitise_width("a\033b\n", 0), 4);     /* markers count one each */
    assert_int_equal(Sanitise_width(NULL, 0), 0);
    /* a character the locale cannot print (unassigned U+0378) gets a marker */
    assert_string_equal(one("\xcd\xb8", 0), "\ufffd");
    /* padded writer: columns, not bytes */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(Sanitise_fput(f, "\u6f22x", 5), 5);
    fputc('|', f);
    assert_int_equal(Sanitise_fput(f, "\033", -3), 3);
    fclose(f);
    assert_string_equal(buf, "\u6f22x  |  \u241b");
    free(buf);
    /* cut at a character boundary */
    char small[5];
    assert_string_equal(Sanitise_copy(small, sizeof small, "a\u6f22\u5b57", 0), "a\u6f22");
}

static void test_c_locale(void **state)
{
    (void)state;
    assert_int_equal(Sanitise_localeFlags(), SAN_ASCII);
    const char *hostile = "n\033]0;x\007\xc2\x9b\x9b\u202e\u00e9\n";
    const char *out = one(hostile, Sanitise_localeFlags());
    assert_inert(out, SAN_ASCII);
    assert_string_equal(out, "n?]0;x?????|");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    Sanitise_printf(f, "reason: %s\n", hostile);
    fclose(f);
    assert_string_equal(buf, "reason: n?]0;x?????|\n");
    free(buf);
}

static void test_utf8_locale_flags(void **state)
{
    (void)state;
    assert_int_equal(Sanitise_localeFlags(), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    Sanitise_printf(f, "the process said bye: %s\n", "x\033]0;pwned\007\nline 2\u202e");
    fclose(f);
    /* one line: the process's line break gets a marker, the message's own final one stays */
    assert_string_equal(buf, "the process said bye: x\u241b]0;pwned\u2407\u23celine 2\ufffd\n");
    free(buf);
}

static char *json_of(const char *s)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    Json j;
    Json_init(&j, f);
    Json_array(&j);
    Json_str(&j, s);
    Json_end(&j, ']');
    fclose(f);
    return buf;
}

static void test_json(void **state)
{
    (void)state;
    char *s = json_of("a\033]0;p\007\"\\\n\t\r\177\xc2\x9b\x9b\u202e\u00e9\U0001f600\U000e0041");
    assert_string_equal(s, "[\"a\\u001b]0;p\\u0007\\\"\\\\\\n\\t\\r\\u007f\\u009b\\ufffd\\u202e"
                           "\u00e9\U0001f600\\udb40\\udc41\"]\n");
    free(s);
}

static void test_json_c_locale(void **state)
{
    (void)state;
    char *s = json_of("\u00e9\U0001f600");
    assert_string_equal(s, "[\"\\u00e9\\ud83d\\ude00\"]\n");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_c0_and_del, utf8_locale),
        cmocka_unit_test_setup(test_newline_and_tab, utf8_locale),
        cmocka_unit_test_setup(test_c1, utf8_locale),
        cmocka_unit_test_setup(test_bidi_and_format, utf8_locale),
        cmocka_unit_test_setup(test_invalid_utf8, utf8_locale),
        cmocka_unit_test_setup(test_width, utf8_locale),
        cmocka_unit_test_setup(test_utf8_locale_flags, utf8_locale),
        cmocka_unit_test_setup(test_json, utf8_locale),
        cmocka_unit_test_setup(test_c_locale, c_locale),
        cmocka_unit_test_setup(test_json_c_locale, c_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
