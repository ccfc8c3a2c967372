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
 * A JSON summary goes to stdout; the plugin's log lines (through flb_api.log_print) go to
 * Log_File or stderr (below), the host's own diagnostics to stderr.
 *
 * Which thread does what, as in Fluent Bit v5.1.1 (paths under its source tree):
 *   - main thread: config load, so dlopen + FLBPluginPreRegister + FLBPluginRegister
 *     (flb_plugin.c:343 -> flb_plugin_proxy.c:605,644,489-513); flb_destroy -> flb_config_exit
 *     -> flb_plugins_unregister -> flb_proxy_output_cb_destroy: FLBPluginUnregister, dlclose
 *     (flb_lib.c:249, flb_config.c:746, flb_plugins.h.in:83-89, flb_plugin_proxy.c:224-247,653).
 *   - engine thread: spawned by mk_utils_worker_spawn and renamed "flb-pipeline"
 *     (flb_lib.c:969,925); flb_engine_start creates the log there (flb_engine.c:1159,1070),
 *     inits the outputs (1271: FLBPluginInit) and pre-runs them (1278), runs the flushes of
 *     outputs without Workers as coroutines on itself, and on stop flb_engine_shutdown ->
 *     flb_output_exit (flb_engine.c:1630): per instance its worker pool is destroyed, then
 *     FLBPluginOutputPreExit + FLBPluginExitCtx (flb_output.c:584-592, flb_plugin_proxy.c:198-221).
 *   - output workers (Workers N >= 1): N threads per instance, ids 0..N-1 (flb_thread_pool.c:
 *     27-30), named "flb-out-%s-w%i" with ins->name = "<plugin>.<id>" (flb_output_thread.c:
 *     232-233, flb_output.c:777-778) through prctl(PR_SET_NAME), which cuts it to 15
 *     characters (lib/monkey/mk_core/mk_utils.c:266-271): "flb-out-sigv4_h". Flushes go
 *     round robin over them.
 * Logging: flb_log_print sends a line into the log pipeline (Log_File, else stderr through the
 * logger thread) only when the thread has a flb_worker context (flb_log.c:1226-1262), else it
 * prints it to stderr itself (1263-1267). The context is set on the thread that calls
 * flb_log_create, the engine thread (flb_log.c:1096-1097), and on threads made by
 * flb_worker_create (flb_worker.c:40), the output workers (flb_thread_pool.c:123). Nothing
 * sets it on the main thread (fluent-bit.c and flb_lib.c never call flb_log_create or
 * flb_worker_create for it), so lines logged in FLBPluginRegister/Unregister go to stderr,
 * like lines from the plugin's own threads.
 *
 * Hot reload (SIGHUP -> flb_reload, flb_reload.c:461-664), for a proxy output plugin:
 *   1. flb_create() a new context (523); shutdown_by_hot_reloading on the old (542),
 *      hot_reloading on the new (544);
 *   2. the new context loads the plugin again: -e plugins (571 -> 365-384 ->
 *      flb_plugin_load_router) and [PLUGINS]/plugins_file (586 -> flb_config.c:1565 ->
 *      flb_plugin.c:372): dlopen of the same path (glibc returns the same handle, count
 *      raised), FLBPluginPreRegister(1), FLBPluginRegister(new def), on the main thread,
 *      while the old engine still runs; the new [OUTPUT]s are created, not initialised;
 *   3. flb_stop(old) (637): the old engine thread pre-exits and exits the old instances;
 *   4. flb_destroy(old) (638): FLBPluginUnregister(old def), dlclose (count back to 1: the
 *      image stays mapped);
 *   5. flb_start(new) (642): a new engine thread inits the new instances (FLBPluginInit),
 *      pre-runs them and flushes.
 * So the new load is registered before the old one is unregistered; the plugin's global state
 * survives across reloads and must be shared by two registrations for a while.
 * --reload-order new-first reproduces that; the default old-first completes each cycle
 * (unregister, dlclose) before the next dlopen, as an application embedding the library and
 * restarting it would.
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
#include <sys/prctl.h>
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
    int workers;   /* Workers key, else --threads; 0: flushes on the engine thread */
    /* per cycle */
    struct flb_plugin_proxy_context *ctx;
    int initialized;
};

