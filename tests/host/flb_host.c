/*
 * flb_host.c - a small stand-in for Fluent Bit that drives a Go-style proxy output plugin
 * (a shared object exporting FLBPluginRegister, FLBPluginInit, FLBPluginFlushCtx, ...)
 * through the exact call sequence of Fluent Bit v5 (src/flb_plugin_proxy.c, src/proxy/go/go.c,
 * src/flb_output.c, src/flb_api.c):
 *
 *   dlopen(RTLD_LAZY) -> FLBPluginPreRegister(hot_reloading)? -> FLBPluginRegister(def)
 *   -> one struct flbgo_output_plugin for the library (name strdup'ed, callbacks resolved)
 *   -> per [OUTPUT] instance: new flb_plugin_proxy_context, plugin->o_ins/context rewritten,
 *      FLBPluginInit(plugin)  (<= 0 fails start-up)
 *   -> FLBPluginOutputPreRun(enable_hot_reload)? for each instance
 *   -> flushes: FLBPluginFlushCtx(remote_ctx, data, size, tag) on a coroutine stack
 *      (makecontext/swapcontext, malloc'd stack without guard page), from N threads,
 *      FLB_RETRY -> sleep and re-flush the same chunk (bounded), FLB_ERROR -> drop
 *   -> per instance: FLBPluginOutputPreExit(shutdown_by_hot_reloading)? + FLBPluginExitCtx
 *   -> FLBPluginUnregister(def) -> dlclose
 *
 * --cycles N repeats the whole sequence N times in one process (Fluent Bit's hot reload).
 * A JSON summary goes to stdout; the plugin's log lines (through flb_api.log_print) and the
 * host's own diagnostics go to stderr.
 *
 * Exit codes: 0 ran (flush results are in the summary), 2 usage or I/O error, 3 an instance's
 * init failed, 4 configuration refused, 5 a flush used the whole coroutine stack,
 * 6 loading/registration failure (dlopen, missing symbol, bad plugin definition).
 *
 * The host itself is valgrind-clean (everything freed, every thread joined) so that
 * `valgrind --leak-check=full` judges the plugin. Coroutine stacks are registered with
 * valgrind (VALGRIND_STACK_REGISTER) as Fluent Bit does when built with valgrind support.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "flb_sigv4.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define HOST_HAVE_VALGRIND 1
#endif
#endif

#define EXIT_USAGE 2
#define EXIT_INIT 3
#define EXIT_CONFIG 4
#define EXIT_STACK 5
#define EXIT_LOAD 6

#define EXPECTED_NAME "sigv4_http"
#define STACK_PAINT 0xA5
#define RED_ZONE (64 * 1024) /* painted, unused by design: catches overflows */
#define LOG_BODY_SIZE 4096 /* Fluent Bit's struct log_message msg[] size */

/* ------------------------------------------------------------------------------------------ */
/* configuration                                                                               */

struct kv {
    char *key;
    char *val; /* NULL when the value is empty, as Fluent Bit does */
};

struct host_instance {
    int index;
    struct kv *props;
    size_t n_props;
    size_t cap_props;
    int log_level; /* -1: not set, use [SERVICE] Log_Level */
    char *tag;     /* Test_Tag or "test.<index>" */
    /* per cycle */
    struct flb_plugin_proxy_context *ctx;
    int initialized;
};

struct options {
    const char *so_path;
    const char *config_path;
    char **chunk_paths;
    size_t n_chunks;
    int threads;
    long flushes; /* -1: default (each chunk once per cycle) */
    int cycles;
    size_t stack_size;
    long retry_delay_ms;
    int max_retries;
    int hot_reload;
    long flush_interval_ms; /* pause between a thread's consecutive flush jobs (0: none) */
    int leak_check_cycles;  /* under valgrind: count leaks after each cycle */
};

struct chunk {
    char *path;
    const char *base;
    unsigned char *data;
    size_t size;
};

struct flush_job {
    int cycle;
    int instance;
    int chunk;
    int thread;
    int *results;
    int n_results;
    double *ms;     /* duration of each attempt, milliseconds */
    double t_start; /* first attempt's start, ms since the host started */
    size_t stack_used;
    int gave_up;
};

/* per loaded library (what Fluent Bit's struct flb_plugin_proxy is for one .so) */
struct host_library {
    void *handle;
    struct flb_plugin_proxy_def *def;
    struct flb_api *api;
    struct flbgo_output_plugin *plugin;
    int (*cb_pre_register)(int);
    int (*cb_register)(struct flb_plugin_proxy_def *);
    int (*cb_pre_run)(int);
    void (*cb_pre_exit)(int);
    void (*cb_unregister)(struct flb_plugin_proxy_def *);
};

static struct options g_opt;
static struct host_instance *g_inst;
static size_t g_n_inst;
static int g_service_level = FLB_LOG_INFO;
static struct chunk *g_chunks;

static pthread_mutex_t g_stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec g_t0; /* host start (CLOCK_MONOTONIC), for per-flush timing */
static long g_ok, g_retry, g_error, g_other, g_gave_up, g_calls;
static size_t g_max_stack_used;
static int g_stack_overflow;
static long g_api_misuse;

static struct flush_job *g_jobs; /* all cycles */
static size_t g_n_jobs_per_cycle;
static size_t g_n_jobs_total;

static char *g_description_first; /* copy taken right after FLBPluginRegister */
static int g_description_stable = 1;
static int g_description_reads;
static int *g_threads_after_cycle;
static int g_threads_before;
static int *g_fds_after_cycle;
static int g_fds_before;
static long *g_leaked_after_cycle; /* memcheck's leaked bytes (definite + indirect); -1: none */

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "[flb_host] out of memory\n");
        exit(EXIT_USAGE);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        fprintf(stderr, "[flb_host] out of memory\n");
        exit(EXIT_USAGE);
    }
    return p;
}

static char *trim(char *s)
{
    char *e;
    while (*s && isspace((unsigned char) *s)) {
        s++;
    }
    e = s + strlen(s);
    while (e > s && isspace((unsigned char) e[-1])) {
        *--e = '\0';
    }
    return s;
}

