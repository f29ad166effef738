//! Each organisation's Clari export concurrency limit, read from `/admin/limits` and trusted for a
//! minute.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::OrgId;

/// How long `/admin/limits` is trusted (seconds).
pub const LIMITS_TTL: i64 = 60;

/// Organisation → (read at, concurrent limit).
#[derive(Default)]
pub struct LimitCache(Mutex<HashMap<OrgId, (i64, u32)>>);

impl LimitCache {
    pub fn get(&self, org: &OrgId, now: i64) -> Option<u32> {
        let map = self.0.lock().expect("limits lock");
        map.get(org)
            .filter(|(at, _)| now - at < LIMITS_TTL)
            .map(|(_, l)| *l)
    }

    pub fn put(&self, org: &OrgId, now: i64, limit: u32) {
        let mut map = self.0.lock().expect("limits lock");
        if map.len() > 10_000 {
            map.retain(|_, (at, _)| now - *at < LIMITS_TTL);
        }
        map.insert(org.clone(), (now, limit));
    }

    pub fn forget(&self, org: &OrgId) {
        self.0.lock().expect("limits lock").remove(org);
    }
}
