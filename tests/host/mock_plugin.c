/*
 * mock_plugin.c - a tiny proxy output plugin implementing include/flb_sigv4.h, used to test
 * the C host (flb_host.c) independently of the real plugin.
 *
 * Properties (through flb_api.output_get_property):
 *   mock_dump    space-separated keys: each is logged at info as "prop KEY=VALUE" (or "(null)")
 *   mock_init    "fail": FLBPluginInit returns 0
 *   mock_result  "ok" (default) | "error" | "retry:N" (each flush: N x FLB_RETRY, then FLB_OK)
 *                | "retry_always" | "weird" (returns 7)
 *   mock_stack   bytes of coroutine stack to touch in each flush
 *   mock_log     "on": log every flush at debug level (after output_log_check)
 *   mock_sleep_ms      N: each flush sleeps N ms before it returns (a slow endpoint)
 *   mock_report_thread "on": each flush prints "[MOCK] instance I flush thread=NAME" (the
 *                      name of the thread it runs on) straight to stderr
 *   mock_thread_log    "on": each flush starts a thread of its own that logs "instance I
 *                      line from a plugin thread" at info through log_print, and joins it;
 *                      the flush itself logs "instance I line from the flush" at info
 * Registrations are counted: register and unregister print "[MOCK] live registrations=L
 * registered=R" (R: registrations this mapped image has seen, so R > 1 shows that dlopen gave
 * the same image back); the background thread lives from the first registration to the last
 * unregistration, as a runtime shared across hot reloads must.
 * Environment:
 *   MOCK_BAD_DEF=1      register with proxy = 0
 *   MOCK_LEAK_THREAD=1  start a thread at register that is never joined
 *   MOCK_LEAK_MEM=1     lose a heap block in each init (valgrind must call it definitely lost)
 *   MOCK_KEEP_DATA=1    keep the chunk pointer past the flush and read it at exit (valgrind
 *                       must report an invalid read: the host frees the chunk after the flush)
 * Plain diagnostics go to stderr as "[MOCK] ...".
 */
#include <pthread.h>
#include <sys/prctl.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flb_sigv4.h"

struct mock_ctx {
    struct flb_api *api;
    void *o_ins;
    int index;
    int retries;       /* retry:N */
    int mode;          /* 0 ok, 1 error, 2 retry:N, 3 retry always, 4 weird */
    long stack_bytes;
    int log_flush;
    long sleep_ms;
    int report_thread;
    int thread_log;
    pthread_mutex_t lock;
    int pending_retries; /* per instance: counts down within one chunk's attempts */
    long flushes;
    const unsigned char *kept; /* MOCK_KEEP_DATA */
};

static int env_on(const char *name)
{
    const char *v = getenv(name);
    return v && strcmp(v, "1") == 0;
}

static char g_name[] = "sigv4_http";
static char g_desc[] = "mock plugin for the flb_host tests";
static int g_next_index;
static pthread_t g_thread;
static int g_thread_started;
static pthread_mutex_t g_stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_stop_cond = PTHREAD_COND_INITIALIZER;
static int g_stop;
static void *volatile g_lost;

