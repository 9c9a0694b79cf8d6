//! Bucketed buffer pools with RAII accounting against a byte budget.
//!
//! Every device buffer of the steady state comes from here: `acquire` hands out a [`Pooled`] buffer that goes
//! back to its bucket when dropped (also on error paths), so a pipeline allocates only while it warms up.
//! Eviction policy: free buffers stay cached until a new allocation would exceed the budget; then the least
//! recently returned free buffers are released first. The pool is generic over the allocator so its accounting
//! is tested on the CPU with host memory; the GPU uses CUDA device memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// An allocator's failure (out of device memory), in its own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AllocError(pub String);

/// Allocates raw buffers of a byte size. Dropping a buffer frees it.
pub trait Allocator: Send + Sync + 'static {
    /// The buffer type.
    type Buffer: Send + 'static;
    /// Allocates `bytes` bytes.
    fn alloc(&self, bytes: usize) -> Result<Self::Buffer, AllocError>;
}

/// Host memory, for tests and the CPU reference path.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostAllocator;

impl Allocator for HostAllocator {
    type Buffer = Vec<u8>;
    fn alloc(&self, bytes: usize) -> Result<Vec<u8>, AllocError> {
        Ok(vec![0u8; bytes])
    }
}

/// A pool could not serve a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The budget is exhausted by buffers in use.
    #[error("pool {pool:?} needs {need} more bytes but {in_use} of its {budget}-byte budget are in use")]
    OverBudget {
        /// The pool's name.
        pool: String,
        /// Bytes requested (bucket size).
        need: u64,
        /// Bytes held by live buffers.
        in_use: u64,
        /// The budget.
        budget: u64,
    },
    /// The allocator failed (out of device memory).
    #[error("pool {pool:?}: allocating {bytes} bytes failed: {message}")]
    Alloc {
        /// The pool's name.
        pool: String,
        /// Bytes requested.
        bytes: u64,
        /// The allocator's message.
        message: String,
    },
}

/// Counters of a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Requests served from a cached buffer.
    pub hits: u64,
    /// Requests that allocated.
    pub misses: u64,
    /// Buffers released to stay under budget.
    pub evictions: u64,
    /// Bytes in live buffers.
    pub in_use: u64,
    /// Bytes cached in free buffers.
    pub cached: u64,
    /// Highest `in_use + cached` seen.
    pub peak: u64,
}

impl PoolStats {
    /// Hits over requests (1.0 when there were none).
    pub fn hit_rate(&self) -> f64 {
        let n = self.hits + self.misses;
        if n == 0 {
            1.0
        } else {
            self.hits as f64 / n as f64
        }
    }
}

struct Inner<B> {
    /// The buckets that own buffers, by size.
    buckets: BTreeMap<u64, Bucket<B>>,
    tick: u64,
    stats: PoolStats,
}

/// One bucket: its free buffers, each with the tick it was returned at.
type Bucket<B> = Slots<(B, u64)>;

/// Free buffers, with room for every buffer there is: the room is raised when a buffer is made ([`Slots::made`]),
/// so putting one back never allocates host memory, however many come back at once (an audit's steady state
/// counts that). Shared by the pool's buckets and [`FreeList`].
struct Slots<T> {
    free: Vec<T>,
    /// Buffers made and not yet dropped for good: free or on loan.
    made: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots { free: Vec::new(), made: 0 }
    }
}

impl<T> Slots<T> {
    /// Counts a buffer just made and makes room for it.
    fn made(&mut self) {
        self.made += 1;
        let room = self.made.saturating_sub(self.free.len());
        self.free.reserve(room);
    }

    /// Removes free buffer `i` for good (evicted).
    fn evict(&mut self, i: usize) -> T {
        self.made -= 1;
        self.free.swap_remove(i)
    }

    /// Drops every free buffer for good; the ones on loan still have their room.
    fn clear(&mut self) {
        self.made -= self.free.len();
        self.free.clear();
    }
}

/// A pool of buffers rounded up to power-of-two buckets (at least 64 KiB).
pub struct Pool<A: Allocator> {
    name: String,
    budget: u64,
    alloc: A,
    inner: Arc<Mutex<Inner<A::Buffer>>>,
}

