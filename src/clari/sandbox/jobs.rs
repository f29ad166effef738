//! The sandbox's export job engine. A job's status follows from its age: SCHEDULED for the first
//! quarter of its latency, STARTED until done, then DONE (or FAILED); cancellation freezes it as
//! CANCELLED (before it started) or ABORTED (while running). Running and queued jobs occupy the
//! concurrency limit; jobs submitted in the last 30 days (less cancelled ones) count against the
//! monthly quota.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::clari::types::JobStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    Forecast,
    Audit,
    Activity,
}

impl Module {
    pub fn as_str(self) -> &'static str {
        match self {
            Module::Forecast => "FORECAST",
            Module::Audit => "AUDIT",
            Module::Activity => "ACTIVITY",
        }
    }
    pub fn title(self) -> &'static str {
        match self {
            Module::Forecast => "Forecast Export",
            Module::Audit => "Audit Events Export",
            Module::Activity => "Activity Export",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: String,
    pub org: usize,
    pub user_id: i64,
    pub module: Module,
    pub file_name: String,
    pub file_type: &'static str,
    pub currency: Option<String>,
    pub created: Instant,
    pub created_ms: i64,
    pub latency: Duration,
    pub fails: bool,
    pub frozen: Option<JobStatus>,
    pub frozen_ms: Option<i64>,
    pub downloads: i64,
    pub result: Bytes,
}

impl JobRecord {
    pub fn status(&self, now: Instant) -> JobStatus {
        if let Some(s) = &self.frozen {
            return s.clone();
        }
        let age = now.saturating_duration_since(self.created);
        if age < self.latency / 4 {
            JobStatus::Scheduled
        } else if age < self.latency {
            JobStatus::Started
        } else if self.fails {
            JobStatus::Failed
        } else {
            JobStatus::Done
        }
    }

    pub fn end_ms(&self, now: Instant) -> Option<i64> {
        if let Some(t) = self.frozen_ms {
            return Some(t);
        }
        self.status(now)
            .is_terminal()
            .then(|| self.created_ms + self.latency.as_millis() as i64)
    }

    pub fn to_json(&self, now: Instant, org_id: i64) -> serde_json::Value {
        let status = self.status(now);
        let end = self.end_ms(now);
        let started = (status != JobStatus::Scheduled && status != JobStatus::Cancelled)
            .then(|| self.created_ms + (self.latency.as_millis() / 4) as i64);
        serde_json::json!({
            "jobId": self.id,
            "userId": self.user_id,
            "orgId": org_id,
            "title": self.module.title(),
            "module": self.module.as_str(),
            "startTime": started.unwrap_or(self.created_ms),
            "endTime": end,
            "expiredTime": end.map(|e| e + 2_592_000_000),
            "version": 1,
            "fileName": self.file_name,
            "fileType": self.file_type,
            "status": status.as_str(),
            "viewed": self.downloads > 0,
            "cellsTruncated": false,
            "rowsTruncated": false,
            "downloads": self.downloads,
            "deliveryStatusMap": {},
            "currency": self.currency,
        })
    }
}

#[derive(Debug, Default)]
pub struct JobEngine {
    jobs: Mutex<Vec<JobRecord>>,
    counter: std::sync::atomic::AtomicU64,
    /// The most jobs ever running at once in any one organisation.
    peak_running: std::sync::atomic::AtomicUsize,
}

/// Why a job could not be created.
pub enum Refusal {
    Limit,
}

pub struct Usage {
    pub running: Vec<String>,
    pub submitted: Vec<String>,
}

const MONTH_MS: i64 = 30 * 86_400_000;

impl JobEngine {
    pub fn count(&self) -> usize {
        self.jobs.lock().unwrap().len()
    }

    /// Jobs cancelled or aborted by a client.
    pub fn cancelled(&self) -> usize {
        self.jobs
            .lock()
            .unwrap()
            .iter()
            .filter(|j| matches!(j.frozen, Some(JobStatus::Cancelled | JobStatus::Aborted)))
            .count()
    }

