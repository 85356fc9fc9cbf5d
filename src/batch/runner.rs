//! Running a shard's jobs: N at once on one shared pipeline, each guarded by the budget,
//! retried when the failure is transient, stopped early by the circuit breaker when the
//! failures are fatal, and recorded in the journal only after its files are in place.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::BatchError;
use super::budget::{Budget, BudgetGuard};
use super::journal::{Finished, JobState, Journal};
use super::ledger::Ledger;
use super::manifest::{Job, hex};
use super::output::JobOutputs;
use crate::error::PipelineError;
use crate::failure::ErrorClass;
use crate::guard::{Halt, HaltKind, RunGuard, StopReason};
use crate::pipeline::{Pipeline, Request, RunOptions};
use crate::report::Report;

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The output folder (the journal lives there too).
    pub out: PathBuf,
    /// Jobs at once.
    pub concurrency: usize,
    /// A job's own time limit, checked before each of its paid calls: a job past it stops
    /// there (keeping its best image, or failing with class `timeout` when it has none).
    pub job_timeout: Option<Duration>,
    /// How long past `job_timeout` a call already in flight may take before the job is
    /// abandoned anyway (failed, class `timeout`; the abandoned call may still be billed).
    /// A backstop for a server that hangs longer than the HTTP client's own timeouts.
    pub job_grace: Duration,
    /// Runs of a job whose failure is transient (rate limited, unavailable), first included.
    pub max_attempts: u32,
    /// Wait before the first retry (doubled each time).
    pub backoff: Duration,
    /// Consecutive fatal failures (authentication, quota) that stop the batch.
    pub breaker_threshold: u32,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            out: PathBuf::from("batch-out"),
            concurrency: 4,
            job_timeout: None,
            job_grace: Duration::from_secs(120),
            max_attempts: 3,
            backoff: Duration::from_secs(2),
            breaker_threshold: 3,
        }
    }
}

/// Progress of a batch, for a progress bar or log lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BatchEvent {
    /// A job started.
    JobStarted {
        /// The job.
        id: String,
    },
    /// A job finished (done, failed, skipped, or left pending).
    JobFinished {
        /// The job.
        id: String,
        /// Its state now.
        state: JobState,
        /// Its failure's class.
        class: Option<ErrorClass>,
        /// Why it stopped, in words.
        message: String,
        /// Wall time in milliseconds.
        ms: u64,
        /// Its estimated cost in US dollars.
        cost_usd: f64,
        /// The batch's estimated spend so far.
        total_cost_usd: f64,
    },
}

/// Why a batch stopped before running every job.
#[derive(Debug, Clone, PartialEq)]
pub enum StopCause {
    /// A budget or deadline.
    Halted(Halt),
    /// The circuit breaker: consecutive fatal failures.
    CircuitBreaker {
        /// Their class.
        class: ErrorClass,
        /// The last failure.
        message: String,
    },
    /// Asked to stop (a signal).
    Interrupted,
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    /// Jobs done in this run.
    pub done: usize,
    /// Jobs failed in this run.
    pub failed: usize,
    /// Jobs skipped in this run.
    pub skipped: usize,
    /// Jobs left pending (not started, or stopped before their first image).
    pub pending: usize,
    /// Why the batch stopped early, if it did.
    pub stop: Option<StopCause>,
}

/// What determines a job's result: its prompt, image, options, the models and every
/// setting of the pipeline that shapes an image ([`Pipeline::settings_fingerprint`]:
/// size, seed, n, quality, negative prompt, licence and reference policies, the
/// generator's identity with a ComfyUI workflow's hash). A job whose fingerprint changed
/// runs again; an unchanged one never does.
pub fn fingerprint(job: &Job, pipeline: &Pipeline) -> String {
    let mut h = Sha256::new();
    let models = serde_json::to_string(pipeline.models()).unwrap_or_default();
    let edit = job
        .edit_image
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .map(|b| hex(&Sha256::digest(&b)))
        .unwrap_or_default();
    let gate = job.gate_mode.unwrap_or(pipeline.gate_mode());
    let rounds = job.max_rounds.unwrap_or(pipeline.max_rounds());
    let parts = [
        job.prompt.clone(),
        edit,
        format!("{gate:?}"),
        rounds.to_string(),
        models,
        pipeline.settings_fingerprint().to_string(),
    ];
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())[..16].to_string()
}