/// A buffer on loan from a [`Pool`]; it goes back when dropped.
pub struct Pooled<B: Send + 'static> {
    buf: Option<B>,
    bucket: u64,
    home: Arc<Mutex<Inner<B>>>,
}

impl<B: Send + 'static> Pooled<B> {
    /// The buffer.
    pub fn get(&self) -> &B {
        self.buf.as_ref().expect("present until drop")
    }
    /// The buffer, mutably.
    pub fn get_mut(&mut self) -> &mut B {
        self.buf.as_mut().expect("present until drop")
    }
    /// Usable size in bytes (the bucket size).
    pub fn capacity(&self) -> u64 {
        self.bucket
    }
}

impl<B: Send + 'static> Drop for Pooled<B> {
    fn drop(&mut self) {
        if let (Some(buf), Ok(mut inner)) = (self.buf.take(), self.home.lock()) {
            inner.tick += 1;
            let t = inner.tick;
            inner.stats.in_use -= self.bucket;
            inner.stats.cached += self.bucket;
            // The bucket exists and has room: both were made when this buffer was allocated.
            inner.buckets.entry(self.bucket).or_default().free.push((buf, t));
        }
    }
}

/// The bucket a request of `bytes` falls in.
pub fn bucket_for(bytes: u64) -> u64 {
    bytes.max(64 << 10).next_power_of_two()
}

impl<A: Allocator> Pool<A> {
    /// A pool named for reports, with a byte budget for live plus cached buffers.
    pub fn new(name: impl Into<String>, budget: u64, alloc: A) -> Self {
        Pool {
            name: name.into(),
            budget,
            alloc,
            inner: Arc::new(Mutex::new(Inner { buckets: BTreeMap::new(), tick: 0, stats: PoolStats::default() })),
        }
    }

    /// A buffer of at least `bytes` bytes: a cached one when its bucket has one, else a new one, evicting the
    /// least recently used cached buffers first when the budget requires.
    pub fn acquire(&self, bytes: u64) -> Result<Pooled<A::Buffer>, PoolError> {
        let bucket = bucket_for(bytes);
        let mut inner = self.inner.lock().map_err(|_| PoolError::Alloc {
            pool: self.name.clone(),
            bytes,
            message: "pool lock poisoned".into(),
        })?;
        if let Some((buf, _)) = inner.buckets.get_mut(&bucket).and_then(|b| b.free.pop()) {
            inner.stats.hits += 1;
            inner.stats.cached -= bucket;
            inner.stats.in_use += bucket;
            return Ok(Pooled { buf: Some(buf), bucket, home: self.inner.clone() });
        }
        if inner.stats.in_use + bucket > self.budget {
            return Err(PoolError::OverBudget {
                pool: self.name.clone(),
                need: bucket,
                in_use: inner.stats.in_use,
                budget: self.budget,
            });
        }
        while inner.stats.in_use + inner.stats.cached + bucket > self.budget {
            // Evict the least recently returned free buffer.
            let oldest = inner
                .buckets
                .iter()
                .flat_map(|(size, b)| b.free.iter().enumerate().map(move |(i, (_, t))| (*t, *size, i)))
                .min();
            let Some((_, size, i)) = oldest else { break };
            if let Some(b) = inner.buckets.get_mut(&size) {
                drop(b.evict(i));
                if b.made == 0 {
                    inner.buckets.remove(&size);
                }
            }
            inner.stats.cached -= size;
            inner.stats.evictions += 1;
        }
        let buf = self.alloc.alloc(bucket as usize).map_err(|message| PoolError::Alloc {
            pool: self.name.clone(),
            bytes: bucket,
            message: message.to_string(),
        })?;
        inner.buckets.entry(bucket).or_default().made();
        inner.stats.misses += 1;
        inner.stats.in_use += bucket;
        inner.stats.peak = inner.stats.peak.max(inner.stats.in_use + inner.stats.cached);
        Ok(Pooled { buf: Some(buf), bucket, home: self.inner.clone() })
    }

