//! The credential sources, one module each (like aws-config): they fetch, and know nothing of
//! the chain's order, the cache or the AssumeRole layer.

pub(crate) mod cmdline;
pub(crate) mod container;
pub(crate) mod ec2;
pub(crate) mod environment;
pub(crate) mod imds;
pub(crate) mod process;
pub(crate) mod profile;
pub(crate) mod sso;
pub(crate) mod web_identity;
