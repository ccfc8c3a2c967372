//! AWS pieces: credentials (providers, chain, refresh), SigV4 signing, the skew-corrected clock
//! and the HTTP client every AWS call shares.
pub mod clock;
pub mod credentials;
pub mod http;
pub mod scope;
pub mod signing;