/* ${VAR} expansion of a value, like flb_env_var_translate (unset variables expand to "") */
static char *expand_env(const char *v)
{
    size_t cap = strlen(v) + 1, len = 0;
    char *out = xcalloc(1, cap);
    const char *p = v;
    while (*p) {
        const char *add = p;
        size_t add_len = 1;
        const char *next = p + 1;
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (end) {
                char name[256];
                size_t n = (size_t) (end - (p + 2));
                if (n < sizeof(name)) {
                    memcpy(name, p + 2, n);
                    name[n] = '\0';
                    add = getenv(name);
                    if (!add) {
                        add = "";
                    }
                    add_len = strlen(add);
                    next = end + 1;
                }
            }
        }
        if (len + add_len + 1 > cap) {
            cap = (len + add_len + 1) * 2;
            out = realloc(out, cap);
            if (!out) {
                fprintf(stderr, "[flb_host] out of memory\n");
                exit(EXIT_USAGE);
            }
        }
        memcpy(out + len, add, add_len);
        len += add_len;
        out[len] = '\0';
        p = next;
    }
    return out;
}

static int parse_level(const char *s)
{
    if (!s) {
        return -1;
    }
    if (strcasecmp(s, "off") == 0) {
        return 0;
    }
    if (strcasecmp(s, "error") == 0) {
        return FLB_LOG_ERROR;
    }
    if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0) {
        return FLB_LOG_WARN;
    }
    if (strcasecmp(s, "info") == 0) {
        return FLB_LOG_INFO;
    }
    if (strcasecmp(s, "debug") == 0) {
        return FLB_LOG_DEBUG;
    }
    if (strcasecmp(s, "trace") == 0) {
        return FLB_LOG_TRACE;
    }
    return -1;
}

static const char *level_name(int level)
{
    switch (level) {
    case FLB_LOG_ERROR:
        return "error";
    case FLB_LOG_WARN:
        return "warn";
    case FLB_LOG_INFO:
        return "info";
    case FLB_LOG_DEBUG:
        return "debug";
    case FLB_LOG_TRACE:
        return "trace";
    default:
        return "unknown";
    }
}

/* flb_utils_bool-like, accepting the usual spellings of "true" */
static int is_true(const char *v)
{
    return v && (strcasecmp(v, "on") == 0 || strcasecmp(v, "true") == 0 ||
                 strcasecmp(v, "yes") == 0 || strcmp(v, "1") == 0);
}

static void inst_add(struct host_instance *in, const char *key, const char *val)
{
    if (in->n_props == in->cap_props) {
        in->cap_props = in->cap_props ? in->cap_props * 2 : 8;
        in->props = realloc(in->props, in->cap_props * sizeof(struct kv));
        if (!in->props) {
            fprintf(stderr, "[flb_host] out of memory\n");
            exit(EXIT_USAGE);
        }
    }
    in->props[in->n_props].key = xstrdup(key);
    in->props[in->n_props].val = NULL;
    if (val && *val) {
        char *x = expand_env(val);
        if (*x) {
            in->props[in->n_props].val = x;
        }
        else {
            free(x);
        }
    }
    in->n_props++;
}

/* first value of a key, case-insensitive, regardless of the withheld list (host use) */
static const char *inst_raw_get(const struct host_instance *in, const char *key)
{
    size_t i;
    for (i = 0; i < in->n_props; i++) {
        if (strcasecmp(in->props[i].key, key) == 0) {
            return in->props[i].val;
        }
    }
    return NULL;
}

static void free_instances(void)
{
    size_t i, j;
    for (i = 0; i < g_n_inst; i++) {
        for (j = 0; j < g_inst[i].n_props; j++) {
            free(g_inst[i].props[j].key);
            free(g_inst[i].props[j].val);
        }
        free(g_inst[i].props);
        free(g_inst[i].tag);
    }
    free(g_inst);
    g_inst = NULL;
    g_n_inst = 0;
}

