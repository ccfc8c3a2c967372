//! HTTP: proxy resolution, client construction, delivery.
pub mod body;
pub mod client;
pub mod delivery;
pub mod proxy;
