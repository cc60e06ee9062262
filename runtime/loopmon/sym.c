/* sym.c: symbolisation of code addresses of the own process (libdw, then dladdr), cached
 * per address, thread-safe; meant to run off the loop thread. */
#include "loopmon.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CACHE_MAX 16384 /* entries before the cache is cleared and refilled */

typedef struct sym_entry {
    const void *addr;
    bool is_return;
    int rc;
    at__sym_t sym;
    struct sym_entry *next;
} sym_entry_t;

static pthread_mutex_t sym_lock = PTHREAD_MUTEX_INITIALIZER;
static Dwfl *dwfl;          /* under sym_lock */
static sym_entry_t **cache; /* under sym_lock; 4096 buckets */
static size_t cache_n;
#define CACHE_BUCKETS 4096

/* libdw's search path for separate debug files (under sym_lock, set when dwfl is begun):
 * "+:" ASYNCTOP_DEBUG_DIR ":.debug:/usr/lib/debug". libdw looks a module's build-id up as
 * DIR/.build-id/xx/rest.debug in each absolute directory, in this order, then by
 * .gnu_debuglink; a leading '+' checks the debuglink's CRC. */
static char *debuginfo_path;
static const Dwfl_Callbacks dwfl_cbs = {
    .find_elf = dwfl_linux_proc_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .debuginfo_path = &debuginfo_path,
};

static void cache_clear(void)
{
    if (!cache)
        return;
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        sym_entry_t *e = cache[i];
        while (e) {
            sym_entry_t *n = e->next;
            free(e);
            e = n;
        }
        cache[i] = NULL;
    }
    cache_n = 0;
}

/* (Re)reads the process's module list, e.g. after a dlopen. Under sym_lock. */
static int dwfl_refresh(void)
{
    if (!dwfl) {
        const char *env = getenv("ASYNCTOP_DEBUG_DIR");
        free(debuginfo_path);
        debuginfo_path = NULL;
        if (env && env[0]) {
            size_t n = strlen(env) + sizeof "+::.debug:/usr/lib/debug";
            debuginfo_path = malloc(n);
            if (debuginfo_path)
                snprintf(debuginfo_path, n, "+:%s:.debug:/usr/lib/debug", env);
        }
        dwfl = dwfl_begin(&dwfl_cbs);
        if (!dwfl)
            return -ENOMEM;
    }
    dwfl_report_begin(dwfl);
    int rc = dwfl_linux_proc_report(dwfl, getpid());
    dwfl_report_end(dwfl, NULL, NULL);
    return rc == 0 ? 0 : -EIO;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Line lookup by walking the compile units: clang 14 emits DWARF 5 without .debug_aranges,
 * and libdw 0.188's dwfl_module_getsrc then reports "address out of range". */
static void cu_line_fallback(Dwfl_Module *mod, Dwarf_Addr a, at__sym_t *out)
{
    Dwarf_Die *cu = NULL;
    Dwarf_Addr bias = 0;
    while ((cu = dwfl_module_nextcu(mod, cu, &bias)) != NULL) {
        if (dwarf_haspc(cu, a - bias) <= 0)
            continue;
        Dwarf_Line *l = dwarf_getsrc_die(cu, a - bias);
        int lineno = 0;
        const char *src = l ? dwarf_linesrc(l, NULL, NULL) : NULL;
        if (src && dwarf_lineno(l, &lineno) == 0 && lineno > 0) {
            snprintf(out->file, sizeof out->file, "%s", src);
            out->line = (unsigned)lineno;
        }
        return;
    }
}

/* When address a lies in inlined code (at__now_ns's rdtsc inlined from loopmon.h into a
 * user's busy loop, a static helper inlined into its caller), replaces out's file:line by
 * the line of the concrete function `func` names: the call site of the outermost inlined
 * scope. A sampled stack's first frame then reads "parse_request app.c:119", not a line of
 * loopmon.h or ia32intrin.h under the user's function name. Leaves out alone when a is not
 * in inlined code or the DWARF has no scopes for it. Under sym_lock. */
static void outer_call_site(Dwfl_Module *mod, Dwarf_Addr a, at__sym_t *out)
{
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(mod, a, &bias);
    if (cu == NULL) /* clang's DWARF 5 without aranges: look through the CUs */
        while ((cu = dwfl_module_nextcu(mod, cu, &bias)) != NULL)
            if (dwarf_haspc(cu, a - bias) > 0)
                break;
    if (cu == NULL)
        return;
    Dwarf_Die *scopes = NULL;
    int n = dwarf_getscopes(cu, a - bias, &scopes);
    Dwarf_Die *outer = NULL;
    for (int i = 0; i < n; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram)
            break;
        if (tag == DW_TAG_inlined_subroutine)
            outer = &scopes[i];
    }
    Dwarf_Attribute at;
    Dwarf_Word file = 0, line = 0;
    Dwarf_Files *files = NULL;
    size_t nfiles = 0;
    if (outer != NULL && dwarf_formudata(dwarf_attr(outer, DW_AT_call_file, &at), &file) == 0 &&
        dwarf_formudata(dwarf_attr(outer, DW_AT_call_line, &at), &line) == 0 && line > 0 &&
        dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && file < nfiles) {
        const char *src = dwarf_filesrc(files, file, NULL, NULL);
        if (src != NULL) {
            snprintf(out->file, sizeof out->file, "%s", src);
            out->line = (unsigned)line;
        }
    }
    free(scopes);
}