/// The circuit breaker: counts consecutive fatal failures.
#[derive(Debug, Default)]
struct Breaker {
    consecutive: AtomicU32,
    tripped: Mutex<Option<(ErrorClass, String)>>,
}

impl Breaker {
    fn record(&self, class: Option<ErrorClass>, message: &str, threshold: u32) {
        match class {
            Some(c) if c.is_fatal() => {
                let n = self.consecutive.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= threshold
                    && let Ok(mut t) = self.tripped.lock()
                    && t.is_none()
                {
                    *t = Some((c, message.to_string()));
                }
            }
            _ => self.consecutive.store(0, Ordering::SeqCst),
        }
    }

    fn tripped(&self) -> Option<(ErrorClass, String)> {
        self.tripped.lock().ok().and_then(|t| t.clone())
    }
}

type EventFn = Arc<dyn Fn(&BatchEvent) + Send + Sync>;

/// Runs jobs on one shared pipeline.
pub struct Runner {
    pipeline: Arc<Pipeline>,
    journal: Arc<Journal>,
    ledger: Arc<Ledger>,
    budget: Arc<Budget>,
    config: RunnerConfig,
    stopping: Arc<AtomicBool>,
    breaker: Breaker,
    events: Option<EventFn>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("journal", &self.journal)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How one job ended.
struct JobEnd {
    state: JobState,
    class: Option<ErrorClass>,
    message: String,
}

impl Runner {
    /// A runner. Set `stopping` to stop starting jobs (a first signal); call
    /// [`Budget::stop_now`] to stop running ones before their next paid call.
    ///
    /// Every paid call of its jobs is written to `journal` before it is made and settled
    /// there when it returns, and `budget` counts every journal in `journal`'s folder: the
    /// caps hold across processes, restarts and shards writing to the same folder.
    pub fn new(
        pipeline: Arc<Pipeline>,
        journal: Arc<Journal>,
        budget: Arc<Budget>,
        config: RunnerConfig,
        stopping: Arc<AtomicBool>,
    ) -> Self {
        let ledger = Arc::new(Ledger::new(journal.clone()));
        budget.count_in(ledger.clone());
        Runner {
            pipeline,
            ledger,
            journal,
            budget,
            config,
            stopping,
            breaker: Breaker::default(),
            events: None,
        }
    }

    /// Be told about every job's start and end.
    pub fn on_event(mut self, f: impl Fn(&BatchEvent) + Send + Sync + 'static) -> Self {
        self.events = Some(Arc::new(f));
        self
    }

    fn emit(&self, e: BatchEvent) {
        if let Some(f) = &self.events {
            f(&e);
        }
    }

    /// Run `jobs` (from [`Journal::plan`]) and say how the batch ended.
    pub async fn run(&self, jobs: Vec<Job>) -> Result<BatchOutcome, BatchError> {
        super::journal::check_jobs(&jobs)?;
        let concurrency = self.config.concurrency.max(1);
        let ends: Vec<Result<Option<JobEnd>, BatchError>> = futures::stream::iter(jobs)
            .map(|job| self.run_job(job))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut outcome = BatchOutcome::default();
        for end in ends {
            match end? {
                None => outcome.pending += 1,
                Some(e) => match e.state {
                    JobState::Done => outcome.done += 1,
                    JobState::Failed => outcome.failed += 1,
                    JobState::Skipped => outcome.skipped += 1,
                    _ => outcome.pending += 1,
                },
            }
        }
        outcome.stop = if let Some((class, message)) = self.breaker.tripped() {
            Some(StopCause::CircuitBreaker { class, message })
        } else if self.stopping.load(Ordering::SeqCst) {
            Some(StopCause::Interrupted)
        } else {
            self.budget.halted().map(StopCause::Halted)
        };
        Ok(outcome)
    }