struct options {
    const char *so_path;
    const char *config_path;
    char **chunk_paths;
    size_t n_chunks;
    int threads; /* Workers of an [OUTPUT] without the key (0: engine thread) */
    long flushes; /* -1: default (each chunk once per cycle) */
    int cycles;
    size_t stack_size;
    long retry_delay_ms;
    int max_retries;
    int hot_reload;
    long flush_interval_ms; /* pause between a thread's consecutive flush jobs (0: none) */
    int leak_check_cycles;  /* under valgrind: count leaks after each cycle */
    long tick_ms;           /* the engine's timer input period */
    long run_ms;            /* the engine runs at least this long per cycle */
    int reload_new_first;   /* --reload-order new-first (flb_reload's order) */
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
    int thread; /* worker index within the instance; -1: the engine thread */
    char thread_name[16];
    double next_due; /* engine jobs: when the next attempt falls due (ms) */
    int done;        /* engine jobs: no more attempts */
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
static long *g_rss_kb_after_cycle; /* resident set after each dlclose (KiB) */
static int g_fds_before;
static long *g_leaked_after_cycle; /* memcheck's leaked bytes (definite + indirect); -1: none */
static int *g_so_mapped_after_cycle;
static int *g_reload_same_handle;
static int g_n_reloads;

/* the engine thread's figures (written by the engine thread only, read after it is joined) */
static long g_ticks_due, g_ticks_run, g_ticks_missed, g_engine_flushes;
static double g_tick_max_late_ms, g_engine_max_stall_ms, g_engine_ms;

/*
 * Set on the threads Fluent Bit gives a flb_worker context (the engine thread, output workers):
 * flb_log_print sends their lines to the log pipeline (Log_File); any other thread's line goes
 * straight to stderr.
 */
static _Thread_local int tl_flb_worker;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char *g_log_file_path; /* [SERVICE] Log_File */
static FILE *g_log_file;
static long g_log_lines_pipeline, g_log_lines_file, g_log_lines_foreign;

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

static int parse_long(const char *s, long *out);

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
            else if (strcasecmp(key, "log_file") == 0 && *val) {
                free(g_log_file_path);
                g_log_file_path = expand_env(val);
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
        in->workers = g_opt.threads;
        v = inst_raw_get(in, "workers");
        if (v) {
            long w;
            if (parse_long(v, &w) != 0 || w < 0 || w > 256) {
                fprintf(stderr, "config error: invalid Workers '%s' in [OUTPUT] #%zu\n", v, i);
                return EXIT_CONFIG;
            }
            in->workers = (int) w;
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
 * Fluent Bit makes it pay. Where the line goes follows flb_log_print (flb_log.c:1226-1267): on
 * a thread with a flb_worker context (tl_flb_worker) into the log pipeline, i.e. Log_File when
 * set, else stderr; on any other thread (the main thread, the plugin's own threads) raw stderr.
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
    pthread_mutex_lock(&g_log_lock);
    if (tl_flb_worker) {
        g_log_lines_pipeline++;
        if (g_log_file) {
            g_log_lines_file++;
            fwrite(msg, 1, (size_t) n, g_log_file);
            fflush(g_log_file);
            pthread_mutex_unlock(&g_log_lock);
            return;
        }
    }
    else {
        g_log_lines_foreign++;
    }
    pthread_mutex_unlock(&g_log_lock);
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

static long rss_kb_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = -1;
    if (!f) {
        return -1;
    }
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) {
        resident = -1;
    }
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
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

/* One flush attempt of a job on the calling thread, with its bookkeeping. */
static int attempt_once(struct host_library *lib, struct flush_job *job)
{
    struct host_instance *in = &g_inst[job->instance];
    const struct chunk *ch = &g_chunks[job->chunk];
    size_t used = 0;
    double t = now_ms();
    int ret;

    if (job->n_results == 0) {
        job->t_start = t;
        prctl(PR_GET_NAME, job->thread_name, 0, 0, 0);
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
    return ret;
}

/* After an FLB_RETRY: 1 when the job may be flushed again, 0 when it gave up (bookkept). */
static int may_retry(struct flush_job *job)
{
    if (job->n_results - 1 < g_opt.max_retries) {
        return 1;
    }
    job->gave_up = 1;
    pthread_mutex_lock(&g_stats_lock);
    g_gave_up++;
    pthread_mutex_unlock(&g_stats_lock);
    return 0;
}

/* A worker thread's job: FLB_RETRY sleeps --retry-delay-ms on the worker and flushes again. */
static void run_job_blocking(struct host_library *lib, struct flush_job *job)
{
    for (;;) {
        int ret = attempt_once(lib, job);
        if (ret != FLB_RETRY || !may_retry(job)) {
            break;
        }
        sleep_ms(g_opt.retry_delay_ms);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* the engine thread ("flb-pipeline") and output worker threads ("flb-out-<name>-w<id>")       */

struct engine;

struct worker {
    struct engine *e;
    int instance;
    int id;
    pthread_t tid;
    int started;
};

struct engine {
    struct host_library *lib;
    int cycle;
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started;                   /* init and pre-run done; rc tells how */
    int rc;
    int idle;                      /* every job done and --run-ms elapsed */
    int stop;                      /* main asks for shutdown (flb_stop) */
    int shutdown_by_hot_reloading; /* set by main before stop, as flb_reload does */
    int workers_pending;           /* workers that have not finished their jobs */
    struct worker *workers;
    size_t n_workers;
};

static void engine_timedwait(struct engine *e, double wake_ms)
{
    struct timespec ts;
    double ns;
    if (wake_ms < 0) {
        wake_ms = 0;
    }
    ns = (double) g_t0.tv_nsec + wake_ms * 1e6;
    ts.tv_sec = g_t0.tv_sec + (time_t) (ns / 1e9);
    ts.tv_nsec = (long) (ns - (double) (ts.tv_sec - g_t0.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (ts.tv_nsec < 0) {
        ts.tv_nsec = 0;
    }
    pthread_cond_timedwait(&e->cond, &e->lock, &ts);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct engine *e = w->e;
    struct flush_job *jobs = g_jobs + (size_t) e->cycle * g_n_jobs_per_cycle;
    char name[64];
    size_t j;
    int first = 1;

    tl_flb_worker = 1; /* flb_worker_create -> step_callback sets flb_worker_ctx */
    /* flb_output_thread.c: "flb-out-%s-w%i" with ins->name ("<plugin>.<id>"); prctl cuts it
     * to 15 characters as mk_utils_worker_rename does on Linux */
    snprintf(name, sizeof(name), "flb-out-%s.%d-w%d", EXPECTED_NAME, w->instance, w->id);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    for (j = 0; j < g_n_jobs_per_cycle; j++) {
        if (jobs[j].instance != w->instance || jobs[j].thread != w->id) {
            continue;
        }
        if (!first) {
            sleep_ms(g_opt.flush_interval_ms);
        }
        first = 0;
        run_job_blocking(e->lib, &jobs[j]);
    }
    pthread_mutex_lock(&e->lock);
    e->workers_pending--;
    pthread_cond_broadcast(&e->cond);
    /* a worker lives until the instance is shut down (flb_output_thread_pool_destroy) */
    while (!e->stop) {
        pthread_cond_wait(&e->cond, &e->lock);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* The timer "input": runs the due tick if one is due. Like a timerfd collector, the ticks that
 * fell due while the engine was busy are coalesced into one run; the others count as missed. */
static void engine_ticks(double t0, long *next_tick, double now)
{
    double period = (double) g_opt.tick_ms;
    long due = (long) ((now - t0) / period);
    double late;
    if (due < *next_tick) {
        return;
    }
    late = now - (t0 + (double) *next_tick * period);
    if (late > g_tick_max_late_ms) {
        g_tick_max_late_ms = late;
    }
    /* the tick that runs is the latest due one, less than a period late: the older ones that
     * fell due meanwhile are the missed ones (skipped, or more than a period late) */
    g_ticks_run++;
    g_ticks_missed += due - *next_tick;
    *next_tick = due + 1;
}

/* The engine's loop: ticks, the flushes of instances without Workers one at a time (a proxy
 * flush blocks the engine), retries on the engine's own timer queue. */
static void engine_loop(struct engine *e)
{
    struct flush_job *jobs = g_jobs + (size_t) e->cycle * g_n_jobs_per_cycle;
    double t0 = now_ms(), now;
    long next_tick = 1, k = 0;
    size_t j, remaining = 0;

    for (j = 0; j < g_n_jobs_per_cycle; j++) {
        if (jobs[j].thread < 0) {
            /* like the flush timer: the k-th engine job falls due k intervals after the start */
            jobs[j].next_due = t0 + (double) (k++) * (double) g_opt.flush_interval_ms;
            remaining++;
        }
    }
    for (;;) {
        struct flush_job *best = NULL;
        double wake;
        int all_done;

        now = now_ms();
        engine_ticks(t0, &next_tick, now);
        for (j = 0; j < g_n_jobs_per_cycle; j++) {
            struct flush_job *jb = &jobs[j];
            if (jb->thread < 0 && !jb->done && jb->next_due <= now &&
                (!best || jb->next_due < best->next_due)) {
                best = jb;
            }
        }
        if (best) {
            double t = now_ms(), stall;
            int ret = attempt_once(e->lib, best);
            stall = now_ms() - t;
            g_engine_flushes++;
            if (stall > g_engine_max_stall_ms) {
                g_engine_max_stall_ms = stall;
            }
            if (ret == FLB_RETRY && may_retry(best)) {
                /* the scheduler's retry timer: the engine goes on meanwhile */
                best->next_due = now_ms() + (double) g_opt.retry_delay_ms;
            }
            else {
                best->done = 1;
                remaining--;
            }
            continue;
        }
        pthread_mutex_lock(&e->lock);
        if (e->stop) {
            pthread_mutex_unlock(&e->lock);
            break;
        }
        all_done = remaining == 0 && e->workers_pending == 0;
        if (all_done && !e->idle && now - t0 >= (double) g_opt.run_ms) {
            e->idle = 1;
            pthread_cond_broadcast(&e->cond);
        }
        wake = t0 + (double) next_tick * (double) g_opt.tick_ms;
        for (j = 0; j < g_n_jobs_per_cycle; j++) {
            if (jobs[j].thread < 0 && !jobs[j].done && jobs[j].next_due < wake) {
                wake = jobs[j].next_due;
            }
        }
        if (all_done && !e->idle && t0 + (double) g_opt.run_ms < wake) {
            wake = t0 + (double) g_opt.run_ms;
        }
        engine_timedwait(e, wake);
        pthread_mutex_unlock(&e->lock);
    }
    now = now_ms();
    engine_ticks(t0, &next_tick, now);
    g_ticks_due += next_tick - 1;
    g_engine_ms += now - t0;
}

/* flb_output_init_all: a new proxy context per instance, then proxy_go_output_init. */
static int instances_init(struct host_library *lib)
{
    struct flbgo_output_plugin *plugin = lib->plugin;
    size_t i;
    for (i = 0; i < g_n_inst; i++) {
        struct host_instance *in = &g_inst[i];
        struct flb_plugin_proxy_context *ctx = xcalloc(1, sizeof(*ctx));
        int ret;
        ctx->proxy = lib; /* opaque to the plugin (Fluent Bit: struct flb_plugin_proxy) */
        plugin->api = lib->api;
        plugin->o_ins = in;
        plugin->context = ctx;
        ret = plugin->cb_init(plugin);
        if (ret <= 0) {
            fprintf(stderr, "[go proxy]: plugin '%s' failed to initialize\n", plugin->name);
            fprintf(stderr, "init failed for instance %zu\n", i);
            free(ctx);
            return EXIT_INIT;
        }
        in->ctx = ctx;
        in->initialized = 1;
    }
    return 0;
}

/* flb_output_exit for one instance: its workers stop first, then pre-exit and exit
 * (flb_output.c:584-592, flb_proxy_output_cb_exit). */
static void instance_exit(struct engine *e, size_t i)
{
    struct host_library *lib = e->lib;
    struct host_instance *in = &g_inst[i];
    size_t w;
    for (w = 0; w < e->n_workers; w++) {
        if (e->workers[w].instance == (int) i && e->workers[w].started) {
            pthread_join(e->workers[w].tid, NULL);
            e->workers[w].started = 0;
        }
    }
    if (!in->initialized) {
        return;
    }
    if (lib->cb_pre_exit) {
        lib->cb_pre_exit(e->shutdown_by_hot_reloading);
    }
    if (lib->plugin->cb_exit_ctx) {
        lib->plugin->cb_exit_ctx(in->ctx->remote_context);
    }
    else if (lib->plugin->cb_exit) {
        lib->plugin->cb_exit();
    }
    free(in->ctx);
    in->ctx = NULL;
    in->initialized = 0;
}

static void *engine_main(void *arg)
{
    struct engine *e = arg;
    struct host_library *lib = e->lib;
    size_t i, n = 0;
    int rc;

    tl_flb_worker = 1; /* flb_engine_log_start -> flb_log_create sets flb_worker_ctx here */
    prctl(PR_SET_NAME, "flb-pipeline", 0, 0, 0);
    rc = instances_init(lib);
    if (lib->def->description) {
        check_description(lib->def, "after init");
    }
    if (rc == 0 && lib->cb_pre_run) {
        for (i = 0; i < g_n_inst; i++) {
            lib->cb_pre_run(g_opt.hot_reload);
        }
    }
    if (rc == 0) {
        for (i = 0; i < g_n_inst; i++) {
            n += (size_t) g_inst[i].workers;
        }
        e->workers = xcalloc(n, sizeof(struct worker));
        for (i = 0; i < g_n_inst; i++) {
            int w;
            for (w = 0; w < g_inst[i].workers; w++) {
                struct worker *wk = &e->workers[e->n_workers++];
                wk->e = e;
                wk->instance = (int) i;
                wk->id = w;
            }
        }
    }
    pthread_mutex_lock(&e->lock);
    e->rc = rc;
    e->started = 1;
    e->workers_pending = (int) e->n_workers;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);

    if (rc == 0) {
        for (i = 0; i < e->n_workers; i++) {
            if (pthread_create(&e->workers[i].tid, NULL, worker_main, &e->workers[i]) != 0) {
                fprintf(stderr, "[flb_host] pthread_create failed (worker)\n");
                exit(EXIT_USAGE);
            }
            e->workers[i].started = 1;
        }
        engine_loop(e);
    }
    else {
        /* flb_engine_failed -> flb_engine_shutdown: wait for main's stop like flb_stop */
        pthread_mutex_lock(&e->lock);
        while (!e->stop) {
            pthread_cond_wait(&e->cond, &e->lock);
        }
        pthread_mutex_unlock(&e->lock);
    }
    /* flb_engine_shutdown -> flb_output_exit, on this thread */
    for (i = 0; i < g_n_inst; i++) {
        instance_exit(e, i);
    }
    free(e->workers);
    e->workers = NULL;
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* loading and unloading a library                                                             */

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

/* flb_proxy_output_cb_destroy: FLBPluginUnregister, then dlclose. */
static void library_unload(struct host_library *lib)
{
    /* the last moment Fluent Bit may read the description: before unregister */
    if (lib->def && lib->def->description) {
        check_description(lib->def, "before unregister");
    }
    if (lib->cb_unregister) {
        lib->cb_unregister(lib->def);
    }
    library_release(lib);
}

/* flb_plugin_proxy_create: dlopen, FLBPluginPreRegister, FLBPluginRegister, then the plugin
 * struct (proxy_go_output_register) and struct flb_api. Returns 0 or an exit code (the library
 * is released then). */
static int library_load(struct host_library *lib, int hot_reloading)
{
    struct flbgo_output_plugin *plugin;
    int ret;

    memset(lib, 0, sizeof(*lib));
    lib->handle = dlopen(g_opt.so_path, RTLD_LAZY);
    if (!lib->handle) {
        fprintf(stderr, "[flb_host] error opening plugin %s: '%s'\n", g_opt.so_path, dlerror());
        return EXIT_LOAD;
    }
    lib->def = xcalloc(1, sizeof(*lib->def));
    lib->def->type = FLB_PROXY_OUTPUT_PLUGIN;

    /* flb_plugin_proxy_register */
    lib->cb_pre_register = (int (*)(int)) resolve(lib->handle, "FLBPluginPreRegister");
    if (lib->cb_pre_register) {
        if (lib->cb_pre_register(hot_reloading) == -1) {
            fprintf(stderr, "[flb_host] FLBPluginPreRegister aborted the load\n");
            library_release(lib);
            return EXIT_LOAD;
        }
    }
    lib->cb_register =
        (int (*)(struct flb_plugin_proxy_def *)) resolve(lib->handle, "FLBPluginRegister");
    if (!lib->cb_register) {
        fprintf(stderr, "[flb_host] FLBPluginRegister not found\n");
        library_release(lib);
        return EXIT_LOAD;
    }
    lib->cb_unregister =
        (void (*)(struct flb_plugin_proxy_def *)) resolve(lib->handle, "FLBPluginUnregister");
    ret = lib->cb_register(lib->def);
    if (ret == -1) {
        fprintf(stderr, "[flb_host] FLBPluginRegister failed\n");
        library_release(lib);
        return EXIT_LOAD;
    }
    if (lib->def->type != FLB_PROXY_OUTPUT_PLUGIN || lib->def->proxy != FLB_PROXY_GOLANG ||
        !lib->def->name || strcmp(lib->def->name, EXPECTED_NAME) != 0) {
        fprintf(stderr,
                "[flb_host] bad plugin definition: type=%d (want %d) proxy=%d (want %d) "
                "name=%s (want %s)\n",
                lib->def->type, FLB_PROXY_OUTPUT_PLUGIN, lib->def->proxy, FLB_PROXY_GOLANG,
                lib->def->name ? lib->def->name : "(null)", EXPECTED_NAME);
        if (lib->cb_unregister) {
            lib->cb_unregister(lib->def);
        }
        library_release(lib);
        return EXIT_LOAD;
    }
    if (lib->def->event_type != 0) {
        fprintf(stderr, "[flb_host] warning: event_type=%d (0 = logs expected)\n",
                lib->def->event_type);
    }
    /* Fluent Bit keeps the description pointer (flb_proxy_register_output) */
    if (!lib->def->description) {
        fprintf(stderr, "[flb_host] plugin gave no description\n");
        g_description_stable = 0;
    }
    else if (!g_description_first) {
        g_description_first = xstrdup(lib->def->description);
        g_description_reads++;
    }
    else {
        check_description(lib->def, "after register (reload)");
    }

    /* proxy_go_output_register: one plugin struct per library */
    plugin = malloc(sizeof(*plugin));
    if (!plugin) {
        fprintf(stderr, "[flb_host] out of memory\n");
        exit(EXIT_USAGE);
    }
    lib->plugin = plugin;
    plugin->api = NULL;
    plugin->o_ins = NULL;
    plugin->context = NULL;
    plugin->cb_init =
        (int (*)(struct flbgo_output_plugin *)) resolve(lib->handle, "FLBPluginInit");
    plugin->cb_flush = (int (*)(const void *, size_t, const char *)) resolve(lib->handle,
                                                                             "FLBPluginFlush");
    plugin->cb_flush_ctx =
        (int (*)(void *, const void *, size_t, char *)) resolve(lib->handle, "FLBPluginFlushCtx");
    plugin->cb_exit = (int (*)(void)) resolve(lib->handle, "FLBPluginExit");
    plugin->cb_exit_ctx = (int (*)(void *)) resolve(lib->handle, "FLBPluginExitCtx");
    plugin->name = xstrdup(lib->def->name);
    lib->cb_pre_run = (int (*)(int)) resolve(lib->handle, "FLBPluginOutputPreRun");
    lib->cb_pre_exit = (void (*)(int)) resolve(lib->handle, "FLBPluginOutputPreExit");

    /* flb_api_create */
    lib->api = xcalloc(1, sizeof(*lib->api));
    lib->api->output_get_property = api_output_get_property;
    lib->api->input_get_property = api_input_get_property;
    lib->api->output_get_cmt_instance = api_get_cmt_instance;
    lib->api->input_get_cmt_instance = api_get_cmt_instance;
    lib->api->log_print = api_log_print;
    lib->api->input_log_check = api_other_log_check;
    lib->api->output_log_check = api_output_log_check;
    lib->api->custom_get_property = api_custom_get_property;
    lib->api->custom_log_check = api_other_log_check;

    if (!plugin->cb_init) {
        fprintf(stderr, "[go proxy]: could not load FLBPluginInit symbol\n");
        library_unload(lib);
        return EXIT_LOAD;
    }
    if (!plugin->cb_flush && !plugin->cb_flush_ctx) {
        fprintf(stderr, "[flb_host] neither FLBPluginFlushCtx nor FLBPluginFlush exported\n");
        library_unload(lib);
        return EXIT_LOAD;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* one cycle: start the engine on a loaded library, run, stop, unload                           */

/*
 * Runs cycle `cycle` on the loaded library *cur. With --reload-order new-first and a cycle
 * after this one, the next library is loaded into *next (dlopen of the same path: glibc returns
 * the same handle with its count raised) while this cycle's engine still runs, before it is
 * stopped and *cur unregistered and dlclosed, as flb_reload does. Returns 0 or an exit code;
 * *next_rc gets the next load's result (-1: not loaded here).
 */
static int run_cycle(int cycle, struct host_library *cur, struct host_library *next,
                     int *next_rc)
{
    struct engine e;
    int last = (cycle == g_opt.cycles - 1);
    int rc;
    pthread_condattr_t ca;

    *next_rc = -1;
    memset(&e, 0, sizeof(e));
    e.lib = cur;
    e.cycle = cycle;
    pthread_mutex_init(&e.lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e.cond, &ca);
    pthread_condattr_destroy(&ca);

    /* flb_start: the engine thread does init, pre-run, starts workers and runs */
    if (pthread_create(&e.tid, NULL, engine_main, &e) != 0) {
        fprintf(stderr, "[flb_host] pthread_create failed (engine)\n");
        exit(EXIT_USAGE);
    }
    pthread_mutex_lock(&e.lock);
    while (!(e.started && e.rc != 0) && !e.idle) {
        pthread_cond_wait(&e.cond, &e.lock);
    }
    rc = e.rc;
    pthread_mutex_unlock(&e.lock);

    if (rc == 0 && !last && g_opt.reload_new_first) {
        /* flb_reload.c:523-586: the new context's plugin is loaded and registered first */
        *next_rc = library_load(next, 1);
        if (*next_rc == 0) {
            g_reload_same_handle[g_n_reloads++] = next->handle == cur->handle;
        }
    }

    /* flb_stop (flb_reload.c:637): the engine shuts the instances down on its thread */
    pthread_mutex_lock(&e.lock);
    e.shutdown_by_hot_reloading = g_opt.hot_reload && !last;
    e.stop = 1;
    pthread_cond_broadcast(&e.cond);
    pthread_mutex_unlock(&e.lock);
    pthread_join(e.tid, NULL);
    pthread_cond_destroy(&e.cond);
    pthread_mutex_destroy(&e.lock);

    /* flb_destroy (flb_reload.c:638): unregister and dlclose on the main thread */
    library_unload(cur);
    return rc;
}

/* 1 when the plugin's image is still mapped (dlopen RTLD_NOLOAD finds it) */
static int so_mapped(void)
{
    void *h = dlopen(g_opt.so_path, RTLD_LAZY | RTLD_NOLOAD);
    if (!h) {
        return 0;
    }
    dlclose(h);
    return 1;
}

/* ------------------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: flb_host --so PATH --config FILE [--chunk FILE]... [--threads N]\n"
            "                [--flushes N] [--cycles N] [--stack BYTES] [--retry-delay-ms N]\n"
            "                [--max-retries N] [--flush-interval-ms N] [--hot-reload]\n"
            "                [--reload-order old-first|new-first] [--tick-ms N] [--run-ms N]\n"
            "                [--leak-check-cycles]\n"
            "\n"
            "Loads the plugin like Fluent Bit (register, init per [OUTPUT], flush, exit,\n"
            "unregister, dlclose), --cycles times in one process (default 1).\n"
            "\n"
            "Threads, as Fluent Bit v5.1.1 names and uses them: the main thread loads,\n"
            "registers, unregisters and dlcloses; an engine thread 'flb-pipeline' inits the\n"
            "instances, runs the flushes of every [OUTPUT] without Workers strictly one at a\n"
            "time, and exits the instances; an [OUTPUT] with Workers N >= 1 flushes on N\n"
            "threads named 'flb-out-sigv4_http.<i>-w<k>' cut to 15 characters\n"
            "('flb-out-sigv4_h').\n"
            "--threads T (default 1): the Workers of an [OUTPUT] that has no Workers key;\n"
            "--threads 0 leaves it without Workers, so it flushes on the engine thread, as in\n"
            "Fluent Bit (whose default for proxy outputs is no Workers). A Workers key in the\n"
            "config always wins (Workers 0: engine thread).\n"
            "\n"
            "Flush assignment, per cycle (chunks are the --chunk files in order, n of them;\n"
            "I instances in config order):\n"
            "  default:        each chunk is flushed once: chunk c goes to instance c %% I.\n"
            "  --flushes F:    every instance flushes F times; the k-th flush (k = 0..F-1) of\n"
            "                  instance i uses chunk (i + k) %% n (F = n: every instance\n"
            "                  flushes every chunk once).\n"
            "  Jobs are ordered by k, then i. An instance with W workers gives its m-th job\n"
            "  to worker m %% W (round robin); a worker runs its jobs one after the other,\n"
            "  pausing --flush-interval-ms N between them; workers run concurrently.\n"
            "  The engine's jobs fall due one per --flush-interval-ms (job m at m * N ms\n"
            "  after the engine starts; default 0: all at once) and run one at a time.\n"
            "Each flush runs on a coroutine stack of --stack bytes (default 24576) with a\n"
            "fresh copy of the chunk and of the tag (Test_Tag key, else test.<instance>).\n"
            "FLB_RETRY: flush the same chunk again after --retry-delay-ms (200), at most\n"
            "--max-retries (10) times; a worker sleeps meanwhile, the engine puts the retry\n"
            "on its timer queue and goes on with ticks and other flushes. FLB_ERROR: the\n"
            "chunk is dropped.\n"
            "\n"
            "The engine runs a timer input: a tick falls due every --tick-ms (100) ms and\n"
            "runs whenever the engine is not inside a flush; ticks that fell due while it was\n"
            "busy are coalesced into one run (a timerfd), the others are missed. The engine\n"
            "runs until every job of the cycle is done and at least --run-ms (0) ms passed.\n"
            "Summary: ticks_due, ticks_run, ticks_missed (ticks_due = run + missed),\n"
            "tick_max_late_ms, engine_max_stall_ms (longest flush call on the engine thread),\n"
            "engine_flushes, engine_ms (time the engine loop ran), all summed over cycles.\n"
            "\n"
            "Logging as flb_log_print: a line logged on the engine thread or an output worker\n"
            "goes into the log pipeline: appended to [SERVICE] Log_File when set, else to\n"
            "stderr; a line from any other thread (the main thread: register/unregister; the\n"
            "plugin's own threads) goes straight to stderr. Summary: log_lines_pipeline,\n"
            "log_lines_file, log_lines_foreign. Lines read '[HOST] [level] message'.\n"
            "\n"
            "--hot-reload: FLBPluginPreRegister(1) on cycles after the first,\n"
            "FLBPluginOutputPreRun(1), FLBPluginOutputPreExit(1) on all but the last cycle.\n"
            "--reload-order old-first (default): each cycle is load, run, stop, unregister,\n"
            "dlclose, then the next cycle loads. new-first (implies --hot-reload): Fluent\n"
            "Bit's SIGHUP order (flb_reload): the next cycle's library is dlopened (same\n"
            "handle, count raised), pre-registered and registered on the main thread while\n"
            "the old engine still runs; then the old engine stops (pre-exit, exit), the old\n"
            "registration is unregistered and dlclosed, then the new engine inits. Summary:\n"
            "reload_order, reload_same_handle (per reload: dlopen gave the same handle),\n"
            "so_mapped_after_cycle (the image was still mapped after that cycle's dlclose).\n"
            "\n"
            "Per flush the summary gives its start (t, ms since the host started), the\n"
            "duration of each attempt (ms), thread (worker index, -1: engine) and\n"
            "thread_name (as read on the thread that flushed).\n"
            "--leak-check-cycles: under valgrind memcheck, a leak search after each cycle;\n"
            "the summary's leaked_after_cycle gives the leaked bytes (definitely +\n"
            "indirectly lost) after each cycle (-1 when not running on valgrind).\n"
            "The summary also counts open file descriptors: fds_before (before the first\n"
            "load), fds_after_cycle (after each dlclose), fds_at_end, and fds_new_at_end\n"
            "lists [fd, target] of those open at the end that were not before the load.\n"
            "rss_kb_after_cycle: the host's resident set (KiB) after each dlclose.\n"
            "With new-first the *_after_cycle figures are taken after the old library's\n"
            "dlclose, when the next one is already registered.\n"
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
    g_opt.tick_ms = 100;
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
        else if (strcmp(a, "--threads") == 0 && parse_long(next, &v) == 0 && v >= 0 && v <= 256) {
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
        else if (strcmp(a, "--tick-ms") == 0 && parse_long(next, &v) == 0 && v >= 1) {
            g_opt.tick_ms = v;
        }
        else if (strcmp(a, "--run-ms") == 0 && parse_long(next, &v) == 0 && v >= 0) {
            g_opt.run_ms = v;
        }
        else if (strcmp(a, "--reload-order") == 0 &&
                 (strcmp(next, "old-first") == 0 || strcmp(next, "new-first") == 0)) {
            g_opt.reload_new_first = strcmp(next, "new-first") == 0;
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
    if (g_opt.reload_new_first) {
        g_opt.hot_reload = 1; /* a SIGHUP reload is a hot reload */
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
    }
    /* per cycle, an instance's m-th job goes to its worker m % W (flb_tp_thread_get_rr) */
    for (j = 0; j < g_n_jobs_total; j++) {
        struct host_instance *in = &g_inst[g_jobs[j].instance];
        size_t m = 0, x;
        for (x = j - j % (g_n_jobs_per_cycle ? g_n_jobs_per_cycle : 1); x < j; x++) {
            m += g_jobs[x].instance == g_jobs[j].instance;
        }
        g_jobs[j].thread = in->workers > 0 ? (int) (m % (size_t) in->workers) : -1;
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
        fprintf(o, "{\"cycle\":%d,\"instance\":%d,\"thread\":%d,\"thread_name\":",
                jb->cycle, jb->instance, jb->thread);
        json_str(o, jb->thread_name);
        fprintf(o, ",\"chunk\":");
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
    fprintf(o, "],\"rss_kb_after_cycle\":[");
    for (c = 0; c < cycles_run; c++) {
        fprintf(o, "%s%ld", c ? "," : "", g_rss_kb_after_cycle[c]);
    }
    fprintf(o, "],\"fds_at_end\":%d,\"fds_new_at_end\":", count_fds());
    print_new_fds(o);
    fprintf(o, ",\"leaked_after_cycle\":[");
    for (c = 0; c < cycles_run; c++) {
        fprintf(o, "%s%ld", c ? "," : "", g_leaked_after_cycle[c]);
    }
    fprintf(o, "],\"so_mapped_after_cycle\":[");
    for (c = 0; c < cycles_run; c++) {
        fprintf(o, "%s%s", c ? "," : "", g_so_mapped_after_cycle[c] ? "true" : "false");
    }
    fprintf(o, "],\"reload_order\":\"%s\",\"reload_same_handle\":[",
            g_opt.reload_new_first ? "new-first" : "old-first");
    for (c = 0; c < g_n_reloads; c++) {
        fprintf(o, "%s%s", c ? "," : "", g_reload_same_handle[c] ? "true" : "false");
    }
    fprintf(o, "],\"workers\":[");
    for (j = 0; j < g_n_inst; j++) {
        fprintf(o, "%s%d", j ? "," : "", g_inst[j].workers);
    }
    fprintf(o, "],\"tick_ms\":%ld,\"run_ms\":%ld,\"ticks_due\":%ld,\"ticks_run\":%ld,"
               "\"ticks_missed\":%ld,\"tick_max_late_ms\":%.3f,\"engine_max_stall_ms\":%.3f,"
               "\"engine_flushes\":%ld,\"engine_ms\":%.3f,",
            g_opt.tick_ms, g_opt.run_ms, g_ticks_due, g_ticks_run, g_ticks_missed,
            g_tick_max_late_ms, g_engine_max_stall_ms, g_engine_flushes, g_engine_ms);
    fprintf(o, "\"log_file\":");
    json_str(o, g_log_file_path);
    fprintf(o, ",\"log_lines_pipeline\":%ld,\"log_lines_file\":%ld,\"log_lines_foreign\":%ld,",
            g_log_lines_pipeline, g_log_lines_file, g_log_lines_foreign);
    fprintf(o, "\"description\":");
    json_str(o, g_description_first);
    fprintf(o, ",\"description_stable\":%s,\"description_reads\":%d,\"exit_code\":%d}\n",
            g_description_stable ? "true" : "false", g_description_reads, rc);
    fflush(o);
}

int main(int argc, char **argv)
{
    int rc = 0, cycle, cycles_run = 0, loaded = 0;
    size_t i;
    struct host_library cur, next;

    memset(&cur, 0, sizeof(cur));
    memset(&next, 0, sizeof(next));
    clock_gettime(CLOCK_MONOTONIC, &g_t0);
    if (parse_args(argc, argv) != 0) {
        usage(stderr);
        free(g_opt.chunk_paths);
        return EXIT_USAGE;
    }
    rc = load_config(g_opt.config_path);
    if (rc) {
        free_instances();
        free(g_log_file_path);
        free(g_opt.chunk_paths);
        return rc;
    }
    if (g_log_file_path) {
        /* flb_log_create opens Log_File for appending; failing to, Fluent Bit does not start */
        g_log_file = fopen(g_log_file_path, "a");
        if (!g_log_file) {
            fprintf(stderr, "[flb_host] cannot open Log_File %s: %s\n", g_log_file_path,
                    strerror(errno));
            free_instances();
            free(g_log_file_path);
            free(g_opt.chunk_paths);
            return EXIT_USAGE;
        }
    }
    g_threads_before = count_threads();
    g_fds_before = count_fds();
    remember_fds();
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
        g_rss_kb_after_cycle = xcalloc((size_t) g_opt.cycles, sizeof(long));
        g_leaked_after_cycle = xcalloc((size_t) g_opt.cycles, sizeof(long));
        g_so_mapped_after_cycle = xcalloc((size_t) g_opt.cycles, sizeof(int));
        g_reload_same_handle = xcalloc((size_t) g_opt.cycles, sizeof(int));
        for (cycle = 0; cycle < g_opt.cycles; cycle++) {
            int next_rc = -1;
            if (!loaded) {
                rc = library_load(&cur, g_opt.hot_reload && cycle > 0);
            }
            loaded = 0;
            if (rc == 0) {
                rc = run_cycle(cycle, &cur, &next, &next_rc);
                if (next_rc == 0) {
                    cur = next; /* new-first: the next cycle's library is registered already */
                    loaded = 1;
                }
                else if (next_rc > 0 && rc == 0) {
                    rc = next_rc;
                }
            }
            cycles_run++;
            g_so_mapped_after_cycle[cycle] = so_mapped();
            g_threads_after_cycle[cycle] = count_threads_settled();
            if (g_threads_after_cycle[cycle] > g_threads_before) {
                print_thread_names(cycle);
            }
            g_fds_after_cycle[cycle] = count_fds();
            g_rss_kb_after_cycle[cycle] = rss_kb_now();
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
    free(g_rss_kb_after_cycle);
    free(g_leaked_after_cycle);
    free(g_so_mapped_after_cycle);
    free(g_reload_same_handle);
    if (g_log_file) {
        fclose(g_log_file);
    }
    free(g_log_file_path);
    free(g_description_first);
    free_instances();
    free(g_opt.chunk_paths);
    return rc;
}