/* Whether mod's symbol names come from a full symbol table: the file's own .symtab or a
 * separate debug file's (found by build-id or debuglink). Otherwise libdw falls back to
 * .dynsym (plus the .gnu_debugdata MiniDebugInfo table), where a sizeless or distant
 * exported symbol would name code that is not its own. Under sym_lock, after
 * dwfl_module_addrinfo (which loads the symbol table). */
static bool has_full_symtab(Dwfl_Module *mod)
{
    const char *debugfile = NULL;
    dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, &debugfile);
    if (debugfile != NULL)
        return true;
    GElf_Addr bias = 0;
    Elf *elf = dwfl_module_getelf(mod, &bias);
    Elf_Scn *scn = NULL;
    while (elf != NULL && (scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) != NULL && sh.sh_type == SHT_SYMTAB)
            return true;
    }
    return false;
}

/* The hex build-id of mod into out (size >= AT__BUILD_ID_HEX), "" when it has none. */
static void module_build_id(Dwfl_Module *mod, char *out, size_t size)
{
    const unsigned char *bits = NULL;
    GElf_Addr vaddr = 0;
    int n = dwfl_module_build_id(mod, &bits, &vaddr);
    out[0] = '\0';
    if (n <= 0 || bits == NULL || (size_t)n * 2 + 1 > size)
        return;
    for (int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", bits[i]);
}

/* Whether a lies in a mapping of no file in /proc/self/maps (LuaJIT's traces, any JIT's code):
 * read afresh, once per address the cache has not seen. */
static bool in_anon_mapping(uintptr_t a)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return false;
    char line[512];
    bool found = false, more = true;
    while (more && fgets(line, sizeof line, f)) {
        /* "lo-hi perms offset dev inode [name]", addresses in hex */
        char *p = line, *end;
        unsigned long lo = strtoul(p, &end, 16), hi = 0;
        if (end != p && *end == '-') {
            p = end + 1;
            hi = strtoul(p, &end, 16);
        }
        if (end != p && lo <= a && a < hi) {
            p = end;
            for (int field = 0; field < 3 && p; field++) /* perms, offset, dev */
                p = strchr(p + 1, ' ');
            unsigned long ino = p ? strtoul(p, &end, 10) : 1;
            if (p && end != p) {
                p = end + strspn(end, " ");
                found = ino == 0 && (*p == '\n' || *p == '\0');
            }
            more = false;
        }
        while (more && !strchr(line, '\n') && fgets(line, sizeof line, f))
            ; /* the rest of a long line */
    }
    fclose(f);
    return found;
}

