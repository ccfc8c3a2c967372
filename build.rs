//! Checks the Rust `#[repr(C)]` mirrors in src/ffi/abi.rs against include/flb_sigv4.h: compiles
//! a tiny C program with the system compiler that prints sizes and field offsets, and writes them
//! as constants that src/ffi/abi.rs compares in `const` assertions (a mismatch fails the build).

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

const PROBE: &str = r#"
#include <stdio.h>
#include <stddef.h>
#include "flb_sigv4.h"
#define S(t) printf("pub const SIZEOF_%s: usize = %zu;\n", #t, sizeof(struct t));
#define O(t, f) printf("pub const OFFSETOF_%s_%s: usize = %zu;\n", #t, #f, offsetof(struct t, f));
int main(void) {
    S(flb_plugin_proxy_def) O(flb_plugin_proxy_def, type) O(flb_plugin_proxy_def, proxy)
    O(flb_plugin_proxy_def, flags) O(flb_plugin_proxy_def, name) O(flb_plugin_proxy_def, description)
    O(flb_plugin_proxy_def, event_type) O(flb_plugin_proxy_def, config_map)
    S(flb_plugin_proxy_context) O(flb_plugin_proxy_context, remote_context) O(flb_plugin_proxy_context, proxy)
    S(flb_api) O(flb_api, output_get_property) O(flb_api, input_get_property)
    O(flb_api, output_get_cmt_instance) O(flb_api, input_get_cmt_instance) O(flb_api, log_print)
    O(flb_api, input_log_check) O(flb_api, output_log_check) O(flb_api, custom_get_property)
    O(flb_api, custom_log_check)
    S(flbgo_output_plugin) O(flbgo_output_plugin, name) O(flbgo_output_plugin, api)
    O(flbgo_output_plugin, o_ins) O(flbgo_output_plugin, context) O(flbgo_output_plugin, cb_init)
    O(flbgo_output_plugin, cb_flush) O(flbgo_output_plugin, cb_flush_ctx)
    O(flbgo_output_plugin, cb_exit) O(flbgo_output_plugin, cb_exit_ctx)
    return 0;
}
"#;

fn main() {
    println!("cargo:rerun-if-changed=include/flb_sigv4.h");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let src = out.join("abi_probe.c");
    let exe = out.join("abi_probe");
    fs::write(&src, PROBE).expect("write ABI probe source");
    let compiler = cc::Build::new().get_compiler();
    let status = compiler
        .to_command()
        .arg("-Iinclude")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run the C compiler for the ABI probe");
    assert!(
        status.success(),
        "compiling the ABI probe against include/flb_sigv4.h failed"
    );
    let output = Command::new(&exe).output().expect("run the ABI probe");
    assert!(output.status.success(), "the ABI probe failed");
    fs::write(out.join("abi_layout.rs"), output.stdout).expect("write abi_layout.rs");
}
