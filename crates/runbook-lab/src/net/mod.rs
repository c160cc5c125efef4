//! The lab network's services: cluster DNS, the service proxy, and
//! NetworkPolicy (what it allows, and its nftables rules).

pub mod dns;
pub mod policy;
pub mod policy_nft;
pub mod proxy;
