/* QEMU user-mode TCG plugin (plugin API v1, QEMU 7.2): counts executed guest instructions, in total and per
 * mnemonic, and prints them at exit (-d plugin -D FILE). Used by bench/arm_insn.py.
 * Per code location too: every translated block counts its executions; at exit each block's instructions are
 * printed as "@ <file offset, hex> <instructions> <mapped file>", the file and offset found from the block's
 * host address in the qemu process's own /proc/self/maps (user mode maps guest code 1:1 into the host), so
 * the bench can name the kernel (the symbol of the model library) that ran them.
 * Debian's qemu-user ships no qemu-plugin.h: the few API declarations used are repeated below.
 * Build: gcc -O2 -shared -fPIC -o insncount.so insncount.c -lpthread
 * Run the guest with one thread (TVM_NUM_THREADS=1): the inline counters are not atomic. */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
typedef struct {
  const char *target_name;
  struct { int min; int cur; } version;
  bool system_emulation;
  union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *, enum qemu_plugin_op, void *, uint64_t);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, void *), void *);
void qemu_plugin_outs(const char *);
void *qemu_plugin_insn_haddr(const struct qemu_plugin_insn *);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op, void *, uint64_t);

EXPORT int qemu_plugin_version = 1;

enum { SLOTS = 4096, NAME = 24 };
static struct { char name[NAME]; uint64_t count; } slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The counter of a mnemonic (open addressing on an FNV-1a hash). */
static uint64_t *counter(const char *mnemonic) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = mnemonic; *p; ++p) h = (h ^ (unsigned char)*p) * 1099511628211ull;
  for (size_t i = 0; i < SLOTS; ++i) {
    size_t k = (h + i) % SLOTS;
    if (!slots[k].name[0]) memcpy(slots[k].name, mnemonic, strnlen(mnemonic, NAME - 1));
    if (!strcmp(slots[k].name, mnemonic)) return &slots[k].count;
  }
  return &slots[0].count;
}

/* The disassembly is "<8 hex digits>  mnemonic operands" or "mnemonic operands". */
static void mnemonic_of(const char *disas, char *out) {
  const char *p = disas + strspn(disas, " ");
  size_t word = strcspn(p, " ");
  if (word == 8 && strspn(p, "0123456789abcdef") == 8) p += word + strspn(p + word, " ");
  size_t n = strcspn(p, " \t");
  n = n < NAME - 1 ? n : NAME - 1;
  memcpy(out, p, n);
  out[n] = 0;
  if (!n) strcpy(out, "?");
}

/* One record per translated block, in chunks that never move (the inline counters point into them). */
enum { CHUNK = 65536 };
typedef struct { uintptr_t haddr; uint64_t insns, execs; } block_t;
static block_t *chunks[4096];
static size_t n_blocks;

static void count_block(struct qemu_plugin_tb *tb, size_t n) {
  size_t c = n_blocks / CHUNK;
  if (!n || c >= sizeof chunks / sizeof *chunks) return;
  if (!chunks[c] && !(chunks[c] = calloc(CHUNK, sizeof(block_t)))) return;
  block_t *b = &chunks[c][n_blocks++ % CHUNK];
  b->haddr = (uintptr_t)qemu_plugin_insn_haddr(qemu_plugin_tb_get_insn(tb, 0));
  b->insns = n;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);
}

/* "@ offset insns path" for every executed block inside a file mapping of this process. */
static void report_blocks(void) {
  FILE *maps = fopen("/proc/self/maps", "r");
  if (!maps) return;
  static struct { uintptr_t lo, hi, off; char path[256]; } m[8192];
  size_t nm = 0;
  char line[512];
  while (nm < sizeof m / sizeof *m && fgets(line, sizeof line, maps)) {
    unsigned long lo, hi, off;
    char path[256] = "";
    if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %255s", &lo, &hi, &off, path) == 4 && path[0] == '/') {
      m[nm].lo = lo, m[nm].hi = hi, m[nm].off = off;
      strcpy(m[nm++].path, path);
    }
  }
  fclose(maps);
  for (size_t i = 0; i < n_blocks; ++i) {
    block_t *b = &chunks[i / CHUNK][i % CHUNK];
    if (!b->execs) continue;
    for (size_t k = 0; k < nm; ++k)
      if (b->haddr >= m[k].lo && b->haddr < m[k].hi) {
        snprintf(line, sizeof line, "@ %lx %" PRIu64 " %s\n", (unsigned long)(b->haddr - m[k].lo + m[k].off),
                 b->execs * b->insns, m[k].path);
        qemu_plugin_outs(line);
        break;
      }
  }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  pthread_mutex_lock(&lock);
  count_block(tb, qemu_plugin_tb_n_insns(tb));
  for (size_t i = 0, n = qemu_plugin_tb_n_insns(tb); i < n; ++i) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    char *disas = qemu_plugin_insn_disas(insn), name[NAME];
    mnemonic_of(disas, name);
    free(disas);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, counter(name), 1);
  }
  pthread_mutex_unlock(&lock);
}

static void report(qemu_plugin_id_t id, void *unused) {
  char line[96];
  uint64_t total = 0;
  for (size_t i = 0; i < SLOTS; ++i) total += slots[i].count;
  snprintf(line, sizeof line, "total_insns %" PRIu64 "\n", total);
  qemu_plugin_outs(line);
  for (size_t i = 0; i < SLOTS; ++i)
    if (slots[i].count) {
      snprintf(line, sizeof line, "%.23s %" PRIu64 "\n", slots[i].name, slots[i].count);
      qemu_plugin_outs(line);
    }
  report_blocks();
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, report, NULL);
  return 0;
}
