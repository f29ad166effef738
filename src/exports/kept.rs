//! What readers derive from one export and keep with it, by key: the tools keep their rendered
//! answer for given arguments here, so a warm call with the same arguments on the same data
//! does not build and serialize the same answer again.
//!
//! Kept values live and die with their export: a refresh or an eviction replaces the export,
//! and its kept values go with it, so nothing here can outlive or contradict the data it came
//! from. Each export keeps at most [`KEPT_ENTRIES`] values and [`KEPT_BYTES`] in all (the
//! export's weight in the cache counts that much on top of its content), the oldest dropped
//! first.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Most values one export keeps.
pub const KEPT_ENTRIES: usize = 16;
/// Most bytes (the values as the reader weighs them, and their keys) one export keeps; a value
/// heavier than this is not kept.
pub const KEPT_BYTES: usize = 64 * 1024;

/// A kept value, shared with whoever reads it.
pub type KeptValue = Arc<dyn Any + Send + Sync>;

/// The values kept with one export.
#[derive(Default)]
pub struct Kept(Mutex<Entries>);

#[derive(Default)]
struct Entries {
    /// Oldest first: (key, value, weight).
    items: VecDeque<(Box<str>, KeptValue, usize)>,
    bytes: usize,
}

impl Kept {
    /// The value kept under `key`, if any.
    pub fn get(&self, key: &str) -> Option<KeptValue> {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .items
            .iter()
            .find(|(k, _, _)| &**k == key)
            .map(|(_, v, _)| Arc::clone(v))
    }

    /// Keeps `value` under `key` (replacing what was kept there), dropping the oldest values
    /// while either bound is exceeded. A value weighs `bytes` and its key's length; one of more
    /// than [`KEPT_BYTES`] is not kept.
    pub fn put(&self, key: &str, value: KeptValue, bytes: usize) {
        let bytes = bytes + key.len();
        if bytes > KEPT_BYTES {
            return;
        }
        let mut entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = entries.items.iter().position(|(k, _, _)| &**k == key) {
            let (_, _, old) = entries.items.remove(i).expect("found above");
            entries.bytes -= old;
        }
        while entries.items.len() >= KEPT_ENTRIES || entries.bytes + bytes > KEPT_BYTES {
            let Some((_, _, old)) = entries.items.pop_front() else {
                break;
            };
            entries.bytes -= old;
        }
        entries.bytes += bytes;
        entries.items.push_back((key.into(), value, bytes));
    }

    /// How many values are kept, and their weight.
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (entries.items.len(), entries.bytes)
    }
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, bytes) = self.usage();
        write!(f, "Kept({n} values, {bytes} bytes)")
    }
}

/// An export whose readers may keep what they derive from it.
pub trait Keeps: Send + Sync {
    fn kept(&self) -> &Kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(n: u32) -> KeptValue {
        Arc::new(n)
    }

    fn read(k: &Kept, key: &str) -> Option<u32> {
        k.get(key).and_then(|v| v.downcast_ref::<u32>().copied())
    }

    #[test]
    fn keeps_by_key_and_replaces() {
        let k = Kept::default();
        assert_eq!(read(&k, "a"), None);
        k.put("a", value(1), 10);
        k.put("b", value(2), 10);
        k.put("a", value(3), 20);
        assert_eq!((read(&k, "a"), read(&k, "b")), (Some(3), Some(2)));
        assert_eq!(k.usage(), (2, 32), "the keys weigh too");
    }

    #[test]
    fn bounded_in_count_and_bytes_oldest_first() {
        let k = Kept::default();
        for i in 10..(KEPT_ENTRIES as u32 + 14) {
            k.put(&i.to_string(), value(i), 1);
        }
        assert_eq!(k.usage(), (KEPT_ENTRIES, 3 * KEPT_ENTRIES));
        assert_eq!(read(&k, "10"), None);
        let last = KEPT_ENTRIES as u32 + 13;
        assert_eq!(read(&k, &last.to_string()), Some(last));

        let k = Kept::default();
        k.put("old", value(1), KEPT_BYTES / 2 - 3);
        k.put("mid", value(2), KEPT_BYTES / 2 - 3);
        k.put("new", value(3), 1);
        assert_eq!(read(&k, "old"), None);
        assert_eq!((read(&k, "mid"), read(&k, "new")), (Some(2), Some(3)));
        assert!(k.usage().1 <= KEPT_BYTES);

        k.put("huge", value(4), KEPT_BYTES - 3);
        assert_eq!(read(&k, "huge"), None);
        assert_eq!(k.usage().0, 2);
    }
}
