//! The bounded queue between two pipeline stages: one sender, one receiver, a fixed number of slots.
//!
//! Not `std::sync::mpsc::sync_channel`: a thread that blocks on it for the first time allocates (its wait context,
//! a waker slot), and that can happen at any frame, inside the audit's steady-state window. This queue is a
//! `VecDeque` sized once, a mutex and two condition variables: blocking, waking and passing items allocate nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
}

impl<T> Shared<T> {
    /// The state, even if a panicking peer poisoned the lock (the queue's invariants hold between operations).
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sending end (one per queue).
pub struct Sender<T>(Arc<Shared<T>>);

/// The receiving end (one per queue).
pub struct Receiver<T>(Arc<Shared<T>>);

/// A queue of `capacity` (at least 1) slots.
pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let capacity = capacity.max(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(capacity),
            capacity,
            sender_gone: false,
            receiver_gone: false,
        }),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Waits for a free slot and queues `item`; gives it back if the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        let mut s = self.0.lock();
        while s.items.len() >= s.capacity && !s.receiver_gone {
            s = self.0.not_full.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        if s.receiver_gone {
            return Err(item);
        }
        s.items.push_back(item);
        drop(s);
        self.0.not_empty.notify_one();
        Ok(())
    }
}

impl<T> Receiver<T> {
    /// Waits for the next item; `None` once the sender is gone and the queue is empty.
    pub fn recv(&self) -> Option<T> {
        let mut s = self.0.lock();
        loop {
            if let Some(item) = s.items.pop_front() {
                drop(s);
                self.0.not_full.notify_one();
                return Some(item);
            }
            if s.sender_gone {
                return None;
            }
            s = self.0.not_empty.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.lock().sender_gone = true;
        self.0.not_empty.notify_all();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.receiver_gone = true;
        // Queued items are dropped here, on the receiver's side, as with std's channels.
        s.items.clear();
        drop(s);
        self.0.not_full.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn items_arrive_in_order_and_the_end_is_seen() {
        let (tx, rx) = bounded::<u32>(2);
        let t = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).expect("receiver alive");
            }
        });
        let got: Vec<u32> = std::iter::from_fn(|| rx.recv()).collect();
        t.join().expect("sender thread");
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_queue_blocks_the_sender_until_a_slot_frees() {
        let (tx, rx) = bounded::<u32>(1);
        tx.send(1).expect("first fits");
        let t = std::thread::spawn(move || tx.send(2).map_err(|_| ()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!t.is_finished(), "the second send waits for a slot");
        assert_eq!(rx.recv(), Some(1));
        assert_eq!(t.join().expect("sender thread"), Ok(()));
        assert_eq!(rx.recv(), Some(2));
        assert_eq!(rx.recv(), None, "sender gone, queue empty");
    }

    #[test]
    fn a_blocked_sender_gets_its_item_back_when_the_receiver_goes() {
        let (tx, rx) = bounded::<String>(1);
        tx.send("a".into()).expect("fits");
        let t = std::thread::spawn(move || tx.send("b".into()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(rx);
        assert_eq!(t.join().expect("sender thread"), Err("b".to_string()));
    }
}