/* Returns 0 or an exit code. */
static int load_config(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t n;
    int lineno = 0;
    enum { SEC_NONE, SEC_SERVICE, SEC_OUTPUT, SEC_OTHER } sec = SEC_NONE;
    size_t cap = 0;
    size_t i;
    int rc = 0;

    if (!f) {
        fprintf(stderr, "[flb_host] cannot open config %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    while ((n = getline(&line, &line_cap, f)) != -1) {
        char *s, *key, *val;
        lineno++;
        s = trim(line);
        if (*s == '\0' || *s == '#') {
            continue;
        }
        if (*s == '@') {
            fprintf(stderr, "config error: %s:%d: directives (@SET, @INCLUDE) are not supported\n",
                    path, lineno);
            rc = EXIT_CONFIG;
            break;
        }
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (!end) {
                fprintf(stderr, "config error: %s:%d: bad section header\n", path, lineno);
                rc = EXIT_CONFIG;
                break;
            }
            *end = '\0';
            s = trim(s + 1);
            if (strcasecmp(s, "SERVICE") == 0) {
                sec = SEC_SERVICE;
            }
            else if (strcasecmp(s, "OUTPUT") == 0) {
                sec = SEC_OUTPUT;
                if (g_n_inst == cap) {
                    cap = cap ? cap * 2 : 4;
                    g_inst = realloc(g_inst, cap * sizeof(*g_inst));
                    if (!g_inst) {
                        fprintf(stderr, "[flb_host] out of memory\n");
                        exit(EXIT_USAGE);
                    }
                }
                memset(&g_inst[g_n_inst], 0, sizeof(*g_inst));
                g_inst[g_n_inst].index = (int) g_n_inst;
                g_inst[g_n_inst].log_level = -1;
                g_n_inst++;
            }
            else {
                sec = SEC_OTHER; /* [INPUT], [FILTER], ...: ignored */
            }
            continue;
        }
        if (sec == SEC_NONE) {
            fprintf(stderr, "config error: %s:%d: entry outside a section\n", path, lineno);
            rc = EXIT_CONFIG;
            break;
        }
        key = s;
        val = s;
        while (*val && !isspace((unsigned char) *val)) {
            val++;
        }
        if (*val) {
            *val++ = '\0';
            val = trim(val);
        }
        if (sec == SEC_SERVICE) {
            if (strcasecmp(key, "log_level") == 0) {
                int lvl = parse_level(val);
                if (lvl < 0) {
                    fprintf(stderr, "config error: invalid Log_Level '%s'\n", val);
                    rc = EXIT_CONFIG;
                    break;
                }
                g_service_level = lvl;
            }
        }
        else if (sec == SEC_OUTPUT) {
            inst_add(&g_inst[g_n_inst - 1], key, val);
        }
    }
    free(line);
    fclose(f);
    if (rc) {
        return rc;
    }
    if (g_n_inst == 0) {
        fprintf(stderr, "config error: no [OUTPUT] section in %s\n", path);
        return EXIT_CONFIG;
    }
    for (i = 0; i < g_n_inst; i++) {
        struct host_instance *in = &g_inst[i];
        const char *name = inst_raw_get(in, "name");
        const char *v;
        if (!name) {
            fprintf(stderr, "config error: [OUTPUT] #%zu has no Name\n", i);
            return EXIT_CONFIG;
        }
        if (strcasecmp(name, EXPECTED_NAME) != 0) {
            fprintf(stderr, "config error: unknown output plugin '%s' (this host only loads '%s')\n",
                    name, EXPECTED_NAME);
            return EXIT_CONFIG;
        }
        v = inst_raw_get(in, "log_level");
        if (v) {
            in->log_level = parse_level(v);
            if (in->log_level < 0) {
                fprintf(stderr, "config error: invalid log_level '%s' in [OUTPUT] #%zu\n", v, i);
                return EXIT_CONFIG;
            }
        }
        /* Fluent Bit: 'tls on' on a plugin without FLB_IO_TLS/FLB_IO_OPT_TLS is a config error */
        if (is_true(inst_raw_get(in, "tls"))) {
            fprintf(stderr, "config error: plugin does not support TLS ([OUTPUT] #%zu)\n", i);
            return EXIT_CONFIG;
        }
        v = inst_raw_get(in, "test_tag");
        if (v) {
            in->tag = xstrdup(v);
        }
        else {
            char buf[32];
            snprintf(buf, sizeof(buf), "test.%zu", i);
            in->tag = xstrdup(buf);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* struct flb_api                                                                              */

static struct host_instance *as_instance(void *o_ins)
{
    size_t i;
    for (i = 0; i < g_n_inst; i++) {
        if ((void *) &g_inst[i] == o_ins) {
            return &g_inst[i];
        }
    }
    pthread_mutex_lock(&g_stats_lock);
    g_api_misuse++;
    pthread_mutex_unlock(&g_stats_lock);
    fprintf(stderr, "[flb_host] API misuse: unknown o_ins pointer %p\n", o_ins);
    return NULL;
}

/* Keys Fluent Bit's output core consumes (flb_output_set_property) plus the host's own. */
static int key_withheld(const char *key)
{
    static const char *exact[] = {
        "match", "match_regex", "alias", "log_level", "log_suppress_interval", "host", "port",
        "ipv6", "retry_limit", "workers", "storage.total_limit_size", "tls", "name",
        "test_tag", /* host-only key */
        NULL};
    int i;
    for (i = 0; exact[i]; i++) {
        if (strcasecmp(key, exact[i]) == 0) {
            return 1;
        }
    }
    if (strncasecmp(key, "tls.", 4) == 0 || strncasecmp(key, "net.", 4) == 0 ||
        strncasecmp(key, "oauth2", 6) == 0) {
        return 1;
    }
    return 0;
}

static const char *api_output_get_property(const char *key, void *o_ins)
{
    struct host_instance *in;
    if (!key || !*key) {
        return NULL;
    }
    in = as_instance(o_ins);
    if (!in) {
        return NULL;
    }
    if (key_withheld(key)) {
        return NULL;
    }
    return inst_raw_get(in, key);
}

static const char *api_input_get_property(const char *key, void *i_ins)
{
    (void) key;
    (void) i_ins;
    return NULL;
}

static const char *api_custom_get_property(const char *key, void *c_ins)
{
    (void) key;
    (void) c_ins;
    return NULL;
}

static void *api_get_cmt_instance(void *ins)
{
    (void) ins;
    return NULL;
}

static int api_other_log_check(void *ins, int level)
{
    (void) ins;
    (void) level;
    return 0;
}

static int api_output_log_check(void *o_ins, int level)
{
    struct host_instance *in = as_instance(o_ins);
    int effective = g_service_level;
    if (in && in->log_level >= 0) {
        effective = in->log_level;
    }
    return level <= effective;
}

/*
 * Like flb_log_print: the message is formatted into a 4 KiB buffer on the caller's stack and
 * rendered into a second one, so a plugin that logs from the flush coroutine pays the stack
 * Fluent Bit makes it pay.
 */
static void api_log_print(int level, const char *file, int line, const char *fmt, ...)
{
    char body[LOG_BODY_SIZE];
    char msg[LOG_BODY_SIZE + 64];
    va_list ap;
    int n;
    (void) file;
    (void) line;
    va_start(ap, fmt);
    n = vsnprintf(body, sizeof(body), fmt ? fmt : "", ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    n = snprintf(msg, sizeof(msg), "[HOST] [%s] %s\n", level_name(level), body);
    if (n < 0) {
        return;
    }
    if ((size_t) n >= sizeof(msg)) {
        n = (int) sizeof(msg) - 1;
        msg[n - 1] = '\n';
    }
    flockfile(stderr);
    fwrite(msg, 1, (size_t) n, stderr);
    fflush(stderr);
    funlockfile(stderr);
}

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    if (!d) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Threads now, allowing up to 2 s for threads that were joined but are still being reaped
 * (a joined thread can linger in /proc/self/task for a moment; under valgrind for longer). A
 * thread that was never joined or still runs stays and is counted. */
static int count_threads_settled(void)
{
    int n = count_threads(), tries;
    for (tries = 0; tries < 200 && n > g_threads_before; tries++) {
        usleep(10 * 1000);
        n = count_threads();
    }
    return n;
}

/* For a failure report: the names of the threads still alive after a cycle. */
static void print_thread_names(int cycle)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    if (!d) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char path[300], name[64] = "?";
        FILE *f;
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f) {
            if (fgets(name, sizeof name, f)) {
                name[strcspn(name, "\n")] = 0;
            }
            fclose(f);
        }
        fprintf(stderr, "[flb_host] after cycle %d: thread %s '%s'\n", cycle, e->d_name, name);
    }
    closedir(d);
}

static void json_str(FILE *out, const char *s);

#define MAX_FDS_TRACKED 256
static int g_fds_open_before[MAX_FDS_TRACKED]; /* fd numbers open before the first load */
static int g_n_fds_open_before;

/* Records the fd numbers open now (before the first load). */
static void remember_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (!d) {
        return;
    }
    while ((e = readdir(d)) != NULL && g_n_fds_open_before < MAX_FDS_TRACKED) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != dirfd(d)) {
            g_fds_open_before[g_n_fds_open_before++] = fd;
        }
    }
    closedir(d);
}