static void plog(struct mock_ctx *c, int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    if (!c->api->output_log_check(c->o_ins, level)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    c->api->log_print(level, __FILE__, __LINE__, "%s", buf);
}

static void *bg_main(void *arg)
{
    (void) arg;
    pthread_mutex_lock(&g_stop_lock);
    while (!g_stop) {
        pthread_cond_wait(&g_stop_cond, &g_stop_lock);
    }
    pthread_mutex_unlock(&g_stop_lock);
    return NULL;
}

static int g_live;       /* registrations not yet unregistered */
static int g_registered; /* registrations this image has seen */

static void *foreign_log_main(void *arg)
{
    struct mock_ctx *c = arg;
    plog(c, FLB_LOG_INFO, "instance %d line from a plugin thread", c->index);
    return NULL;
}

static void *leaked_main(void *arg)
{
    (void) arg;
    for (;;) {
        pause();
    }
    return NULL;
}

int FLBPluginPreRegister(int hot_reloading)
{
    fprintf(stderr, "[MOCK] pre_register hot_reloading=%d\n", hot_reloading);
    return 0;
}

int FLBPluginRegister(struct flb_plugin_proxy_def *def)
{
    const char *bad = getenv("MOCK_BAD_DEF");
    const char *leak = getenv("MOCK_LEAK_THREAD");
    fprintf(stderr, "[MOCK] register preset_type=%d\n", def->type);
    def->type = FLB_PROXY_OUTPUT_PLUGIN;
    def->proxy = (bad && strcmp(bad, "1") == 0) ? 0 : FLB_PROXY_GOLANG;
    def->flags = 0;
    def->name = g_name;
    def->description = g_desc;
    def->event_type = 0;
    def->config_map = NULL;
    g_next_index = 0;
    g_registered++;
    if (g_live++ == 0) {
        g_stop = 0;
        if (pthread_create(&g_thread, NULL, bg_main, NULL) == 0) {
            g_thread_started = 1;
        }
    }
    fprintf(stderr, "[MOCK] live registrations=%d registered=%d\n", g_live, g_registered);
    if (leak && strcmp(leak, "1") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, leaked_main, NULL) == 0) {
            pthread_detach(t);
        }
    }
    return 0;
}

