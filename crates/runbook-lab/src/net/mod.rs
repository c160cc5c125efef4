//! The lab network's services: cluster DNS and the service proxy.

pub mod dns;
pub mod proxy;
