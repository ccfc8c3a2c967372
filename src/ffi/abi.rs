//! `#[repr(C)]` mirrors of include/flb_sigv4.h, checked against it at build time.

use std::ffi::{c_char, c_int, c_void};

pub const FLB_ERROR: c_int = 0;
pub const FLB_OK: c_int = 1;
pub const FLB_RETRY: c_int = 2;
pub const FLB_PROXY_OUTPUT_PLUGIN: c_int = 2;
pub const FLB_PROXY_GOLANG: c_int = 11;

#[repr(C)]
pub struct FlbPluginProxyDef {
    pub type_: c_int,
    pub proxy: c_int,
    pub flags: c_int,
    pub name: *mut c_char,
    pub description: *mut c_char,
    pub event_type: c_int,
    pub config_map: *mut c_void,
}

#[repr(C)]
pub struct FlbPluginProxyContext {
    pub remote_context: *mut c_void,
    pub proxy: *mut c_void,
}

pub type GetPropertyFn =
    unsafe extern "C" fn(key: *const c_char, ins: *mut c_void) -> *const c_char;
pub type LogPrintFn =
    unsafe extern "C" fn(level: c_int, file: *const c_char, line: c_int, fmt: *const c_char, ...);
pub type LogCheckFn = unsafe extern "C" fn(ins: *mut c_void, level: c_int) -> c_int;

#[repr(C)]
pub struct FlbApi {
    pub output_get_property: Option<GetPropertyFn>,
    pub input_get_property: Option<GetPropertyFn>,
    pub output_get_cmt_instance: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    pub input_get_cmt_instance: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    pub log_print: Option<LogPrintFn>,
    pub input_log_check: Option<LogCheckFn>,
    pub output_log_check: Option<LogCheckFn>,
    pub custom_get_property: Option<GetPropertyFn>,
    pub custom_log_check: Option<LogCheckFn>,
}

#[repr(C)]
pub struct FlbgoOutputPlugin {
    pub name: *mut c_char,
    pub api: *mut FlbApi,
    pub o_ins: *mut c_void,
    pub context: *mut FlbPluginProxyContext,
    pub cb_init: Option<unsafe extern "C" fn(*mut FlbgoOutputPlugin) -> c_int>,
    pub cb_flush: Option<unsafe extern "C" fn(*const c_void, usize, *const c_char) -> c_int>,
    pub cb_flush_ctx:
        Option<unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_char) -> c_int>,
    pub cb_exit: Option<unsafe extern "C" fn() -> c_int>,
    pub cb_exit_ctx: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
}

#[allow(non_upper_case_globals, dead_code)]
mod layout {
    include!(concat!(env!("OUT_DIR"), "/abi_layout.rs"));
}

// A mismatch between these mirrors and include/flb_sigv4.h fails the build here.
macro_rules! check_layout {
    ($ty:ty, $size:expr, $( $field:ident => $off:expr ),* ) => {
        const _: () = assert!(std::mem::size_of::<$ty>() == $size, "ABI size mismatch");
        $( const _: () = assert!(std::mem::offset_of!($ty, $field) == $off, "ABI offset mismatch"); )*
    };
}

check_layout!(FlbPluginProxyDef, layout::SIZEOF_flb_plugin_proxy_def,
    type_ => layout::OFFSETOF_flb_plugin_proxy_def_type,
    proxy => layout::OFFSETOF_flb_plugin_proxy_def_proxy,
    flags => layout::OFFSETOF_flb_plugin_proxy_def_flags,
    name => layout::OFFSETOF_flb_plugin_proxy_def_name,
    description => layout::OFFSETOF_flb_plugin_proxy_def_description,
    event_type => layout::OFFSETOF_flb_plugin_proxy_def_event_type,
    config_map => layout::OFFSETOF_flb_plugin_proxy_def_config_map);
check_layout!(FlbPluginProxyContext, layout::SIZEOF_flb_plugin_proxy_context,
    remote_context => layout::OFFSETOF_flb_plugin_proxy_context_remote_context,
    proxy => layout::OFFSETOF_flb_plugin_proxy_context_proxy);
// Every field, so that two swapped fields of the same type fail too.
check_layout!(FlbApi, layout::SIZEOF_flb_api,
    output_get_property => layout::OFFSETOF_flb_api_output_get_property,
    input_get_property => layout::OFFSETOF_flb_api_input_get_property,
    output_get_cmt_instance => layout::OFFSETOF_flb_api_output_get_cmt_instance,
    input_get_cmt_instance => layout::OFFSETOF_flb_api_input_get_cmt_instance,
    log_print => layout::OFFSETOF_flb_api_log_print,
    input_log_check => layout::OFFSETOF_flb_api_input_log_check,
    output_log_check => layout::OFFSETOF_flb_api_output_log_check,
    custom_get_property => layout::OFFSETOF_flb_api_custom_get_property,
    custom_log_check => layout::OFFSETOF_flb_api_custom_log_check);
check_layout!(FlbgoOutputPlugin, layout::SIZEOF_flbgo_output_plugin,
    name => layout::OFFSETOF_flbgo_output_plugin_name,
    api => layout::OFFSETOF_flbgo_output_plugin_api,
    o_ins => layout::OFFSETOF_flbgo_output_plugin_o_ins,
    context => layout::OFFSETOF_flbgo_output_plugin_context,
    cb_init => layout::OFFSETOF_flbgo_output_plugin_cb_init,
    cb_flush => layout::OFFSETOF_flbgo_output_plugin_cb_flush,
    cb_flush_ctx => layout::OFFSETOF_flbgo_output_plugin_cb_flush_ctx,
    cb_exit => layout::OFFSETOF_flbgo_output_plugin_cb_exit,
    cb_exit_ctx => layout::OFFSETOF_flbgo_output_plugin_cb_exit_ctx);
