//! The fair queue in front of the hashing threads: a bounded number of callers admitted,
//! slots shared round-robin between client addresses, the newest waiter of the longest queue
//! shed first, and a Retry-After from the recent hash time.

use super::*;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Longest Retry-After suggested, whatever the estimate.
const MAX_RETRY_AFTER_SECONDS: u64 = 60;

/// A queued caller's handle; closed once the caller has gone away.
trait Ticket {
    fn is_closed(&self) -> bool;
}

impl<T> Ticket for oneshot::Sender<T> {
    fn is_closed(&self) -> bool {
        oneshot::Sender::is_closed(self)
    }
}

/// What became of a request for a hashing slot.
#[derive(Debug)]
enum Admission<T> {
    /// A slot was free and is now taken.
    Run,
    /// Waits for a slot; `displaced`, if any, lost its queue place to it and is to be told
    /// Busy.
    Queued { seq: u64, displaced: Option<T> },
    /// Refused at once.
    Busy { retry_after_seconds: u64 },
}

/// Who runs next: the decisions of admission without locking, channels or clocks, so they
/// are tested as plain data. Waiters queue per address; slots go round-robin across
/// addresses (deficit round robin with unit cost).
#[derive(Debug)]
struct Scheduler<T> {
    max_running: usize,
    max_queue: usize,
    running: usize,
    /// Waiters in all queues.
    queued: usize,
    queues: HashMap<Option<IpAddr>, VecDeque<(u64, T)>>,
    /// The addresses that have waiters, in the order they are served.
    rotation: VecDeque<Option<IpAddr>>,
    next_seq: u64,
    /// Moving average of one hash's duration, in microseconds, for Retry-After.
    hash_micros: u64,
}

impl<T: Ticket> Scheduler<T> {
    fn new(max_running: usize, max_queue: usize) -> Scheduler<T> {
        Scheduler {
            max_running: max_running.max(1),
            max_queue,
            running: 0,
            queued: 0,
            queues: HashMap::new(),
            rotation: VecDeque::new(),
            next_seq: 0,
            hash_micros: 0,
        }
    }

    fn waiting(&self, from: &Option<IpAddr>) -> usize {
        self.queues.get(from).map_or(0, VecDeque::len)
    }

