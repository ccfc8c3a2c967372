//! flb-sigv4: a Fluent Bit output plugin (Go-style proxy ABI) that turns msgpack chunks into
//! HTTP bodies, signs them with AWS SigV4 and ships them. See ../README.md and DESIGN.md.
//!
//! All unsafe code lives in [`ffi`]; everything else is safe Rust testable without Fluent Bit.

pub mod aws;
pub mod chunk_bodies;
pub mod config;
pub mod env;
pub mod event;
pub mod ffi;
pub mod handoff;
pub mod http;
pub mod log;
pub mod opensearch;
pub mod output;
pub mod runtime;