    /// Releases every cached buffer.
    pub fn trim(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            // Buckets with buffers still on loan stay, with room for them to come back.
            for b in inner.buckets.values_mut() {
                b.clear();
            }
            inner.buckets.retain(|_, b| b.made > 0);
            inner.stats.cached = 0;
        }
    }

    /// The counters.
    pub fn stats(&self) -> PoolStats {
        self.inner.lock().map(|i| i.stats).unwrap_or_default()
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Buffers of one shape handed back for reuse from any thread, as NVDEC's picture copies are: the owner takes one
/// back or makes a new one and says so ([`FreeList::made`]). Handing one back never allocates, however many come
/// back at once: the list's room is raised when a buffer is made, not when one comes back.
pub struct FreeList<T>(Arc<Mutex<Slots<T>>>);

impl<T> Clone for FreeList<T> {
    fn clone(&self) -> Self {
        FreeList(self.0.clone())
    }
}

impl<T> Default for FreeList<T> {
    fn default() -> Self {
        FreeList(Arc::new(Mutex::new(Slots::default())))
    }
}

impl<T> FreeList<T> {
    /// The list, even if a panicking holder poisoned the lock (it is consistent between operations).
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer handed back, if one is waiting.
    pub fn take(&self) -> Option<T> {
        self.lock().free.pop()
    }

    /// Counts a buffer just made, so that the list has room for every buffer there is.
    pub fn made(&self) {
        self.lock().made();
    }

    /// Hands a buffer back.
    pub fn give(&self, item: T) {
        self.lock().free.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_state_reuses_buffers() {
        let pool = Pool::new("frames", 64 << 20, HostAllocator);
        for _ in 0..100 {
            let a = pool.acquire(1 << 20).unwrap();
            let b = pool.acquire(3 << 20).unwrap();
            assert!(a.capacity() >= 1 << 20 && b.capacity() >= 3 << 20);
        }
        let s = pool.stats();
        assert_eq!(s.misses, 2, "only the first frame allocates");
        assert!(s.hit_rate() >= 0.99);
        assert_eq!(s.in_use, 0, "everything came back");
    }

    #[test]
    fn drop_on_error_path_returns_the_buffer() {
        let pool = Pool::new("p", 8 << 20, HostAllocator);
        let r: Result<(), ()> = (|| {
            let _buf = pool.acquire(4 << 20).map_err(|_| ())?;
            Err(())
        })();
        assert!(r.is_err());
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn over_budget_names_the_pool_and_sizes() {
        let pool = Pool::new("rgb_out", 8 << 20, HostAllocator);
        let _a = pool.acquire(4 << 20).unwrap();
        let _b = pool.acquire(4 << 20).unwrap();
        let e = pool.acquire(1 << 20).err().unwrap();
        assert_eq!(
            e.to_string(),
            "pool \"rgb_out\" needs 1048576 more bytes but 8388608 of its 8388608-byte budget are in use"
        );
    }

    #[test]
    fn trim_releases_the_cached_buffers_and_loaned_ones_still_come_back() {
        let pool = Pool::new("p", 64 << 20, HostAllocator);
        let a = pool.acquire(1 << 20).unwrap();
        drop(pool.acquire(1 << 20).unwrap());
        pool.trim();
        assert_eq!((pool.stats().cached, pool.stats().in_use), (0, 1 << 20));
        drop(a);
        assert_eq!((pool.stats().cached, pool.stats().in_use), (1 << 20, 0));
        let _b = pool.acquire(1 << 20).unwrap();
        assert_eq!((pool.stats().hits, pool.stats().misses), (1, 2), "the loaned buffer was reused");
    }

    #[test]
    fn least_recently_used_cached_buffers_are_evicted_first() {
        let pool = Pool::new("p", 8 << 20, HostAllocator);
        drop(pool.acquire(2 << 20).unwrap()); // cached first (oldest)
        drop(pool.acquire(4 << 20).unwrap()); // cached second
        assert_eq!(pool.stats().cached, 6 << 20);
        let _c = pool.acquire(4 << 20).unwrap(); // hit
        let _d = pool.acquire(4 << 20).unwrap(); // needs room: evicts the 2 MiB buffer
        let s = pool.stats();
        assert_eq!((s.hits, s.misses, s.evictions), (1, 3, 1));
        assert_eq!(s.cached, 0);
        assert!(s.peak <= 8 << 20);
    }
}
