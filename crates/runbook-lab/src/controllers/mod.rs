//! Controllers that run inside the lab, writing through the same object
//! operations as the HTTP API.

pub mod deployment;
pub mod endpoints;
pub mod endpointslices;
pub mod gc;
pub mod hpa;
pub mod hpa_math;
pub mod namespaces;
pub mod node_lifecycle;
pub mod replicaset;
pub mod statefulset;
pub mod volumes;

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::api::store::{Change, Store};

/// Starts the built-in controllers; they stop when `shutdown` is cancelled.
/// (The HPA controller needs the metrics source: see [`hpa::spawn`].)
pub fn start(store: Arc<Store>, shutdown: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        spawn_on_changes(store.clone(), shutdown.clone(), gc::on_change),
        spawn_on_changes(store.clone(), shutdown.clone(), namespaces::on_change),
        spawn_reconciler(store.clone(), shutdown.clone(), &["replicasets", "pods"], replicaset::reconcile_all),
        spawn_reconciler(store.clone(), shutdown.clone(), &["deployments", "replicasets"], deployment::reconcile_all),
        spawn_reconciler(
            store.clone(),
            shutdown.clone(),
            &["statefulsets", "pods", "persistentvolumeclaims"],
            statefulset::reconcile_all,
        ),
        spawn_reconciler(
            store.clone(),
            shutdown.clone(),
            &["persistentvolumes", "persistentvolumeclaims", "storageclasses", "pods"],
            volumes::reconcile_all,
        ),
        spawn_reconciler(
            store,
            shutdown,
            &["services", "pods", "endpoints", "endpointslices"],
            endpoints::reconcile_all,
        ),
    ]
}

/// Runs `reconcile` whenever one of `resources` changes (coalescing bursts),
/// and once a second for time-based conditions such as minReadySeconds.
fn spawn_reconciler(
    store: Arc<Store>,
    shutdown: CancellationToken,
    resources: &'static [&'static str],
    reconcile: fn(&Store),
) -> tokio::task::JoinHandle<()> {
    let (_, mut rx) = store.subscribe(store.current_rv()).expect("subscribing at the current version cannot fail");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                change = rx.recv() => match change {
                    Ok(c) if !resources.contains(&c.resource) => continue,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
            // Coalesce what queued up meanwhile: one pass sees it all.
            while let Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) = rx.try_recv() {}
            reconcile(&store);
        }
    })
}

/// Runs `handle` for every change in the store until shutdown. A controller that
/// falls behind resyncs by handling nothing for the missed changes: each
/// handler here is level-triggered enough to catch up on the next change.
fn spawn_on_changes(
    store: Arc<Store>,
    shutdown: CancellationToken,
    handle: fn(&Arc<Store>, &Change),
) -> tokio::task::JoinHandle<()> {
    let (_, mut rx) = store.subscribe(store.current_rv()).expect("subscribing at the current version cannot fail");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                change = rx.recv() => match change {
                    Ok(change) => handle(&store, &change),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    })
}
