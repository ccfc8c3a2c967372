/*
 * flb_sigv4.h - the Fluent Bit "Go-style" proxy plugin ABI as flb-sigv4 implements it.
 *
 * Mirrors fluent-bit/include/fluent-bit/flb_plugin_proxy.h, flb_api.h and src/proxy/go/go.h
 * (identical in Fluent Bit v2..v5). build.rs compiles this header and fails the build when
 * the Rust #[repr(C)] mirrors in src/ffi/abi.rs disagree on a size or field offset.
 */
#ifndef FLB_SIGV4_H
#define FLB_SIGV4_H

#include <stddef.h>

#define FLB_ERROR 0
#define FLB_OK 1
#define FLB_RETRY 2

#define FLB_PROXY_OUTPUT_PLUGIN 2
#define FLB_PROXY_GOLANG 11

#define FLB_LOG_ERROR 1
#define FLB_LOG_WARN 2
#define FLB_LOG_INFO 3
#define FLB_LOG_DEBUG 4
#define FLB_LOG_TRACE 5

struct flb_plugin_proxy_def {
    int type;          /* FLB_PROXY_OUTPUT_PLUGIN */
    int proxy;         /* FLB_PROXY_GOLANG */
    int flags;
    char *name;        /* copied by Fluent Bit */
    char *description; /* pointer kept by Fluent Bit: must outlive the load */
    int event_type;    /* 0 = logs */
    void *config_map;
};

struct flb_plugin_proxy_context {
    void *remote_context; /* set by FLBPluginInit, passed back to FlushCtx/ExitCtx */
    void *proxy;
};

struct flb_api {
    const char *(*output_get_property)(const char *key, void *o_ins);
    const char *(*input_get_property)(const char *key, void *i_ins);
    void *(*output_get_cmt_instance)(void *o_ins);
    void *(*input_get_cmt_instance)(void *i_ins);
    void (*log_print)(int level, const char *file, int line, const char *fmt, ...);
    int (*input_log_check)(void *i_ins, int level);
    int (*output_log_check)(void *o_ins, int level);
    const char *(*custom_get_property)(const char *key, void *c_ins);
    int (*custom_log_check)(void *c_ins, int level);
};

/* One per loaded library; Fluent Bit rewrites o_ins/context before each instance's init. */
struct flbgo_output_plugin {
    char *name;
    struct flb_api *api;
    void *o_ins;
    struct flb_plugin_proxy_context *context;
    int (*cb_init)(struct flbgo_output_plugin *);
    int (*cb_flush)(const void *, size_t, const char *);
    int (*cb_flush_ctx)(void *, const void *, size_t, char *);
    int (*cb_exit)(void);
    int (*cb_exit_ctx)(void *);
};

int FLBPluginPreRegister(int hot_reloading);
int FLBPluginRegister(struct flb_plugin_proxy_def *def);
int FLBPluginInit(struct flbgo_output_plugin *plugin);
int FLBPluginOutputPreRun(int enable_hot_reload);
int FLBPluginFlushCtx(void *remote_ctx, const void *data, size_t size, char *tag);
int FLBPluginFlush(const void *data, size_t size, char *tag);
void FLBPluginOutputPreExit(int shutdown_by_hot_reloading);
int FLBPluginExitCtx(void *remote_ctx);
int FLBPluginExit(void);
void FLBPluginUnregister(struct flb_plugin_proxy_def *def);

#endif
