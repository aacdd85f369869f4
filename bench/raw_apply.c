/* The limit for `gitvirt apply`: the same libvirt calls in a plain loop, one connection, no
 * planning, no journal, no checks.
 *
 *   raw_apply URI TEMPLATE PREFIX N [--parallel P]    define + start N domains
 *   raw_apply URI --observe                           what a no-op plan must read: every domain's
 *                                                     XML, state and autostart
 *   raw_apply URI --clean PREFIX                      destroy + undefine every PREFIX* domain
 *
 * TEMPLATE is a domain XML file with @NAME@ where the name goes (no <uuid>). Each domain gets
 * the two calls a create + start cannot do without: virDomainDefineXMLFlags(VALIDATE) and
 * virDomainCreate. Prints "seconds N" on stdout. */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void Die(const char* what) {
  const virErrorPtr e = virGetLastError();
  fprintf(stderr, "raw_apply: %s: %s\n", what, e && e->message ? e->message : "?");
  exit(1);
}

static char* ReadFile(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) { perror(path); exit(1); }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char* buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(1); }
  buf[n] = 0;
  fclose(f);
  return buf;
}

/* TEMPLATE with every @NAME@ replaced by NAME. */
static char* Render(const char* tmpl, const char* name) {
  size_t count = 0;
  for (const char* p = tmpl; (p = strstr(p, "@NAME@")); p += 6) ++count;
  char* out = malloc(strlen(tmpl) + count * strlen(name) + 1);
  char* o = out;
  for (const char* p = tmpl;;) {
    const char* hit = strstr(p, "@NAME@");
    if (!hit) { strcpy(o, p); break; }
    memcpy(o, p, (size_t)(hit - p));
    o += hit - p;
    strcpy(o, name);
    o += strlen(name);
    p = hit + 6;
  }
  return out;
}

struct Work {
  virConnectPtr conn;
  const char* tmpl;
  const char* prefix;
  int first, step, n;
};

static void* Apply(void* arg) {
  const struct Work* w = arg;
  for (int i = w->first; i <= w->n; i += w->step) {
    char name[256];
    snprintf(name, sizeof name, "%s%04d", w->prefix, i);
    char* xml = Render(w->tmpl, name);
    virDomainPtr dom = virDomainDefineXMLFlags(w->conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);
    if (!dom) Die("define");
    if (virDomainCreate(dom) < 0) Die("start");
    virDomainFree(dom);
    free(xml);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: raw_apply URI TEMPLATE PREFIX N [--parallel P] | URI --observe | URI --clean PREFIX\n");
    return 2;
  }
  virConnectPtr conn = virConnectOpen(argv[1]);
  if (!conn) Die("connect");
  const double start = Now();
  int n = 0;
  if (strcmp(argv[2], "--observe") == 0) {
    virDomainPtr* doms = NULL;
    n = virConnectListAllDomains(conn, &doms, 0);
    if (n < 0) Die("list");
    for (int i = 0; i < n; ++i) {
      char* xml = virDomainGetXMLDesc(doms[i], VIR_DOMAIN_XML_INACTIVE);
      int state = 0, reason = 0, autostart = 0;
      if (!xml || virDomainGetState(doms[i], &state, &reason, 0) < 0 || virDomainGetAutostart(doms[i], &autostart) < 0) {
        Die("observe");
      }
      free(xml);
      virDomainFree(doms[i]);
    }
    free(doms);
  } else if (strcmp(argv[2], "--clean") == 0 && argc >= 4) {
    virDomainPtr* doms = NULL;
    const int all = virConnectListAllDomains(conn, &doms, 0);
    if (all < 0) Die("list");
    for (int i = 0; i < all; ++i) {
      if (strncmp(virDomainGetName(doms[i]), argv[3], strlen(argv[3])) == 0) {
        if (virDomainIsActive(doms[i]) == 1) virDomainDestroy(doms[i]);
        if (virDomainUndefine(doms[i]) < 0) Die("undefine");
        ++n;
      }
      virDomainFree(doms[i]);
    }
    free(doms);
  } else {
    if (argc < 5) Die("usage");
    struct Work w = {conn, ReadFile(argv[2]), argv[3], 1, 1, atoi(argv[4])};
    int parallel = argc >= 7 && strcmp(argv[5], "--parallel") == 0 ? atoi(argv[6]) : 1;
    if (parallel < 1) parallel = 1;
    pthread_t threads[64];
    struct Work works[64];
    if (parallel > 64) parallel = 64;
    for (int t = 0; t < parallel; ++t) {
      works[t] = w;
      works[t].first = t + 1;
      works[t].step = parallel;
      pthread_create(&threads[t], NULL, Apply, &works[t]);
    }
    for (int t = 0; t < parallel; ++t) pthread_join(threads[t], NULL);
    n = w.n;
  }
  printf("%.4f %d\n", Now() - start, n);
  virConnectClose(conn);
  return 0;
}
