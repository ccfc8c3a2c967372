//! The only unsafe code of the crate: the `#[repr(C)]` ABI structs ([`abi`]), the exported
//! symbols ([`exports`]) and the bridge from [`crate::log::Log`] to Fluent Bit's `log_print`
//! ([`log_bridge`]), and zlib-rs' C API for the one deflate setting flate2 does not reach
//! ([`zlib`]). Every exported function converts its arguments, calls safe code inside a
//! panic guard and maps the outcome to a Fluent Bit return code.

pub mod abi;
pub mod exports;
pub mod log_bridge;
pub mod signal;
pub mod zlib;
