//! AWS pieces: credentials (providers, chain, refresh) and SigV4 signing.
pub mod credentials;
pub mod scope;
pub mod signing;
