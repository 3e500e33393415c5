/*
 * A qemu TCG plugin for `cargo xtask bench --only profile`: counts the guest
 * instructions a program executes, in total and per translated block's start
 * address, so that two interpreters can be compared without the noise of
 * wall-clock time (the count does not depend on the host's load).
 *
 *   qemu-aarch64 -plugin insn_profile.so,out=/tmp/p.txt prog ...
 *
 * writes "total <instructions> <blocks executed>", then "start_code <hex>" (where
 * qemu put the program's lowest executable segment: a position-independent
 * program is loaded at an address of qemu's choosing, and its symbols name
 * nothing without it), then "map <start> <end> <file offset> <path>" (hex, guest
 * addresses) for each readable mapping of a file when the program ended, so
 * that blocks in shared objects and the loader are named too, and then one
 * line per block start address:
 * "<hex address> <instructions executed there> <times entered>".
 *
 * The few entry points of qemu's plugin API (include/qemu/qemu-plugin.h,
 * API version 1, qemu 4.2 to 8.x) are declared here, so that no qemu source
 * is needed to build it.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op, void *, uint64_t);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
/* qemu >= 5.2; the program's, not its loader's (qemu_plugin_entry_code gives
 * the loader's entry when the program has one). */
uint64_t qemu_plugin_start_code(void);
/* API v1 since qemu 4.2: the host address of a guest instruction's bytes,
 * which gives qemu-user's guest_base (host = guest + guest_base). */
struct qemu_plugin_insn;
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
void *qemu_plugin_insn_haddr(const struct qemu_plugin_insn *);

EXPORT int qemu_plugin_version = 1;

/* One record per translation; its counter is bumped inline by the
 * translated code, so records never move: they live in fixed chunks. */
struct block {
    uint64_t vaddr, insns, execs;
};
#define CHUNK 65536
struct chunk {
    struct chunk *next;
    size_t used;
    struct block b[CHUNK];
};
static struct chunk *chunks;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char out_path[4096];
static uint64_t start_code;
static uintptr_t guest_base;
static int have_base;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    pthread_mutex_lock(&lock);
    if (!chunks || chunks->used == CHUNK) {
        struct chunk *c = calloc(1, sizeof *c);
        if (!c) {
            pthread_mutex_unlock(&lock);
            return;
        }
        c->next = chunks;
        chunks = c;
    }
    struct block *b = &chunks->b[chunks->used++];
    if (!start_code)
        start_code = qemu_plugin_start_code();
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    if (!have_base && qemu_plugin_tb_n_insns(tb)) {
        guest_base = (uintptr_t)qemu_plugin_insn_haddr(qemu_plugin_tb_get_insn(tb, 0)) - (uintptr_t)b->vaddr;
        have_base = 1;
    }
    pthread_mutex_unlock(&lock);
    b->insns = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);
}

static int by_vaddr(const void *a, const void *b)
{
    uint64_t x = ((const struct block *)a)->vaddr, y = ((const struct block *)b)->vaddr;
    return x < y ? -1 : x > y;
}

/* qemu-user maps the guest's files into its own address space at
 * guest_base + guest address: its /proc/self/maps, shifted back, is the
 * guest's map of files. */
static void write_maps(FILE *f)
{
    FILE *m = fopen("/proc/self/maps", "r");
    char line[4608], perms[8], path[4096];
    if (!m || !have_base)
        return;
    while (fgets(line, sizeof line, m)) {
        uintptr_t lo, hi;
        unsigned long long offset;
        path[0] = 0;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %*s %*s %4095[^\n]", &lo, &hi, perms, &offset, path) < 4)
            continue;
        /* qemu maps the guest's code readable, not executable (it runs
         * translations); its own files lie elsewhere and hold no block. */
        if (perms[0] != 'r' || path[0] != '/' || lo < guest_base)
            continue;
        fprintf(f, "map %" PRIxPTR " %" PRIxPTR " %llx %s\n", lo - guest_base, hi - guest_base, offset, path);
    }
    fclose(m);
}

static void on_exit_(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    size_t n = 0;
    for (struct chunk *c = chunks; c; c = c->next)
        n += c->used;
    struct block *all = malloc(n ? n * sizeof *all : 1);
    FILE *f = fopen(out_path, "w");
    if (!all || !f)
        return;
    size_t k = 0;
    uint64_t insns = 0, execs = 0;
    for (struct chunk *c = chunks; c; c = c->next)
        for (size_t i = 0; i < c->used; i++) {
            all[k++] = c->b[i];
            insns += c->b[i].insns * c->b[i].execs;
            execs += c->b[i].execs;
        }
    qsort(all, n, sizeof *all, by_vaddr);
    fprintf(f, "total %" PRIu64 " %" PRIu64 "\n", insns, execs);
    fprintf(f, "start_code %" PRIx64 "\n", start_code);
    write_maps(f);
    for (size_t i = 0; i < n;) {
        uint64_t sum = 0, entered = 0, v = all[i].vaddr;
        for (; i < n && all[i].vaddr == v; i++) {
            sum += all[i].insns * all[i].execs;
            entered += all[i].execs;
        }
        if (sum)
            fprintf(f, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", v, sum, entered);
    }
    fclose(f);
    free(all);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "out=", 4))
            snprintf(out_path, sizeof out_path, "%s", argv[i] + 4);
    if (!out_path[0]) {
        fprintf(stderr, "insn_profile: give out=<file>\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