/* JSON list of [fd, target] for the descriptors open now that were not open before the load */
static void print_new_fds(FILE *o)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int first = 1;
    fputc('[', o);
    if (d) {
        while ((e = readdir(d)) != NULL) {
            int fd, i, known = 0;
            char link[64], target[512];
            ssize_t n;
            if (e->d_name[0] == '.') {
                continue;
            }
            fd = atoi(e->d_name);
            if (fd == dirfd(d)) {
                continue;
            }
            for (i = 0; i < g_n_fds_open_before; i++) {
                known |= g_fds_open_before[i] == fd;
            }
            if (known) {
                continue;
            }
            snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
            n = readlink(link, target, sizeof(target) - 1);
            target[n > 0 ? n : 0] = '\0';
            fprintf(o, "%s[%d,", first ? "" : ",", fd);
            json_str(o, target);
            fputc(']', o);
            first = 0;
        }
        closedir(d);
    }
    fputc(']', o);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    if (!d) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

/* Under valgrind with --leak-check-cycles: a leak search now, returning memcheck's count of
 * leaked bytes (definitely + indirectly lost); -1 when not running on valgrind. */
static long leaked_bytes_now(void)
{
#ifdef HOST_HAVE_VALGRIND
    if (g_opt.leak_check_cycles && RUNNING_ON_VALGRIND) {
        unsigned long leaked = 0, dubious = 0, reachable = 0, suppressed = 0;
        VALGRIND_DO_QUICK_LEAK_CHECK;
        VALGRIND_COUNT_LEAKS(leaked, dubious, reachable, suppressed);
        (void) dubious;
        (void) reachable;
        (void) suppressed;
        return (long) leaked;
    }
#endif
    return -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts;
    if (ms <= 0) {
        return;
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) (ts.tv_sec - g_t0.tv_sec) * 1000.0 + (double) (ts.tv_nsec - g_t0.tv_nsec) / 1e6;
}

static int read_file(const char *path, unsigned char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0, n;
    if (!f) {
        return -1;
    }
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            if (!buf) {
                fclose(f);
                return -1;
            }
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *data = buf;
    *size = len;
    return 0;
}

static void json_str(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *) (s ? s : "");
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", out);
            break;
        case '\\':
            fputs("\\\\", out);
            break;
        case '\n':
            fputs("\\n", out);
            break;
        case '\r':
            fputs("\\r", out);
            break;
        case '\t':
            fputs("\\t", out);
            break;
        default:
            if (*p < 0x20) {
                fprintf(out, "\\u%04x", *p);
            }
            else {
                fputc(*p, out);
            }
        }
    }
    fputc('"', out);
}

static void *resolve(void *handle, const char *symbol)
{
    void *s;
    dlerror();
    s = dlsym(handle, symbol);
    if (dlerror() != NULL) {
        return NULL;
    }
    return s;
}