/* Under sym_lock. */
static int resolve(const void *addr, bool is_return, at__sym_t *out)
{
    memset(out, 0, sizeof *out);
    Dwarf_Addr a = (Dwarf_Addr)(uintptr_t)addr - (is_return ? 1 : 0);
    int found = 0;
    Dwfl_Module *mod = NULL;
    if (dwfl || dwfl_refresh() == 0) {
        mod = dwfl_addrmodule(dwfl, a);
        if (!mod && dwfl_refresh() == 0)
            mod = dwfl_addrmodule(dwfl, a);
    }
    Dwarf_Addr start = 0, end = 0;
    const char *mname =
        mod ? dwfl_module_info(mod, NULL, &start, &end, NULL, NULL, NULL, NULL) : NULL;
    /* dwfl_linux_proc_report also reports as modules the ELF files libelf has mmap()ed for us
     * (rw-p at offset 0 in /proc/self/maps), and libdw 0.188's dwfl_addrmodule answered an
     * address in no file (LuaJIT's machine code in an anonymous mapping) with one of them,
     * whose range does not (always) hold it: "ld-linux-x86-64.so.2+0x37a02602",
     * "nvim+0x29e0045ca2c2". A module names only addresses inside it, and none an address in a
     * mapping of no file (/proc/self/maps says so). */
    bool anon = in_anon_mapping((uintptr_t)a);
    if (mod && (anon || a < start || a >= end))
        mod = NULL;
    if (mod) {
        if (mname) {
            snprintf(out->lib, sizeof out->lib, "%s", base_name(mname));
            out->offset = (uint64_t)((Dwarf_Addr)(uintptr_t)addr - start);
            found = 1;
        }
        GElf_Off off = 0;
        GElf_Sym sym;
        const char *fname = dwfl_module_addrinfo(mod, a, &off, &sym, NULL, NULL, NULL);
        /* From .dynsym only a symbol whose extent holds the address names it: past the
         * end of the last exported function lies code that is not in the table. */
        if (fname && off >= sym.st_size && !has_full_symtab(mod))
            fname = NULL;
        module_build_id(mod, out->build_id, sizeof out->build_id);
        if (fname) {
            snprintf(out->func, sizeof out->func, "%s", fname);
            out->func_off = (uint64_t)off + (is_return ? 1 : 0);
            found = 1;
        }
        Dwfl_Line *line = dwfl_module_getsrc(mod, a);
        if (line) {
            int lineno = 0;
            const char *src = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
            if (src && lineno > 0) {
                snprintf(out->file, sizeof out->file, "%s", src);
                out->line = (unsigned)lineno;
            }
        } else {
            cu_line_fallback(mod, a, out);
        }
        if (out->line)
            outer_call_site(mod, a, out);
    }
    if (!anon && (!out->func[0] || !out->lib[0])) {
        Dl_info info;
        if (dladdr((void *)(uintptr_t)a, &info) != 0) {
            if (!out->lib[0] && info.dli_fname) {
                snprintf(out->lib, sizeof out->lib, "%s", base_name(info.dli_fname));
                out->offset = (uint64_t)((uintptr_t)addr - (uintptr_t)info.dli_fbase);
            }
            if (!out->func[0] && info.dli_sname) {
                snprintf(out->func, sizeof out->func, "%s", info.dli_sname);
                out->func_off = (uint64_t)((uintptr_t)addr - (uintptr_t)info.dli_saddr);
            }
            found = 1;
        }
    }
    if (!out->lib[0] && anon) {
        /* Code in no file (JIT-compiled code): named by its address, never a bare "?". */
        snprintf(out->lib, sizeof out->lib, "[anon]");
        out->offset = (uint64_t)(uintptr_t)addr;
    }
    return found ? 0 : -ENOENT;
}

/* fork() (rank AT__FORK_SYM): the child must not inherit sym_lock held by another thread (the
 * logger symbolises slow callbacks' sites). */
__attribute__((constructor)) static void fork_register(void)
{
    at__fork_register_mutex(AT__FORK_SYM, &sym_lock);
}

int at__sym_lookup(const void *addr, bool is_return, at__sym_t *out)
{
    size_t b = (size_t)(((uintptr_t)addr * 0x9E3779B97F4A7C15ull) >> 52) & (CACHE_BUCKETS - 1);
    pthread_mutex_lock(&sym_lock);
    if (!cache)
        cache = calloc(CACHE_BUCKETS, sizeof *cache);
    if (cache)
        for (sym_entry_t *e = cache[b]; e; e = e->next)
            if (e->addr == addr && e->is_return == is_return) {
                *out = e->sym;
                int rc = e->rc;
                pthread_mutex_unlock(&sym_lock);
                return rc;
            }
    int rc = resolve(addr, is_return, out);
    if (cache) {
        if (cache_n >= CACHE_MAX)
            cache_clear();
        sym_entry_t *e = malloc(sizeof *e);
        if (e) {
            e->addr = addr;
            e->is_return = is_return;
            e->rc = rc;
            e->sym = *out;
            e->next = cache[b];
            cache[b] = e;
            cache_n++;
        }
    }
    pthread_mutex_unlock(&sym_lock);
    return rc;
}

char *at__sym_format(const void *addr, bool is_return, char *buf, size_t len)
{
    at__sym_t s;
    int rc = at__sym_lookup(addr, is_return, &s);
    if (rc == 0 && s.func[0] && s.file[0])
        snprintf(buf, len, "%s (%s:%u)", s.func, s.file, s.line);
    else if (rc == 0 && s.func[0])
        snprintf(buf, len, "%s (%s+0x%llx)", s.func, s.lib, (unsigned long long)s.offset);
    else if (s.lib[0])
        snprintf(buf, len, "%s+0x%llx", s.lib, (unsigned long long)s.offset);
    else
        snprintf(buf, len, "%p", addr);
    return buf;
}

void at__sym_reset(void)
{
    pthread_mutex_lock(&sym_lock);
    cache_clear();
    free(cache);
    cache = NULL;
    if (dwfl)
        dwfl_end(dwfl);
    dwfl = NULL;
    pthread_mutex_unlock(&sym_lock);
}