int FLBPluginInit(struct flbgo_output_plugin *plugin)
{
    struct mock_ctx *c;
    const char *v;
    if (!plugin || !plugin->api || !plugin->context || !plugin->name ||
        strcmp(plugin->name, g_name) != 0) {
        fprintf(stderr, "[MOCK] bad plugin struct at init\n");
        return 0;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return 0;
    }
    c->api = plugin->api;
    c->o_ins = plugin->o_ins;
    c->index = g_next_index++;
    pthread_mutex_init(&c->lock, NULL);

    v = c->api->output_get_property("mock_dump", c->o_ins);
    if (v) {
        char *copy = strdup(v), *save = NULL, *k;
        for (k = strtok_r(copy, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
            const char *val = c->api->output_get_property(k, c->o_ins);
            plog(c, FLB_LOG_INFO, "instance %d prop %s=%s", c->index, k, val ? val : "(null)");
        }
        free(copy);
    }
    v = c->api->output_get_property("mock_result", c->o_ins);
    if (v && strcmp(v, "error") == 0) {
        c->mode = 1;
    }
    else if (v && strncmp(v, "retry:", 6) == 0) {
        c->mode = 2;
        c->retries = atoi(v + 6);
        c->pending_retries = c->retries;
    }
    else if (v && strcmp(v, "retry_always") == 0) {
        c->mode = 3;
    }
    else if (v && strcmp(v, "weird") == 0) {
        c->mode = 4;
    }
    v = c->api->output_get_property("mock_stack", c->o_ins);
    c->stack_bytes = v ? atol(v) : 0;
    v = c->api->output_get_property("mock_log", c->o_ins);
    c->log_flush = v && strcmp(v, "on") == 0;
    v = c->api->output_get_property("mock_sleep_ms", c->o_ins);
    c->sleep_ms = v ? atol(v) : 0;
    v = c->api->output_get_property("mock_report_thread", c->o_ins);
    c->report_thread = v && strcmp(v, "on") == 0;
    v = c->api->output_get_property("mock_thread_log", c->o_ins);
    c->thread_log = v && strcmp(v, "on") == 0;
    v = c->api->output_get_property("mock_init", c->o_ins);
    if (v && strcmp(v, "fail") == 0) {
        plog(c, FLB_LOG_ERROR, "instance %d: init refused (mock_init fail)", c->index);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return 0;
    }
    if (env_on("MOCK_LEAK_MEM")) {
        g_lost = malloc(100); /* volatile: the compiler must not elide the allocation */
        g_lost = NULL;
    }
    plugin->context->remote_context = c;
    plog(c, FLB_LOG_INFO, "instance %d initialized", c->index);
    return 1;
}

int FLBPluginOutputPreRun(int enable_hot_reload)
{
    fprintf(stderr, "[MOCK] pre_run enable_hot_reload=%d\n", enable_hot_reload);
    return 0;
}

static unsigned long touch_stack(long n)
{
    volatile char buf[n > 0 ? n : 1];
    long i;
    unsigned long s = 0;
    for (i = 0; i < n; i += 64) {
        buf[i] = (char) i;
    }
    for (i = 0; i < n; i += 64) {
        s += (unsigned char) buf[i];
    }
    return s;
}

int FLBPluginFlushCtx(void *remote_ctx, const void *data, size_t size, char *tag)
{
    struct mock_ctx *c = remote_ctx;
    const unsigned char *p = data;
    unsigned long sum = 0;
    size_t i;
    int ret = FLB_OK;

    for (i = 0; i < size; i++) {
        sum = sum * 31 + p[i];
    }
    if (c->stack_bytes > 0) {
        sum += touch_stack(c->stack_bytes);
    }
    pthread_mutex_lock(&c->lock);
    c->flushes++;
    if (env_on("MOCK_KEEP_DATA") && size > 0) {
        c->kept = p;
    }
    switch (c->mode) {
    case 1:
        ret = FLB_ERROR;
        break;
    case 2:
        if (c->pending_retries > 0) {
            c->pending_retries--;
            ret = FLB_RETRY;
        }
        else {
            c->pending_retries = c->retries; /* next chunk starts over */
            ret = FLB_OK;
        }
        break;
    case 3:
        ret = FLB_RETRY;
        break;
    case 4:
        ret = 7;
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&c->lock);
    if (c->report_thread) {
        char name[17] = "";
        prctl(PR_GET_NAME, name, 0, 0, 0);
        fprintf(stderr, "[MOCK] instance %d flush thread=%s\n", c->index, name);
    }
    if (c->thread_log) {
        pthread_t t;
        plog(c, FLB_LOG_INFO, "instance %d line from the flush", c->index);
        if (pthread_create(&t, NULL, foreign_log_main, c) == 0) {
            pthread_join(t, NULL);
        }
    }
    if (c->sleep_ms > 0) {
        struct timespec ts = {c->sleep_ms / 1000, (c->sleep_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (c->log_flush) {
        plog(c, FLB_LOG_DEBUG, "instance %d flush tag=%s size=%zu sum=%lx ret=%d", c->index,
             tag, size, sum, ret);
    }
    return ret;
}

void FLBPluginOutputPreExit(int shutdown_by_hot_reloading)
{
    fprintf(stderr, "[MOCK] pre_exit shutdown_by_hot_reloading=%d\n", shutdown_by_hot_reloading);
}

int FLBPluginExitCtx(void *remote_ctx)
{
    struct mock_ctx *c = remote_ctx;
    if (!c) {
        fprintf(stderr, "[MOCK] exit with NULL context\n");
        return FLB_ERROR;
    }
    if (c->kept) {
        volatile unsigned char late = c->kept[0]; /* use after the flush returned */
        (void) late;
    }
    plog(c, FLB_LOG_INFO, "instance %d exit flushes=%ld", c->index, c->flushes);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return FLB_OK;
}

void FLBPluginUnregister(struct flb_plugin_proxy_def *def)
{
    fprintf(stderr, "[MOCK] unregister name=%s\n", def->name);
    g_live--;
    fprintf(stderr, "[MOCK] live registrations=%d registered=%d\n", g_live, g_registered);
    if (g_live == 0 && g_thread_started) {
        pthread_mutex_lock(&g_stop_lock);
        g_stop = 1;
        pthread_cond_broadcast(&g_stop_cond);
        pthread_mutex_unlock(&g_stop_lock);
        pthread_join(g_thread, NULL);
        g_thread_started = 0;
    }
}
