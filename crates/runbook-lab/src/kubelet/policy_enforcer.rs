//! Enforces NetworkPolicy, as a cluster's network plugin does: each running
//! pod's network namespace gets the nftables rules of its isolation
//! ([`crate::net::policy`]), loaded before its first container starts and
//! again whenever a policy, a pod or a namespace changes. The rules live in
//! the pod's own namespace, so they go with the pod; nothing is written to
//! the host. Without `nft` (nftables) policies are stored but not enforced,
//! and the lab says so once in an Event on each policy. A slow policy (the
//! lab's latency annotation) also gets the pod's packets held by
//! [`PacketDelays`], with xtables rules that queue them to it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde_json::Value;
use tokio::sync::Notify;

use super::KubeletCtx;
use super::network::GATEWAY;
use super::packet_delay::PacketDelays;
use super::pod::PodHandle;
use crate::api::objects;
use crate::net::policy::{self, World};
use crate::net::policy_nft;

/// The enforcer's memory: the script each pod (by uid) last loaded.
pub struct PolicyEnforcer {
    nft: Option<PathBuf>,
    iptables_restore: Option<PathBuf>,
    ignored: bool,
    delays: PacketDelays,
    loaded: Mutex<HashMap<String, String>>,
    warned: Mutex<HashSet<String>>,
    wake: Notify,
}

impl PolicyEnforcer {
    /// An enforcer; with `enforce` false, policies are stored but not
    /// enforced (and say so in an event), as with a network plugin that
    /// ignores them.
    pub fn new(enforce: bool) -> Self {
        PolicyEnforcer {
            nft: if enforce { super::sandbox::which("nft") } else { None },
            // Legacy xtables first: its NFQUEUE target needs no nftables
            // compatibility layer.
            iptables_restore: super::sandbox::which("iptables-legacy-restore")
                .or_else(|| super::sandbox::which("iptables-restore")),
            ignored: !enforce,
            delays: PacketDelays::default(),
            loaded: Mutex::default(),
            warned: Mutex::default(),
            wake: Notify::new(),
        }
    }
}

impl PolicyEnforcer {
    /// Asks for every pod's rules to be brought up to date (coalesced).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Brings the pods' rules up to date whenever poked, until the lab stops.
    pub async fn run(self: Arc<Self>, ctx: Arc<KubeletCtx>) {
        loop {
            tokio::select! {
                _ = ctx.shutdown.cancelled() => {
                    self.delays.retain(|_| false);
                    return;
                }
                _ = self.wake.notified() => {}
            }
            if self.idle(&ctx) {
                continue;
            }
            let handles: Vec<Arc<PodHandle>> =
                ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            let world = Snapshot::take(&ctx);
            for handle in handles {
                self.program(&ctx, &handle, &world).await;
            }
            self.forget_gone(&ctx);
        }
    }

    /// Loads one pod's rules now (a pod about to start its containers).
    pub async fn program_now(&self, ctx: &KubeletCtx, handle: &PodHandle) {
        if !self.idle(ctx) {
            self.program(ctx, handle, &Snapshot::take(ctx)).await;
        }
    }

    /// No policy exists and no pod has rules: most labs never see a policy,
    /// and their pod changes then cost nothing here.
    fn idle(&self, ctx: &KubeletCtx) -> bool {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
            && ctx.store.list("networkpolicies", None).0.is_empty()
    }

