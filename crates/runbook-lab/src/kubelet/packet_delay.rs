//! Latency on the lab: the packets a slow policy marks in a pod's network
//! namespace are queued to the lab by the pod's [`policy_nft::delay_rules`]
//! (NFQUEUE), held for the latency and let through in the order they came.
//! The kernel here has no `netem` queueing discipline (which is how `tc`
//! adds delay), so the lab holds the packets itself: one thread per slow pod,
//! its netlink socket opened inside the pod's namespace, where the queue is.
//!
//! [`policy_nft::delay_rules`]: crate::net::policy_nft::delay_rules

use std::collections::{HashMap, VecDeque};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nfq::{Message, Queue, Verdict};
use nix::sched::{CloneFlags, setns};

use crate::net::policy_nft::DELAY_QUEUE;

/// How often a holding thread looks for new packets and for packets whose
/// time is up: the delay's precision (the crate's socket gives no file
/// descriptor to wait on).
const TICK: Duration = Duration::from_millis(1);

/// How many packets a pod's queue holds before the kernel lets more through
/// undelayed (fail-open) rather than dropping them.
const QUEUE_LENGTH: u32 = 16_384;

/// The pods whose packets are being delayed, by uid.
#[derive(Default)]
pub struct PacketDelays {
    running: Mutex<HashMap<String, Holder>>,
}

/// One pod's holding thread: its sandbox, its delay, and the word to stop.
struct Holder {
    pid: u32,
    millis: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl PacketDelays {
    /// Delays the marked packets of the pod `uid` (sandbox `pid`) by
    /// `millis`, starting its holding thread if it has none; an error when
    /// the queue cannot be opened in the pod's namespace.
    pub fn set(&self, uid: &str, pid: u32, millis: u32) -> std::io::Result<()> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(holder) = running.get(uid).filter(|h| h.pid == pid && !h.stop.load(Ordering::SeqCst)) {
            holder.millis.store(millis, Ordering::SeqCst);
            return Ok(());
        }
        let holder = Holder { pid, millis: Arc::new(AtomicU32::new(millis)), stop: Arc::new(AtomicBool::new(false)) };
        let (ready, opened) = std::sync::mpsc::sync_channel(1);
        let (delay, stop) = (holder.millis.clone(), holder.stop.clone());
        std::thread::Builder::new().name(format!("delay-{pid}")).spawn(move || match open_in_netns(pid) {
            Ok(queue) => {
                let _ = ready.send(Ok(()));
                hold(queue, &delay, &stop);
            }
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                let _ = ready.send(Err(e));
            }
        })?;
        opened.recv().map_err(|_| std::io::Error::other("the delay thread died"))??;
        running.insert(uid.to_string(), holder);
        Ok(())
    }

    /// Stops delaying the pod `uid`'s packets: what is held goes on at once.
    pub fn clear(&self, uid: &str) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(uid);
    }

    /// Whether the pod `uid` has a holding thread that still runs.
    pub fn holds(&self, uid: &str) -> bool {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).get(uid).is_some_and(|h| !h.stop.load(Ordering::SeqCst))
    }

    /// Keeps only the pods `keep` says yes to (the others are gone).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).retain(|uid, _| keep(uid));
    }
}

/// Opens and binds the delay queue inside the network namespace of `pid`
/// (on the calling thread, which stays in that namespace).
fn open_in_netns(pid: u32) -> std::io::Result<Queue> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
    let mut queue = Queue::open()?;
    queue.bind(DELAY_QUEUE)?;
    // Only the packet's id is needed to let it go: no payload is copied.
    queue.set_copy_range(DELAY_QUEUE, 0)?;
    queue.set_fail_open(DELAY_QUEUE, true)?;
    queue.set_queue_max_len(DELAY_QUEUE, QUEUE_LENGTH)?;
    queue.set_nonblocking(true);
    Ok(queue)
}

/// Holds each queued packet for the current delay, until told to stop;
/// then lets every held packet go and unbinds.
fn hold(mut queue: Queue, millis: &AtomicU32, stop: &AtomicBool) {
    let mut held: VecDeque<(Instant, Message)> = VecDeque::new();
    let mut looked = Instant::now();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        // A packet read now came between the last look and this one: it is
        // counted from halfway, so the delay is off by half a tick at most.
        let now = Instant::now();
        let arrived = looked + (now - looked) / 2;
        looked = now;
        loop {
            match queue.recv() {
                Ok(packet) => {
                    let due = arrived + Duration::from_millis(u64::from(millis.load(Ordering::SeqCst)));
                    held.push_back((due, packet));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // The answer to a verdict on a packet the kernel no longer
                // holds: reloading any netfilter rules in the namespace
                // drops every queued packet (TCP sends them again).
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| stopping || *due <= now) {
            let (_, mut packet) = held.pop_front().expect("front checked");
            packet.set_verdict(Verdict::Accept);
            let _ = queue.verdict(packet);
        }
        if stopping {
            let _ = queue.unbind(DELAY_QUEUE);
            return;
        }
        let next = held.front().map_or(TICK, |(due, _)| due.saturating_duration_since(now));
        std::thread::sleep(next.min(TICK));
    }
}