    pub fn peak_running(&self) -> usize {
        self.peak_running.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn usage(&self, org: usize, now: Instant, now_ms: i64) -> Usage {
        let jobs = self.jobs.lock().unwrap();
        let mine = jobs.iter().filter(|j| j.org == org);
        let running = mine
            .clone()
            .filter(|j| !j.status(now).is_terminal())
            .map(|j| j.id.clone())
            .collect();
        let submitted = mine
            .filter(|j| j.created_ms > now_ms - MONTH_MS)
            .filter(|j| !matches!(j.frozen, Some(JobStatus::Cancelled | JobStatus::Aborted)))
            .map(|j| j.id.clone())
            .collect();
        Usage { running, submitted }
    }

    /// Creates a job when the organisation's limits allow it.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        org: usize,
        user_id: i64,
        module: Module,
        file_name: String,
        file_type: &'static str,
        currency: Option<String>,
        latency: Duration,
        fails: bool,
        result: Bytes,
        limits: (u32, u32),
        now: Instant,
        now_ms: i64,
    ) -> Result<String, Refusal> {
        let usage = self.usage(org, now, now_ms);
        let (concurrent, monthly) = limits;
        if usage.running.len() >= concurrent as usize || usage.submitted.len() >= monthly as usize {
            return Err(Refusal::Limit);
        }
        self.peak_running
            .fetch_max(usage.running.len() + 1, std::sync::atomic::Ordering::SeqCst);
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // 24 hex characters, like Clari's ObjectId-style job ids.
        let id = format!(
            "{:08x}{:016x}",
            (now_ms / 1000) as u32,
            0xa11c_e000_0000_0000u64 | n
        );
        self.jobs.lock().unwrap().push(JobRecord {
            id: id.clone(),
            org,
            user_id,
            module,
            file_name,
            file_type,
            currency,
            created: now,
            created_ms: now_ms,
            latency,
            fails,
            frozen: None,
            frozen_ms: None,
            downloads: 0,
            result,
        });
        Ok(id)
    }

    /// The job if it belongs to this organisation and user.
    pub fn get(&self, org: usize, user_id: i64, id: &str) -> Option<JobRecord> {
        self.jobs
            .lock()
            .unwrap()
            .iter()
            .find(|j| j.id == id && j.org == org && j.user_id == user_id)
            .cloned()
    }

    pub fn list(&self, org: usize, user_id: i64) -> Vec<JobRecord> {
        self.jobs
            .lock()
            .unwrap()
            .iter()
            .filter(|j| j.org == org && j.user_id == user_id)
            .cloned()
            .collect()
    }

    /// Cancels: SCHEDULED → CANCELLED, STARTED → ABORTED; `Err(status)` when already terminal.
    pub fn cancel(
        &self,
        org: usize,
        user_id: i64,
        id: &str,
        now: Instant,
        now_ms: i64,
    ) -> Option<Result<JobStatus, JobStatus>> {
        let mut jobs = self.jobs.lock().unwrap();
        let job = jobs
            .iter_mut()
            .find(|j| j.id == id && j.org == org && j.user_id == user_id)?;
        let status = job.status(now);
        let next = match status {
            JobStatus::Scheduled => JobStatus::Cancelled,
            s if s.is_terminal() => return Some(Err(s)),
            _ => JobStatus::Aborted,
        };
        job.frozen = Some(next.clone());
        job.frozen_ms = Some(now_ms);
        Some(Ok(next))
    }

    /// Downloads a DONE job's results (counting the download); `Err(status)` otherwise.
    pub fn download(
        &self,
        org: usize,
        user_id: i64,
        id: &str,
        now: Instant,
    ) -> Option<Result<Bytes, JobStatus>> {
        let mut jobs = self.jobs.lock().unwrap();
        let job = jobs
            .iter_mut()
            .find(|j| j.id == id && j.org == org && j.user_id == user_id)?;
        match job.status(now) {
            JobStatus::Done => {
                job.downloads += 1;
                Some(Ok(job.result.clone()))
            }
            s => Some(Err(s)),
        }
    }
}