    /// Takes a slot, or a queue place (displacing the newest waiter of the longest queue
    /// when the queue is full and that queue would still be longer than `from`'s), or
    /// refuses.
    fn admit(&mut self, from: Option<IpAddr>, ticket: T) -> Admission<T> {
        // Slots are handed to waiters as soon as they free up, so a free slot means nobody
        // (alive) is waiting.
        if self.running < self.max_running {
            self.running += 1;
            return Admission::Run;
        }
        let mut displaced = None;
        if self.queued >= self.max_queue {
            self.purge_closed();
        }
        if self.queued >= self.max_queue {
            let mine = self.waiting(&from);
            let mut longest: Option<(Option<IpAddr>, usize)> = None;
            for addr in &self.rotation {
                let n = self.waiting(addr);
                // Ties go to the address served last, so the waiters closest to a slot
                // keep their places (a flood of one-waiter addresses sheds its newest).
                if longest.is_none_or(|(_, most)| n >= most) {
                    longest = Some((*addr, n));
                }
            }
            // Only a queue that would still be longer than the newcomer's gives up a place:
            // a waiter alone for its address is never displaced, so once an address holds a
            // place a flood from elsewhere cannot take it (with at most max_queue addresses
            // waiting, every one of them gets one).
            match longest {
                Some((addr, most)) if mine + 1 < most => {
                    displaced = self.take_newest(addr);
                }
                _ => {
                    return Admission::Busy {
                        retry_after_seconds: self.retry_after(),
                    }
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let queue = self.queues.entry(from).or_default();
        if queue.is_empty() {
            self.rotation.push_back(from);
        }
        queue.push_back((seq, ticket));
        self.queued += 1;
        Admission::Queued { seq, displaced }
    }

    fn take_newest(&mut self, addr: Option<IpAddr>) -> Option<T> {
        let queue = self.queues.get_mut(&addr)?;
        let (_, ticket) = queue.pop_back()?;
        self.queued = self.queued.saturating_sub(1);
        if queue.is_empty() {
            self.forget(addr);
        }
        Some(ticket)
    }

    fn forget(&mut self, addr: Option<IpAddr>) {
        self.queues.remove(&addr);
        self.rotation.retain(|a| *a != addr);
    }

    /// Drops waiters whose caller went away; O(queue), and only needed when it is full.
    fn purge_closed(&mut self) {
        let mut emptied = Vec::new();
        for (addr, queue) in &mut self.queues {
            let before = queue.len();
            queue.retain(|(_, t)| !t.is_closed());
            self.queued = self.queued.saturating_sub(before - queue.len());
            if queue.is_empty() {
                emptied.push(*addr);
            }
        }
        for addr in emptied {
            self.forget(addr);
        }
    }

    /// The next live waiter in round-robin order across addresses.
    fn next_waiter(&mut self) -> Option<T> {
        loop {
            let addr = self.rotation.pop_front()?;
            let Some(queue) = self.queues.get_mut(&addr) else {
                continue;
            };
            let mut picked = None;
            while let Some((_, ticket)) = queue.pop_front() {
                self.queued = self.queued.saturating_sub(1);
                if !ticket.is_closed() {
                    picked = Some(ticket);
                    break;
                }
            }
            if queue.is_empty() {
                self.queues.remove(&addr);
            } else {
                self.rotation.push_back(addr);
            }
            if picked.is_some() {
                return picked;
            }
        }
    }

    /// A running hash ended: its slot, and any other free one, goes to the next waiters.
    /// Returns the waiters now holding a slot, to be told so.
    fn finish(&mut self) -> Vec<T> {
        self.running = self.running.saturating_sub(1);
        let mut granted = Vec::new();
        while self.running < self.max_running {
            let Some(ticket) = self.next_waiter() else {
                break;
            };
            self.running += 1;
            granted.push(ticket);
        }
        granted
    }

    /// The caller of waiter `seq` went away: it gives up its queue place.
    fn cancel(&mut self, from: Option<IpAddr>, seq: u64) {
        let Some(queue) = self.queues.get_mut(&from) else {
            return;
        };
        if let Some(at) = queue.iter().position(|(s, _)| *s == seq) {
            queue.remove(at);
            self.queued = self.queued.saturating_sub(1);
            if queue.is_empty() {
                self.forget(from);
            }
        }
    }

    /// Feeds one hash's duration into the moving average (weight 1/8).
    fn record(&mut self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.hash_micros = if self.hash_micros == 0 {
            sample
        } else {
            self.hash_micros - self.hash_micros / 8 + sample / 8
        };
    }

    /// Seconds until the work now queued and running has likely been done: at least 1.
    fn retry_after(&self) -> u64 {
        let waves = (self.queued + self.running).div_ceil(self.max_running);
        u64::try_from(waves)
            .unwrap_or(u64::MAX)
            .saturating_mul(self.hash_micros)
            .div_ceil(1_000_000)
            .clamp(1, MAX_RETRY_AFTER_SECONDS)
    }
}

/// The fair-share bucket of a client address: IPv6 by /64, since one host or household
/// gets a whole /64 and could otherwise claim a share per address.
fn share_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// What a queued caller is told: a slot (as a permit) or Busy.
type Grant = Result<Permit, HashError>;

/// The shared admission state of all clones of a `Hasher`.
pub(super) struct Gate {
    scheduler: Mutex<Scheduler<oneshot::Sender<Grant>>>,
    shed_total: AtomicU64,
}

/// Password hashing load, for /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashStats {
    pub running: usize,
    pub queued: usize,
    /// Work refused (503) because the queue was full, since start.
    pub shed_total: u64,
}

impl Gate {
    /// At most `running` hashes at once and `queue` callers waiting.
    pub(super) fn new(running: usize, queue: usize) -> Gate {
        Gate {
            scheduler: Mutex::new(Scheduler::new(running, queue)),
            shed_total: AtomicU64::new(0),
        }
    }

    /// The scheduler's counts stay consistent whatever a panicking holder did, so a
    /// poisoned lock is used as is.
    /// Hashes running and waiting now, and work refused since start.
    pub(super) fn stats(&self) -> HashStats {
        let s = self.lock();
        HashStats {
            running: s.running,
            queued: s.queued,
            shed_total: self.shed_total.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Scheduler<oneshot::Sender<Grant>>> {
        self.scheduler
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn shed(&self, retry_after_seconds: u64) -> HashError {
        self.shed_total.fetch_add(1, Ordering::Relaxed);
        HashError::Busy {
            retry_after_seconds,
        }
    }

    /// Waits for a hashing slot, or is refused with Busy.
    pub(super) async fn slot(self: &Arc<Gate>, from: Option<IpAddr>) -> Result<Permit, HashError> {
        let from = from.map(share_of);
        let (tx, rx) = oneshot::channel();
        let (admission, retry_after_seconds) = {
            let mut s = self.lock();
            let a = s.admit(from, tx);
            (a, s.retry_after())
        };
        let seq = match admission {
            Admission::Run => return Ok(Permit::new(self)),
            Admission::Busy {
                retry_after_seconds,
            } => return Err(self.shed(retry_after_seconds)),
            Admission::Queued { seq, displaced } => {
                if let Some(d) = displaced {
                    // Gone already if its caller left; then there is nobody to tell.
                    let _ = d.send(Err(self.shed(retry_after_seconds)));
                }
                seq
            }
        };
        let mut place = QueuePlace {
            gate: self.as_ref(),
            from,
            seq,
            held: true,
        };
        let granted = rx.await;
        place.held = false;
        granted.unwrap_or_else(|_| Err(HashError::Failed("the hashing queue was closed".into())))
    }

    /// Frees a slot and hands it on. A waiter that left between being picked and being told
    /// does not keep the slot: it goes to the next one.
    fn release(self: &Arc<Gate>) {
        let mut granted = self.lock().finish();
        while !granted.is_empty() {
            let mut lost = 0;
            for tx in granted.drain(..) {
                if let Err(grant) = tx.send(Ok(Permit::new(self))) {
                    if let Ok(mut permit) = grant {
                        permit.armed = false;
                    }
                    lost += 1;
                }
            }
            let mut s = self.lock();
            for _ in 0..lost {
                granted.extend(s.finish());
            }
        }
    }
}

/// A running slot; dropping it (also when the hash panics) frees the slot.
pub(super) struct Permit {
    gate: Arc<Gate>,
    /// False for a permit that was never delivered (its slot is handed on directly).
    armed: bool,
}

impl Permit {
    fn new(gate: &Arc<Gate>) -> Permit {
        Permit {
            gate: Arc::clone(gate),
            armed: true,
        }
    }

    /// Records how long the hash took (for Retry-After) and gives the slot back.
    pub(super) fn done(self, took: Duration) {
        self.gate.lock().record(took);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.armed {
            self.gate.release();
        }
    }
}

/// A queue place; dropped while still held (the caller went away), it is given up.
pub(super) struct QueuePlace<'a> {
    gate: &'a Gate,
    from: Option<IpAddr>,
    seq: u64,
    held: bool,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        if self.held {
            self.gate.lock().cancel(self.from, self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter in scheduler tests: an id, and a flag for "its caller went away".
    #[derive(Debug, Clone)]
    struct Fake(usize, Arc<std::sync::atomic::AtomicBool>);

    impl Fake {
        fn new(id: usize) -> Fake {
            Fake(id, Arc::default())
        }
        fn leave(&self) {
            self.1.store(true, Ordering::Relaxed);
        }
    }

    impl Ticket for Fake {
        fn is_closed(&self) -> bool {
            self.1.load(Ordering::Relaxed)
        }
    }

    fn addr(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    fn ids(granted: Vec<Fake>) -> Vec<usize> {
        granted.into_iter().map(|f| f.0).collect()
    }

    #[test]
    fn a_lone_address_is_served_within_one_round_of_a_flood() {
        let max_running = 2;
        let mut s = Scheduler::new(max_running, 100);
        let (a, b) = (addr(1), addr(2));
        for i in 0..max_running {
            assert!(matches!(s.admit(a, Fake::new(i)), Admission::Run));
        }
        for i in 100..150 {
            assert!(matches!(s.admit(a, Fake::new(i)), Admission::Queued { .. }));
        }
        assert!(matches!(
            s.admit(b, Fake::new(999)),
            Admission::Queued { .. }
        ));
        let mut served = Vec::new();
        for _ in 0..max_running {
            served.extend(ids(s.finish()));
        }
        assert!(served.contains(&999), "{served:?}");
        assert_eq!(served, vec![100, 999]);
        // Then A again, in its own order.
        assert_eq!(ids(s.finish()), vec![101]);
        assert_eq!((s.running, s.queued), (2, 48));
    }

    #[test]
    fn slots_alternate_between_addresses() {
        let mut s = Scheduler::new(1, 100);
        assert!(matches!(s.admit(None, Fake::new(0)), Admission::Run));
        for i in 0..3 {
            let _ = s.admit(addr(1), Fake::new(10 + i));
            let _ = s.admit(addr(2), Fake::new(20 + i));
            let _ = s.admit(None, Fake::new(30 + i));
        }
        let order: Vec<usize> = (0..9).flat_map(|_| ids(s.finish())).collect();
        assert_eq!(order, vec![10, 20, 30, 11, 21, 31, 12, 22, 32]);
        assert!(s.finish().is_empty());
        assert_eq!((s.running, s.queued), (0, 0));
        assert!(s.queues.is_empty() && s.rotation.is_empty());
    }

    #[test]
    fn at_most_max_running_plus_max_queue_are_admitted() {
        let mut s = Scheduler::new(2, 8);
        let (mut run, mut queued, mut busy) = (0, 0, 0);
        for i in 0..30 {
            match s.admit(addr(1), Fake::new(i)) {
                Admission::Run => run += 1,
                Admission::Queued { displaced, .. } => {
                    assert!(displaced.is_none());
                    queued += 1
                }
                Admission::Busy {
                    retry_after_seconds,
                } => {
                    assert!(retry_after_seconds >= 1);
                    busy += 1
                }
            }
        }
        assert_eq!((run, queued, busy), (2, 8, 20));
        assert_eq!((s.running, s.queued), (2, 8));
    }

    #[test]
    fn a_newcomer_displaces_the_newest_waiter_of_the_longest_queue() {
        let mut s = Scheduler::new(1, 4);
        let (a, b, c) = (addr(1), addr(2), addr(3));
        assert!(matches!(s.admit(a, Fake::new(0)), Admission::Run));
        for i in 1..=4 {
            assert!(matches!(
                s.admit(a, Fake::new(i)),
                Admission::Queued {
                    displaced: None,
                    ..
                }
            ));
        }
        let displaced = |adm: Admission<Fake>| match adm {
            Admission::Queued { displaced, .. } => displaced.map(|f| f.0),
            other => panic!("{other:?}"),
        };
        assert_eq!(displaced(s.admit(b, Fake::new(50))), Some(4));
        assert_eq!(displaced(s.admit(b, Fake::new(51))), Some(3));
        // B has as many waiters as A now: B's newcomer is refused itself.
        assert!(matches!(s.admit(b, Fake::new(52)), Admission::Busy { .. }));
        assert!(matches!(s.admit(a, Fake::new(5)), Admission::Busy { .. }));
        // C has none: it displaces the newest of the longest; of A and B (2 each), B is
        // served later, so B loses its newest.
        assert_eq!(displaced(s.admit(c, Fake::new(70))), Some(51));
        assert_eq!(s.queued, 4);
        let order: Vec<usize> = (0..4).flat_map(|_| ids(s.finish())).collect();
        assert_eq!(order, vec![1, 50, 70, 2]);
    }

    #[test]
    fn waiters_that_left_give_up_their_place_and_slot() {
        let mut s = Scheduler::new(1, 3);
        let a = addr(1);
        assert!(matches!(s.admit(a, Fake::new(0)), Admission::Run));
        let waiters: Vec<Fake> = (1..=3).map(Fake::new).collect();
        let mut seqs = Vec::new();
        for w in &waiters {
            match s.admit(a, w.clone()) {
                Admission::Queued { seq, .. } => seqs.push(seq),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(s.admit(a, Fake::new(4)), Admission::Busy { .. }));
        // Cancelled explicitly (the waiting future was dropped): the place is free.
        s.cancel(a, seqs[0]);
        assert_eq!(s.queued, 2);
        assert!(matches!(s.admit(a, Fake::new(5)), Admission::Queued { .. }));
        // Gone without cancelling: purged when the queue is full.
        waiters[1].leave();
        assert!(matches!(s.admit(a, Fake::new(6)), Admission::Queued { .. }));
        assert_eq!(s.queued, 3);
        // Gone: skipped when a slot frees up, which goes to the next live waiter.
        waiters[2].leave();
        assert_eq!(ids(s.finish()), vec![5]);
        assert_eq!(ids(s.finish()), vec![6]);
        assert!(s.finish().is_empty());
        assert_eq!((s.running, s.queued), (0, 0));
        s.cancel(a, 12345);
    }

    #[test]
    fn ipv6_clients_share_by_64_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(share_of(a), share_of(b));
        assert_eq!(share_of(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(share_of(a), share_of(other));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(share_of(v4), v4);
        assert_eq!(share_of("::ffff:192.0.2.7".parse().unwrap()), v4);
    }

    #[test]
    fn retry_after_follows_the_recent_hash_time() {
        let mut s: Scheduler<Fake> = Scheduler::new(2, 100);
        assert_eq!(s.retry_after(), 1, "no estimate yet");
        for i in 0..2 {
            let _ = s.admit(None, Fake::new(i));
        }
        for i in 0..10 {
            let _ = s.admit(None, Fake::new(10 + i));
        }
        s.record(Duration::from_millis(500));
        // 12 hashes in waves of 2, 0.5 s each.
        assert_eq!(s.retry_after(), 3);
        s.record(Duration::from_secs(100));
        assert_eq!(s.retry_after(), MAX_RETRY_AFTER_SECONDS);
    }
}