    /// `None`: not started (stopping, budget spent, breaker tripped).
    async fn run_job(&self, job: Job) -> Result<Option<JobEnd>, BatchError> {
        if self.stopping.load(Ordering::SeqCst)
            || self.breaker.tripped().is_some()
            || self.budget.may_start().await.is_err()
        {
            return Ok(None);
        }
        let started = Instant::now();
        let fp = fingerprint(&job, &self.pipeline);
        let interrupted = self.journal_op(&job.id, |j, id| j.start(id)).await?;
        if interrupted > 0 {
            tracing::warn!(
                job = %job.id,
                "{interrupted} paid call(s) of this job were in flight when an earlier process \
                 died; they may have been billed, and their cost is in no total"
            );
        }
        self.emit(BatchEvent::JobStarted { id: job.id.clone() });
        let mut request = Request::new(job.prompt.clone());
        if let Some(path) = &job.edit_image {
            match std::fs::read(path) {
                Ok(bytes) => request = request.with_edit_image(bytes),
                Err(e) => {
                    let msg = format!("cannot read the image to edit {}: {e}", path.display());
                    let end = JobEnd {
                        state: JobState::Skipped,
                        class: Some(ErrorClass::InvalidRequest),
                        message: msg,
                    };
                    return self
                        .record(&job, end, Finished::default(), 0.0, started)
                        .await
                        .map(Some);
                }
            }
        }
        let mut attempt = 1;
        loop {
            let guard = Arc::new(
                BudgetGuard::new(
                    self.budget.clone(),
                    &job.id,
                    self.config.job_timeout.map(|t| Instant::now() + t),
                )
                .with_ledger(self.ledger.clone()),
            );
            let mut options = RunOptions::default().with_guard(guard.clone() as Arc<dyn RunGuard>);
            options.gate_mode = job.gate_mode;
            options.max_rounds = job.max_rounds;
            let run = self.pipeline.run_with(request.clone(), options);
            let result = match self.config.job_timeout {
                None => Ok(run.await),
                Some(t) => tokio::time::timeout(t + self.config.job_grace, run).await,
            };
            let mut fin = Finished::default();
            let cost = guard.spent.cost();
            let Ok(result) = result else {
                let end = JobEnd {
                    state: JobState::Failed,
                    class: Some(ErrorClass::Timeout),
                    message: format!(
                        "abandoned {} s after its --job-timeout: a call in flight did not return (it may have been billed)",
                        self.config.job_grace.as_secs_f32()
                    ),
                };
                tracing::warn!(job = %job.id, "{}", end.message);
                return self.record(&job, end, fin, cost, started).await.map(Some);
            };
            let end = match result {
                Ok(outcome) => {
                    let out = self.config.out.clone();
                    let (job2, fp2) = (job.clone(), fp.clone());
                    let written = tokio::task::spawn_blocking(move || {
                        let written = JobOutputs::write(&out, &job2, &fp2, &outcome);
                        (written, outcome.report)
                    })
                    .await;
                    match written {
                        Ok((Ok(_), report)) => {
                            fin.output_dir = Some(job.id.clone());
                            fin.engines = engine_counts(&report);
                            fin.stop_kind = stop_kind(&report.stop);
                            JobEnd {
                                state: JobState::Done,
                                class: None,
                                message: report.stop_reason.clone(),
                            }
                        }
                        Ok((Err(e), _)) => unwritable(&job, &e.to_string()),
                        Err(e) => unwritable(&job, &e.to_string()),
                    }
                }
                Err(PipelineError::Halted { halt, report, .. })
                    if halt.kind == HaltKind::JobTimeout =>
                {
                    // The job itself took too long: waiting for the next night would not
                    // make it faster, so it fails (the next run tries it again).
                    fin.stop_kind = stop_kind(&report.stop);
                    self.write_failed(&job, &fp, &report).await;
                    JobEnd {
                        state: JobState::Failed,
                        class: Some(ErrorClass::Timeout),
                        message: halt.to_string(),
                    }
                }
                Err(PipelineError::Halted { halt, report, .. }) => {
                    fin.stop_kind = stop_kind(&report.stop);
                    JobEnd {
                        state: JobState::Pending,
                        class: None,
                        message: halt.to_string(),
                    }
                }
                Err(e) => {
                    let class = e.class().unwrap_or(ErrorClass::Internal);
                    if class.is_transient() && attempt < self.config.max_attempts {
                        let wait = (self.config.backoff * 2u32.saturating_pow(attempt - 1))
                            .max(e.retry_after().unwrap_or_default());
                        tracing::warn!(job = %job.id, %class, attempt, "transient failure; retrying in {wait:?}: {e}");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    if let Some(report) = e.report() {
                        fin.stop_kind = stop_kind(&report.stop);
                        self.write_failed(&job, &fp, report).await;
                    }
                    JobEnd {
                        state: JobState::Failed,
                        class: Some(class),
                        message: e.to_string(),
                    }
                }
            };
            return self
                .record(&job, end, fin, guard.spent.cost(), started)
                .await
                .map(Some);
        }
    }

    /// Write a failed job's report beside its outputs, off the runtime's threads; a report
    /// that cannot be written is logged (the journal still records the failure).
    async fn write_failed(&self, job: &Job, fp: &str, report: &Report) {
        let (out, job2, fp2, report2) = (
            self.config.out.clone(),
            job.clone(),
            fp.to_string(),
            report.clone(),
        );
        let written = tokio::task::spawn_blocking(move || {
            JobOutputs::write_failed(&out, &job2, &fp2, &report2)
        })
        .await;
        let error = match written {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(job = %job.id, "cannot write the failed job's report: {error}");
    }

    /// Run a journal operation off the async runtime's threads (its commits are
    /// fsync'd: a slow disk must not stall the other jobs' network I/O).
    async fn journal_op<T: Send + 'static>(
        &self,
        id: &str,
        op: impl FnOnce(&Journal, &str) -> Result<T, BatchError> + Send + 'static,
    ) -> Result<T, BatchError> {
        let (journal, id) = (self.journal.clone(), id.to_string());
        tokio::task::spawn_blocking(move || op(&journal, &id))
            .await
            .map_err(|e| BatchError::Io {
                path: self.journal.path().to_path_buf(),
                source: std::io::Error::other(e),
            })?
    }

    async fn record(
        &self,
        job: &Job,
        end: JobEnd,
        mut fin: Finished,
        cost_usd: f64,
        started: Instant,
    ) -> Result<JobEnd, BatchError> {
        fin.state = Some(end.state);
        fin.error_class = end.class;
        fin.error_message = (end.state != JobState::Done).then(|| end.message.clone());
        fin.duration_ms = started.elapsed().as_millis() as u64;
        let written = fin.clone();
        self.journal_op(&job.id, move |j, id| j.finish(id, &written))
            .await?;
        if end.state != JobState::Pending {
            self.breaker
                .record(end.class, &end.message, self.config.breaker_threshold);
        }
        self.emit(BatchEvent::JobFinished {
            id: job.id.clone(),
            state: end.state,
            class: end.class,
            message: end.message.clone(),
            ms: fin.duration_ms,
            cost_usd,
            total_cost_usd: self.budget.spent.cost(),
        });
        Ok(end)
    }
}

/// A job whose image was paid for and whose outputs cannot be written (a full disk, a
/// folder that is not writable) fails with class `io`: its spend is in the ledger, and
/// the next run tries it again.
fn unwritable(job: &Job, why: &str) -> JobEnd {
    let message = format!("the job's outputs could not be written to its folder: {why}");
    tracing::error!(job = %job.id, "{message}");
    JobEnd {
        state: JobState::Failed,
        class: Some(ErrorClass::Io),
        message,
    }
}

fn stop_kind(stop: &StopReason) -> Option<String> {
    serde_json::to_value(stop)
        .ok()
        .and_then(|v| v["kind"].as_str().map(str::to_string))
}

/// `{"engine": [runs, failed]}` over a report's searches.
fn engine_counts(report: &Report) -> Option<String> {
    let mut counts: BTreeMap<&str, [u64; 2]> = BTreeMap::new();
    for r in &report.retrievals {
        for run in &r.runs {
            let c = counts.entry(run.engine.as_str()).or_default();
            c[0] += 1;
            c[1] += u64::from(run.error.is_some());
        }
    }
    (!counts.is_empty())
        .then(|| serde_json::to_string(&counts).ok())
        .flatten()
}
