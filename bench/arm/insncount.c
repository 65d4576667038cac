/* QEMU user-mode TCG plugin (plugin API v1, QEMU 7.2): counts executed guest instructions, in total and per
 * mnemonic, and prints them at exit (-d plugin -D FILE). Used by bench/arm_insn.py.
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

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  pthread_mutex_lock(&lock);
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
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, report, NULL);
  return 0;
}