static void check_description(const struct flb_plugin_proxy_def *def, const char *when)
{
    const char *d = def->description;
    g_description_reads++;
    if (!d || !g_description_first || strcmp(d, g_description_first) != 0) {
        g_description_stable = 0;
        fprintf(stderr, "[flb_host] description changed or vanished (%s)\n", when);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* flushing on a coroutine stack                                                               */

struct coro_call {
    struct flbgo_output_plugin *plugin;
    struct flb_plugin_proxy_context *ctx;
    const void *data;
    size_t size;
    char *tag;
    int ret;
};

static _Thread_local struct coro_call *tl_call;

/* Runs on the coroutine stack; like proxy_cb_flush -> proxy_go_output_flush. */
static void coro_entry(void)
{
    struct coro_call *c = tl_call;
    if (c->plugin->cb_flush_ctx) {
        c->ret = c->plugin->cb_flush_ctx(c->ctx->remote_context, c->data, c->size, c->tag);
    }
    else {
        c->ret = c->plugin->cb_flush(c->data, c->size, c->tag);
    }
}

/* One flush attempt: returns the plugin's return code; *used gets the stack depth used. */
static int coro_flush(struct flbgo_output_plugin *plugin, struct flb_plugin_proxy_context *ctx,
                      const struct chunk *ch, const char *tag_src, size_t *used)
{
    ucontext_t caller, co;
    unsigned char *block, *stack;
    unsigned char *data;
    struct coro_call call;
    size_t i;
#ifdef HOST_HAVE_VALGRIND
    unsigned vg_id;
#endif

    /*
     * The coroutine gets the top --stack bytes of the block; below them lies a painted red
     * zone (still no guard page, as in Fluent Bit) so that an overflow lands in memory the
     * host owns and is measured and reported instead of silently corrupting the heap.
     */
    block = malloc(g_opt.stack_size + RED_ZONE);
    stack = block ? block + RED_ZONE : NULL;
    /* like Fluent Bit's event chunk: the plugin's copy of the data lives until flush returns */
    data = malloc(ch->size ? ch->size : 1);
    if (!stack || !data) {
        fprintf(stderr, "[flb_host] out of memory\n");
        exit(EXIT_USAGE);
    }
    memcpy(data, ch->data, ch->size);
    memset(block, STACK_PAINT, g_opt.stack_size + RED_ZONE);

    /* a fresh NUL-terminated tag copy, freed after the call (proxy_go_output_flush) */
    call.plugin = plugin;
    call.ctx = ctx;
    call.data = data;
    call.size = ch->size;
    call.tag = xstrdup(tag_src);
    call.ret = -1;

    if (getcontext(&co) == -1) {
        fprintf(stderr, "[flb_host] getcontext: %s\n", strerror(errno));
        exit(EXIT_USAGE);
    }
    co.uc_stack.ss_sp = stack;
    co.uc_stack.ss_size = g_opt.stack_size;
    co.uc_link = &caller;
    makecontext(&co, coro_entry, 0);
#ifdef HOST_HAVE_VALGRIND
    vg_id = VALGRIND_STACK_REGISTER(stack, stack + g_opt.stack_size);
#endif
    tl_call = &call;
    if (swapcontext(&caller, &co) == -1) {
        fprintf(stderr, "[flb_host] swapcontext: %s\n", strerror(errno));
        exit(EXIT_USAGE);
    }
    tl_call = NULL;
#ifdef HOST_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(vg_id);
    /* memcheck marks popped stack frames no-access; the bytes are still there to be read */
    VALGRIND_MAKE_MEM_DEFINED(block, g_opt.stack_size + RED_ZONE);
#endif
    /* the stack grows down: the lowest byte that lost its paint marks the deepest use */
    for (i = 0; i < g_opt.stack_size + RED_ZONE && block[i] == STACK_PAINT; i++) {
    }
    *used = g_opt.stack_size + RED_ZONE - i;
    if (*used >= g_opt.stack_size) {
        pthread_mutex_lock(&g_stats_lock);
        g_stack_overflow = 1;
        pthread_mutex_unlock(&g_stats_lock);
        fprintf(stderr,
                "[flb_host] flush used the whole %zu-byte coroutine stack (overflow: %zu bytes "
                "deep%s)\n",
                g_opt.stack_size, *used, i == 0 ? ", red zone exhausted too" : "");
    }

    /* poison what the plugin was given: using it after returning is a bug valgrind will see */
    memset(data, 0xDD, ch->size);
    free(data);
    free(call.tag);
    free(block);
    return call.ret;
}

struct thread_arg {
    struct host_library *lib;
    int thread;
    int cycle;
};

static void run_job(struct host_library *lib, struct flush_job *job)
{
    struct host_instance *in = &g_inst[job->instance];
    const struct chunk *ch = &g_chunks[job->chunk];
    int attempt;

    for (attempt = 0;; attempt++) {
        size_t used = 0;
        double t = now_ms();
        int ret;
        if (attempt == 0) {
            job->t_start = t;
        }
        ret = coro_flush(lib->plugin, in->ctx, ch, in->tag, &used);
        job->ms[job->n_results] = now_ms() - t;
        job->results[job->n_results++] = ret;
        if (used > job->stack_used) {
            job->stack_used = used;
        }
        pthread_mutex_lock(&g_stats_lock);
        g_calls++;
        if (used > g_max_stack_used) {
            g_max_stack_used = used;
        }
        if (ret == FLB_OK) {
            g_ok++;
        }
        else if (ret == FLB_RETRY) {
            g_retry++;
        }
        else if (ret == FLB_ERROR) {
            g_error++;
        }
        else {
            g_other++; /* Fluent Bit turns anything else into FLB_ERROR */
        }
        pthread_mutex_unlock(&g_stats_lock);

        if (ret != FLB_RETRY) {
            break;
        }
        if (attempt >= g_opt.max_retries) {
            job->gave_up = 1;
            pthread_mutex_lock(&g_stats_lock);
            g_gave_up++;
            pthread_mutex_unlock(&g_stats_lock);
            break;
        }
        sleep_ms(g_opt.retry_delay_ms);
    }
}

static void *flush_thread(void *arg)
{
    struct thread_arg *ta = arg;
    size_t j;
    struct flush_job *jobs = g_jobs + (size_t) ta->cycle * g_n_jobs_per_cycle;
    for (j = (size_t) ta->thread; j < g_n_jobs_per_cycle; j += (size_t) g_opt.threads) {
        if (j != (size_t) ta->thread) {
            sleep_ms(g_opt.flush_interval_ms);
        }
        run_job(ta->lib, &jobs[j]);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* one load/run/unload cycle                                                                   */

static void library_release(struct host_library *lib)
{
    if (lib->plugin) {
        free(lib->plugin->name);
        free(lib->plugin);
        lib->plugin = NULL;
    }
    free(lib->api);
    lib->api = NULL;
    free(lib->def);
    lib->def = NULL;
    if (lib->handle) {
        dlclose(lib->handle);
        lib->handle = NULL;
    }
}

static int run_cycle(int cycle)
{
    struct host_library lib;
    struct flbgo_output_plugin *plugin;
    int ret;
    int rc = 0;
    size_t i;
    int last = (cycle == g_opt.cycles - 1);
    int hot_reloading = g_opt.hot_reload && cycle > 0;
    int shutdown_by_hot_reloading = g_opt.hot_reload && !last;

    memset(&lib, 0, sizeof(lib));
    lib.handle = dlopen(g_opt.so_path, RTLD_LAZY);
    if (!lib.handle) {
        fprintf(stderr, "[flb_host] error opening plugin %s: '%s'\n", g_opt.so_path, dlerror());
        return EXIT_LOAD;
    }
    lib.def = xcalloc(1, sizeof(*lib.def));
    lib.def->type = FLB_PROXY_OUTPUT_PLUGIN;

    /* flb_plugin_proxy_register */
    lib.cb_pre_register = (int (*)(int)) resolve(lib.handle, "FLBPluginPreRegister");
    if (lib.cb_pre_register) {
        if (lib.cb_pre_register(hot_reloading) == -1) {
            fprintf(stderr, "[flb_host] FLBPluginPreRegister aborted the load\n");
            library_release(&lib);
            return EXIT_LOAD;
        }
    }
    lib.cb_register =
        (int (*)(struct flb_plugin_proxy_def *)) resolve(lib.handle, "FLBPluginRegister");
    if (!lib.cb_register) {
        fprintf(stderr, "[flb_host] FLBPluginRegister not found\n");
        library_release(&lib);
        return EXIT_LOAD;
    }
    lib.cb_unregister =
        (void (*)(struct flb_plugin_proxy_def *)) resolve(lib.handle, "FLBPluginUnregister");
    ret = lib.cb_register(lib.def);
    if (ret == -1) {
        fprintf(stderr, "[flb_host] FLBPluginRegister failed\n");
        library_release(&lib);
        return EXIT_LOAD;
    }
    if (lib.def->type != FLB_PROXY_OUTPUT_PLUGIN || lib.def->proxy != FLB_PROXY_GOLANG ||
        !lib.def->name || strcmp(lib.def->name, EXPECTED_NAME) != 0) {
        fprintf(stderr,
                "[flb_host] bad plugin definition: type=%d (want %d) proxy=%d (want %d) "
                "name=%s (want %s)\n",
                lib.def->type, FLB_PROXY_OUTPUT_PLUGIN, lib.def->proxy, FLB_PROXY_GOLANG,
                lib.def->name ? lib.def->name : "(null)", EXPECTED_NAME);
        if (lib.cb_unregister) {
            lib.cb_unregister(lib.def);
        }
        library_release(&lib);
        return EXIT_LOAD;
    }
    if (lib.def->event_type != 0) {
        fprintf(stderr, "[flb_host] warning: event_type=%d (0 = logs expected)\n",
                lib.def->event_type);
    }
    /* Fluent Bit keeps the description pointer (flb_proxy_register_output) */
    if (!lib.def->description) {
        fprintf(stderr, "[flb_host] plugin gave no description\n");
        g_description_stable = 0;
    }
    else if (!g_description_first) {
        g_description_first = xstrdup(lib.def->description);
        g_description_reads++;
    }
    else {
        check_description(lib.def, "after register (reload)");
    }

    /* proxy_go_output_register: one plugin struct per library */
    plugin = malloc(sizeof(*plugin));
    if (!plugin) {
        fprintf(stderr, "[flb_host] out of memory\n");
        exit(EXIT_USAGE);
    }
    lib.plugin = plugin;
    plugin->api = NULL;
    plugin->o_ins = NULL;
    plugin->context = NULL;
    plugin->cb_init = (int (*)(struct flbgo_output_plugin *)) resolve(lib.handle, "FLBPluginInit");
    plugin->cb_flush = (int (*)(const void *, size_t, const char *)) resolve(lib.handle,
                                                                             "FLBPluginFlush");
    plugin->cb_flush_ctx =
        (int (*)(void *, const void *, size_t, char *)) resolve(lib.handle, "FLBPluginFlushCtx");
    plugin->cb_exit = (int (*)(void)) resolve(lib.handle, "FLBPluginExit");
    plugin->cb_exit_ctx = (int (*)(void *)) resolve(lib.handle, "FLBPluginExitCtx");
    plugin->name = xstrdup(lib.def->name);
    lib.cb_pre_run = (int (*)(int)) resolve(lib.handle, "FLBPluginOutputPreRun");
    lib.cb_pre_exit = (void (*)(int)) resolve(lib.handle, "FLBPluginOutputPreExit");
    if (!plugin->cb_init) {
        fprintf(stderr, "[go proxy]: could not load FLBPluginInit symbol\n");
        rc = EXIT_LOAD;
    }
    else if (!plugin->cb_flush && !plugin->cb_flush_ctx) {
        fprintf(stderr, "[flb_host] neither FLBPluginFlushCtx nor FLBPluginFlush exported\n");
        rc = EXIT_LOAD;
    }

    /* flb_api_create */
    lib.api = xcalloc(1, sizeof(*lib.api));
    lib.api->output_get_property = api_output_get_property;
    lib.api->input_get_property = api_input_get_property;
    lib.api->output_get_cmt_instance = api_get_cmt_instance;
    lib.api->input_get_cmt_instance = api_get_cmt_instance;
    lib.api->log_print = api_log_print;
    lib.api->input_log_check = api_other_log_check;
    lib.api->output_log_check = api_output_log_check;
    lib.api->custom_get_property = api_custom_get_property;
    lib.api->custom_log_check = api_other_log_check;

    /* flb_output_init_all: a new proxy context per instance, then proxy_go_output_init */
    for (i = 0; rc == 0 && i < g_n_inst; i++) {
        struct host_instance *in = &g_inst[i];
        struct flb_plugin_proxy_context *ctx = xcalloc(1, sizeof(*ctx));
        ctx->proxy = &lib; /* opaque to the plugin (Fluent Bit: struct flb_plugin_proxy) */
        plugin->api = lib.api;
        plugin->o_ins = in;
        plugin->context = ctx;
        ret = plugin->cb_init(plugin);
        if (ret <= 0) {
            fprintf(stderr, "[go proxy]: plugin '%s' failed to initialize\n", plugin->name);
            fprintf(stderr, "init failed for instance %zu\n", i);
            free(ctx);
            rc = EXIT_INIT;
            break;
        }
        in->ctx = ctx;
        in->initialized = 1;
    }
    if (lib.def->description) {
        check_description(lib.def, "after init");
    }

    /* flb_output_pre_run */
    if (rc == 0 && lib.cb_pre_run) {
        for (i = 0; i < g_n_inst; i++) {
            lib.cb_pre_run(g_opt.hot_reload);
        }
    }

    /* flushing */
    if (rc == 0 && g_n_jobs_per_cycle > 0) {
        pthread_t *th = xcalloc((size_t) g_opt.threads, sizeof(pthread_t));
        struct thread_arg *ta = xcalloc((size_t) g_opt.threads, sizeof(struct thread_arg));
        int t, started = 0;
        for (t = 0; t < g_opt.threads; t++) {
            ta[t].lib = &lib;
            ta[t].thread = t;
            ta[t].cycle = cycle;
            if (pthread_create(&th[t], NULL, flush_thread, &ta[t]) != 0) {
                fprintf(stderr, "[flb_host] pthread_create failed\n");
                rc = EXIT_USAGE;
                break;
            }
            started++;
        }
        for (t = 0; t < started; t++) {
            pthread_join(th[t], NULL);
        }
        free(th);
        free(ta);
    }

    /* flb_output_exit: per instance, pre-exit then exit (flb_proxy_output_cb_exit) */
    for (i = 0; i < g_n_inst; i++) {
        struct host_instance *in = &g_inst[i];
        if (!in->initialized) {
            continue;
        }
        if (lib.cb_pre_exit) {
            lib.cb_pre_exit(shutdown_by_hot_reloading);
        }
        if (plugin->cb_exit_ctx) {
            plugin->cb_exit_ctx(in->ctx->remote_context);
        }
        else if (plugin->cb_exit) {
            plugin->cb_exit();
        }
        free(in->ctx);
        in->ctx = NULL;
        in->initialized = 0;
    }
    /* the last moment Fluent Bit may read the description: before unregister */
    if (lib.def->description) {
        check_description(lib.def, "before unregister");
    }

    /* flb_proxy_output_cb_destroy */
    if (lib.cb_unregister) {
        lib.cb_unregister(lib.def);
    }
    library_release(&lib);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: flb_host --so PATH --config FILE [--chunk FILE]... [--threads N]\n"
            "                [--flushes N] [--cycles N] [--stack BYTES] [--retry-delay-ms N]\n"
            "                [--max-retries N] [--flush-interval-ms N] [--hot-reload]\n"
            "                [--leak-check-cycles]\n"
            "\n"
            "Loads the plugin like Fluent Bit (register, init per [OUTPUT], flush, exit,\n"
            "unregister, dlclose), --cycles times in one process (default 1).\n"
            "\n"
            "Flush assignment, per cycle (chunks are the --chunk files in order, n of them;\n"
            "I instances in config order; T threads):\n"
            "  default:        each chunk is flushed once: chunk c goes to instance c %% I.\n"
            "  --flushes F:    every instance flushes F times; the k-th flush (k = 0..F-1) of\n"
            "                  instance i uses chunk (i + k) %% n (F = n: every instance\n"
            "                  flushes every chunk once).\n"
            "  Job j of the resulting list (ordered by k, then i) runs on thread j %% T;\n"
            "  a thread runs its jobs one after the other, threads run concurrently.\n"
            "Each flush runs on a coroutine stack of --stack bytes (default 24576) with a\n"
            "fresh copy of the chunk and of the tag (Test_Tag key, else test.<instance>).\n"
            "FLB_RETRY: sleep --retry-delay-ms (200) and flush the same chunk again, at most\n"
            "--max-retries (10) times; FLB_ERROR: the chunk is dropped.\n"
            "--flush-interval-ms N: a thread pauses N ms between its consecutive jobs\n"
            "(default 0), e.g. one flush a second for a long run.\n"
            "The summary gives each flush's start (t, ms since the host started) and the\n"
            "duration of each attempt (ms, milliseconds).\n"
            "--leak-check-cycles: under valgrind memcheck, a leak search after each cycle;\n"
            "the summary's leaked_after_cycle gives the leaked bytes (definitely +\n"
            "indirectly lost) after each cycle (-1 when not running on valgrind).\n"
            "The summary also counts open file descriptors: fds_before (before the first\n"
            "load), fds_after_cycle (after each dlclose), fds_at_end, and fds_new_at_end\n"
            "lists [fd, target] of those open at the end that were not before the load.\n"
            "--hot-reload: FLBPluginPreRegister(1) on cycles after the first,\n"
            "FLBPluginOutputPreRun(1), FLBPluginOutputPreExit(1) on all but the last cycle.\n"
            "\n"
            "Exit: 0 ran (see JSON summary on stdout), 2 usage/IO, 3 init failed, 4 config\n"
            "refused, 5 coroutine stack exhausted, 6 load/register failure.\n");
}

static int parse_long(const char *s, long *out)
{
    char *end;
    long v;
    if (!s) {
        return -1;
    }
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    int i;
    long v;
    g_opt.threads = 1;
    g_opt.flushes = -1;
    g_opt.cycles = 1;
    g_opt.stack_size = 24576;
    g_opt.retry_delay_ms = 200;
    g_opt.max_retries = 10;
    g_opt.chunk_paths = xcalloc((size_t) argc, sizeof(char *));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        else if (strcmp(a, "--hot-reload") == 0) {
            g_opt.hot_reload = 1;
            continue;
        }
        else if (strcmp(a, "--leak-check-cycles") == 0) {
            g_opt.leak_check_cycles = 1;
            continue;
        }
        if (!next) {
            fprintf(stderr, "missing value for %s\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--so") == 0) {
            g_opt.so_path = next;
        }
        else if (strcmp(a, "--config") == 0) {
            g_opt.config_path = next;
        }
        else if (strcmp(a, "--chunk") == 0) {
            g_opt.chunk_paths[g_opt.n_chunks++] = (char *) next;
        }
        else if (strcmp(a, "--threads") == 0 && parse_long(next, &v) == 0 && v >= 1 && v <= 256) {
            g_opt.threads = (int) v;
        }
        else if (strcmp(a, "--flushes") == 0 && parse_long(next, &v) == 0 && v >= 0) {
            g_opt.flushes = v;
        }
        else if (strcmp(a, "--cycles") == 0 && parse_long(next, &v) == 0 && v >= 1) {
            g_opt.cycles = (int) v;
        }
        else if (strcmp(a, "--stack") == 0 && parse_long(next, &v) == 0 && v >= 4096) {
            g_opt.stack_size = (size_t) v;
        }
        else if (strcmp(a, "--retry-delay-ms") == 0 && parse_long(next, &v) == 0 && v >= 0) {
            g_opt.retry_delay_ms = v;
        }
        else if (strcmp(a, "--flush-interval-ms") == 0 && parse_long(next, &v) == 0 && v >= 0) {
            g_opt.flush_interval_ms = v;
        }
        else if (strcmp(a, "--max-retries") == 0 && parse_long(next, &v) == 0 && v >= 0 &&
                 v <= 1000) {
            g_opt.max_retries = (int) v;
        }
        else {
            fprintf(stderr, "bad option or value: %s %s\n", a, next);
            return -1;
        }
    }
    if (!g_opt.so_path || !g_opt.config_path) {
        fprintf(stderr, "--so and --config are required\n");
        return -1;
    }
    if (g_opt.flushes > 0 && g_opt.n_chunks == 0) {
        fprintf(stderr, "--flushes needs at least one --chunk\n");
        return -1;
    }
    return 0;
}

static void build_jobs(void)
{
    size_t n = g_opt.n_chunks, ni = g_n_inst, c, k, i, j = 0;
    int cycle;
    if (g_opt.flushes < 0) {
        g_n_jobs_per_cycle = n;
    }
    else {
        g_n_jobs_per_cycle = (size_t) g_opt.flushes * ni;
    }
    g_n_jobs_total = g_n_jobs_per_cycle * (size_t) g_opt.cycles;
    g_jobs = xcalloc(g_n_jobs_total, sizeof(struct flush_job));
    for (cycle = 0; cycle < g_opt.cycles; cycle++) {
        if (g_opt.flushes < 0) {
            for (c = 0; c < n; c++, j++) {
                g_jobs[j].instance = (int) (c % ni);
                g_jobs[j].chunk = (int) c;
            }
        }
        else {
            for (k = 0; k < (size_t) g_opt.flushes; k++) {
                for (i = 0; i < ni; i++, j++) {
                    g_jobs[j].instance = (int) i;
                    g_jobs[j].chunk = (int) ((i + k) % n);
                }
            }
        }
    }
    for (j = 0; j < g_n_jobs_total; j++) {
        g_jobs[j].cycle = (int) (j / (g_n_jobs_per_cycle ? g_n_jobs_per_cycle : 1));
        g_jobs[j].thread = (int) ((j % (g_n_jobs_per_cycle ? g_n_jobs_per_cycle : 1)) %
                                  (size_t) g_opt.threads);
        g_jobs[j].results = xcalloc((size_t) g_opt.max_retries + 1, sizeof(int));
        g_jobs[j].ms = xcalloc((size_t) g_opt.max_retries + 1, sizeof(double));
    }
}

static void print_summary(int cycles_run, int rc)
{
    size_t j;
    int c, k;
    FILE *o = stdout;
    fprintf(o, "{\"cycles\":%d,\"instances\":%zu,\"threads\":%d,\"stack_size\":%zu,", cycles_run,
            g_n_inst, g_opt.threads, g_opt.stack_size);
    fprintf(o, "\"flushes\":[");
    for (j = 0; j < g_n_jobs_total; j++) {
        struct flush_job *jb = &g_jobs[j];
        if (jb->cycle >= cycles_run) {
            continue;
        }
        if (j) {
            fputc(',', o);
        }
        fprintf(o, "{\"cycle\":%d,\"instance\":%d,\"thread\":%d,\"chunk\":", jb->cycle,
                jb->instance, jb->thread);
        json_str(o, g_chunks[jb->chunk].base);
        fprintf(o, ",\"chunk_index\":%d,\"tag\":", jb->chunk);
        json_str(o, g_inst[jb->instance].tag);
        fprintf(o, ",\"results\":[");
        for (k = 0; k < jb->n_results; k++) {
            fprintf(o, "%s%d", k ? "," : "", jb->results[k]);
        }
        fprintf(o, "],\"ms\":[");
        for (k = 0; k < jb->n_results; k++) {
            fprintf(o, "%s%.3f", k ? "," : "", jb->ms[k]);
        }
        fprintf(o, "],\"t\":%.3f", jb->t_start);
        fprintf(o, ",\"final\":%d,\"gave_up\":%s,\"stack_used\":%zu}",
                jb->n_results ? jb->results[jb->n_results - 1] : -1,
                jb->gave_up ? "true" : "false", jb->stack_used);
    }
    fprintf(o, "],\"calls\":%ld,\"ok\":%ld,\"retry\":%ld,\"error\":%ld,\"other\":%ld,"
               "\"gave_up\":%ld,",
            g_calls, g_ok, g_retry, g_error, g_other, g_gave_up);
    fprintf(o, "\"max_stack_used\":%zu,\"stack_overflow\":%s,\"api_misuse\":%ld,",
            g_max_stack_used, g_stack_overflow ? "true" : "false", g_api_misuse);
    fprintf(o, "\"threads_before\":%d,\"threads_after_cycle\":[", g_threads_before);
    for (c = 0; c < cycles_run; c++) {
        fprintf(o, "%s%d", c ? "," : "", g_threads_after_cycle[c]);
    }
    fprintf(o, "],\"threads_at_end\":%d,", count_threads_settled());
    fprintf(o, "\"fds_before\":%d,\"fds_after_cycle\":[", g_fds_before);
    for (c = 0; c < cycles_run; c++) {
        fprintf(o, "%s%d", c ? "," : "", g_fds_after_cycle[c]);
    }
    fprintf(o, "],\"fds_at_end\":%d,\"fds_new_at_end\":", count_fds());
    print_new_fds(o);
    fprintf(o, ",\"leaked_after_cycle\":[");
    for (c = 0; c < cycles_run; c++) {
        fprintf(o, "%s%ld", c ? "," : "", g_leaked_after_cycle[c]);
    }
    fprintf(o, "],\"description\":");
    json_str(o, g_description_first);
    fprintf(o, ",\"description_stable\":%s,\"description_reads\":%d,\"exit_code\":%d}\n",
            g_description_stable ? "true" : "false", g_description_reads, rc);
    fflush(o);
}

int main(int argc, char **argv)
{
    int rc = 0, cycle, cycles_run = 0;
    size_t i;

    clock_gettime(CLOCK_MONOTONIC, &g_t0);
    if (parse_args(argc, argv) != 0) {
        usage(stderr);
        free(g_opt.chunk_paths);
        return EXIT_USAGE;
    }
    g_threads_before = count_threads();
    g_fds_before = count_fds();
    remember_fds();

    rc = load_config(g_opt.config_path);
    if (rc) {
        free_instances();
        free(g_opt.chunk_paths);
        return rc;
    }
    g_chunks = xcalloc(g_opt.n_chunks, sizeof(struct chunk));
    for (i = 0; i < g_opt.n_chunks; i++) {
        const char *slash;
        g_chunks[i].path = g_opt.chunk_paths[i];
        slash = strrchr(g_chunks[i].path, '/');
        g_chunks[i].base = slash ? slash + 1 : g_chunks[i].path;
        if (read_file(g_chunks[i].path, &g_chunks[i].data, &g_chunks[i].size) != 0) {
            fprintf(stderr, "[flb_host] cannot read chunk %s\n", g_chunks[i].path);
            rc = EXIT_USAGE;
            break;
        }
    }
    if (rc == 0) {
        build_jobs();
        g_threads_after_cycle = xcalloc((size_t) g_opt.cycles, sizeof(int));
        g_fds_after_cycle = xcalloc((size_t) g_opt.cycles, sizeof(int));
        g_leaked_after_cycle = xcalloc((size_t) g_opt.cycles, sizeof(long));
        for (cycle = 0; cycle < g_opt.cycles; cycle++) {
            rc = run_cycle(cycle);
            cycles_run++;
            g_threads_after_cycle[cycle] = count_threads_settled();
            if (g_threads_after_cycle[cycle] > g_threads_before) {
                print_thread_names(cycle);
            }
            g_fds_after_cycle[cycle] = count_fds();
            g_leaked_after_cycle[cycle] = leaked_bytes_now();
            if (rc) {
                break;
            }
        }
        if (rc == 0 && g_stack_overflow) {
            rc = EXIT_STACK;
        }
        print_summary(cycles_run, rc);
    }

    for (i = 0; i < g_n_jobs_total; i++) {
        free(g_jobs[i].results);
        free(g_jobs[i].ms);
    }
    free(g_jobs);
    for (i = 0; i < g_opt.n_chunks; i++) {
        free(g_chunks[i].data);
    }
    free(g_chunks);
    free(g_threads_after_cycle);
    free(g_fds_after_cycle);
    free(g_leaked_after_cycle);
    free(g_description_first);
    free_instances();
    free(g_opt.chunk_paths);
    return rc;
}