    async fn program(&self, ctx: &KubeletCtx, handle: &PodHandle, world: &Snapshot) {
        let pid = handle.sandbox_pid.load(Ordering::SeqCst);
        let Some(pod) = world.pods.iter().find(|p| p["metadata"]["uid"] == handle.uid.as_str()) else { return };
        if pid == 0 || pod["status"]["podIP"].as_str().is_none_or(str::is_empty) {
            return;
        }
        let isolation = policy::isolation(pod, &world.view());
        let dns_allowed = isolation.egress.as_deref().is_none_or(|e| policy::reaches(e, GATEWAY, "udp", 53));
        let script = policy_nft::script(&isolation, GATEWAY, dns_allowed);
        let isolated = isolation.ingress.is_some() || isolation.egress.is_some();
        {
            let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
            match loaded.get(&handle.uid) {
                Some(previous) if *previous == script => return,
                None if !isolated => return,
                _ => {}
            }
        }
        let Some(nft) = &self.nft else {
            self.warn_not_enforced(ctx, world);
            return;
        };
        // Packets are held before they are marked, and let go after.
        if let Some(millis) = isolation.latency_ms
            && let Err(e) = self.delay(&handle.uid, pid, millis).await
        {
            ctx.event(pod, "Warning", "NetworkPolicyFailed", &format!("{e:#}"));
            return;
        }
        let loaded = load(nft, pid, &script).await;
        if isolation.latency_ms.is_none() && self.delays.holds(&handle.uid) {
            self.delays.clear(&handle.uid);
            self.undelay(ctx, pod, pid).await;
        }
        match loaded {
            Ok(()) => {
                self.loaded.lock().unwrap_or_else(|e| e.into_inner()).insert(handle.uid.clone(), script);
            }
            // A pod that just ended has no namespace left: nothing to enforce.
            Err(_) if handle.sandbox_pid.load(Ordering::SeqCst) != pid => {}
            Err(e) => ctx.event(pod, "Warning", "NetworkPolicyFailed", &format!("{e:#}")),
        }
    }

    /// Holds the pod's marked packets for `millis`: the queueing rules
    /// once, the holding thread if it has none.
    async fn delay(&self, uid: &str, pid: u32, millis: u32) -> anyhow::Result<()> {
        if !self.delays.holds(uid) {
            let Some(restore) = &self.iptables_restore else {
                anyhow::bail!("latency needs iptables-restore (xtables) on the host to queue packets to the lab");
            };
            let rules = policy_nft::delay_rules();
            super::netutil::run_in_netns(pid, restore, &[], &rules).await.context("loading the pod's delay rules")?;
        }
        self.delays.set(uid, pid, millis).context("opening the pod's delay queue")
    }

    /// Takes the queueing rules out of the pod's namespace once its packets
    /// are no longer delayed: a slow link leaves no rule behind.
    async fn undelay(&self, ctx: &KubeletCtx, pod: &Value, pid: u32) {
        let Some(restore) = &self.iptables_restore else { return };
        let flushed = super::netutil::run_in_netns(pid, restore, &[], &policy_nft::no_delay_rules()).await;
        if let Err(e) = flushed.context("taking the pod's delay rules out") {
            ctx.event(pod, "Warning", "NetworkPolicyFailed", &format!("{e:#}"));
        }
    }

    /// Drops what is remembered of pods that are gone.
    fn forget_gone(&self, ctx: &KubeletCtx) {
        let running: HashSet<String> = ctx.pods.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).retain(|uid, _| running.contains(uid));
        self.delays.retain(|uid| running.contains(uid));
    }

    fn warn_not_enforced(&self, ctx: &KubeletCtx, world: &Snapshot) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        for policy in &world.policies {
            let uid = policy["metadata"]["uid"].as_str().unwrap_or_default().to_string();
            if warned.insert(uid) {
                let message = if self.ignored {
                    "not enforced: this lab ignores NetworkPolicy (--ignore-network-policy)"
                } else {
                    "not enforced: the lab needs nft (nftables) on the host to enforce NetworkPolicy"
                };
                objects::record_event(&ctx.store, policy, "Warning", "NotEnforced", message, "kubelet");
            }
        }
    }
}

/// The objects isolation is decided from, read once per pass.
struct Snapshot {
    policies: Vec<Arc<Value>>,
    pods: Vec<Arc<Value>>,
    namespaces: Vec<Arc<Value>>,
}

impl Snapshot {
    fn take(ctx: &KubeletCtx) -> Snapshot {
        let mut pods = ctx.store.list("pods", None).0;
        pods.push(Arc::new(policy::dns_pod(GATEWAY)));
        Snapshot {
            policies: ctx.store.list("networkpolicies", None).0,
            pods,
            namespaces: ctx.store.list("namespaces", None).0,
        }
    }

    fn view(&self) -> World<'_> {
        World { policies: &self.policies, pods: &self.pods, namespaces: &self.namespaces }
    }
}

/// Runs `nft -f -` with `script` in the network namespace of `pid`.
async fn load(nft: &std::path::Path, pid: u32, script: &str) -> anyhow::Result<()> {
    super::netutil::run_in_netns(pid, nft, &["-f", "-"], script).await.context("loading the pod's NetworkPolicy rules")
}
