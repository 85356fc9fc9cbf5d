//! Running an evaluation: every arm's images through the batch runner, then the judges
//! ([`judging`]).

mod judging;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use iat2i_selectors::Embedder;

use super::judge::JudgeModel;
use super::judge_prompts::JudgePromptFile;
use super::judgments::Judgments;
use super::produced::{Produced, read_outputs};
use super::prompts::PromptSet;
use super::report::{EvalReport, Inputs, Metric, ReportSettings, build_report};
use crate::GateMode;
use crate::batch::{
    BatchError, BatchOutcome, Budget, Job, JobOutputs, JobRow, Journal, Limits, PriceTable, Runner,
    RunnerConfig, fingerprint, write_atomic,
};
use crate::lmm::Lmm;
use crate::pipeline::Pipeline;

/// One configuration over the prompts: a pipeline and the per-prompt options it runs with.
#[derive(Clone)]
pub struct Arm {
    /// The arm's name: a column of the report and the folder of its images
    /// (`<out>/arms/<name>/`). Letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// The pipeline its images come from.
    pub pipeline: Arc<Pipeline>,
    /// The gate mode for every prompt (`None`: the pipeline's own).
    pub gate_mode: Option<GateMode>,
    /// The round budget for every prompt (`None`: the pipeline's own).
    pub max_rounds: Option<u32>,
}

impl std::fmt::Debug for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arm")
            .field("name", &self.name)
            .field("gate_mode", &self.gate_mode)
            .field("max_rounds", &self.max_rounds)
            .finish_non_exhaustive()
    }
}

impl Arm {
    /// An arm running `pipeline` as it is configured.
    pub fn new(name: impl Into<String>, pipeline: Arc<Pipeline>) -> Self {
        Arm {
            name: name.into(),
            pipeline,
            gate_mode: None,
            max_rounds: None,
        }
    }

    /// The generator alone: the gate never asks for a reference.
    pub fn baseline(pipeline: Arc<Pipeline>) -> Self {
        Arm::new("baseline", pipeline).gate_mode(GateMode::Never)
    }

    /// Run every prompt with this gate mode.
    pub fn gate_mode(mut self, mode: GateMode) -> Self {
        self.gate_mode = Some(mode);
        self
    }

    /// Run every prompt with at most this many rounds.
    pub fn max_rounds(mut self, rounds: u32) -> Self {
        self.max_rounds = Some(rounds);
        self
    }
}

/// How an evaluation runs.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// The output folder: `arms/<arm>/` (batch outputs and journal), `judgments.sqlite`,
    /// `eval.json` and `eval.html`.
    pub out: PathBuf,
    /// The metrics to compute (default: all four).
    pub metrics: Vec<Metric>,
    /// Prompts generated at once within an arm.
    pub concurrency: usize,
    /// Judge calls at once.
    pub judge_concurrency: usize,
    /// The batch runner's settings for the arms (its `out` is replaced per arm).
    pub runner: RunnerConfig,
    /// Limits over the whole evaluation (generation and judging).
    pub limits: Limits,
    /// Prices for the cost estimates.
    pub prices: PriceTable,
    /// Bootstrap resamples for the confidence intervals.
    pub resamples: usize,
    /// Seed of the bootstrap.
    pub seed: u64,
    /// The WiScore judge's prompt from a file (WISE's own text, say) instead of the
    /// built-in `wiscore.v1`; the `evaluate` example's `--judge-prompt`. Its replies may
    /// be JSON, WISE's `Consistency: N` lines or WISE_Verified's `Score: 0|1` (see
    /// [`super::parse_wiscore_judgment`]); the report records its SHA-256, and its
    /// judgments are stored apart from `wiscore.v1`'s.
    pub wiscore_prompt: Option<JudgePromptFile>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            out: PathBuf::from("eval-out"),
            metrics: Metric::ALL.to_vec(),
            concurrency: 4,
            judge_concurrency: 4,
            runner: RunnerConfig::default(),
            limits: Limits::default(),
            prices: PriceTable::default(),
            resamples: 2000,
            seed: 7,
            wiscore_prompt: None,
        }
    }
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The evaluation is misconfigured (no arm, a bad arm name, no prompt ...).
    #[error("evaluation: {0}")]
    Config(String),
    /// The batch layer failed (a journal, the outputs, a busy folder).
    #[error(transparent)]
    Batch(#[from] BatchError),
}

/// An evaluation: prompts, arms, a judge (and optionally CLIP for reference agreement).
pub struct Evaluation {
    prompts: PromptSet,
    arms: Vec<Arm>,
    judge: JudgeModel,
    embedder: Option<Arc<dyn Embedder>>,
    config: EvalConfig,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluation")
            .field("prompts", &self.prompts.prompts.len())
            .field("arms", &self.arms)
            .field("judge", &self.judge.name())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Evaluation {
    /// An evaluation of `prompts` judged by `judge`; add arms with [`Evaluation::arm`].
    pub fn new(prompts: PromptSet, judge: Arc<dyn Lmm>, config: EvalConfig) -> Self {
        Evaluation {
            prompts,
            arms: Vec::new(),
            judge: JudgeModel {
                lmm: judge,
                wiscore_file: config.wiscore_prompt.clone(),
            },
            embedder: None,
            config,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Add an arm.
    pub fn arm(mut self, arm: Arm) -> Self {
        self.arms.push(arm);
        self
    }

    /// CLIP (or another image embedder) for the reference agreement metric.
    pub fn embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// A switch that stops starting new prompts and judgments when set (a signal handler).
    pub fn stopping(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

    fn check(&self) -> Result<(), EvalError> {
        if self.arms.is_empty() {
            return Err(EvalError::Config("no arm to evaluate".into()));
        }
        if let Some(file) = &self.config.wiscore_prompt
            && !self.config.metrics.contains(&Metric::WiScore)
        {
            return Err(EvalError::Config(format!(
                "the judge prompt file {} replaces the WiScore judge, but WiScore is not \
                 among the metrics: add it, or leave the file out",
                file.path().display()
            )));
        }
        if self.prompts.prompts.is_empty() {
            return Err(EvalError::Config(format!(
                "the prompt set {} has no prompt",
                self.prompts.name
            )));
        }
        for (i, arm) in self.arms.iter().enumerate() {
            if let Err(why) = crate::batch::check_id(&arm.name) {
                return Err(EvalError::Config(format!("arm name: {why}")));
            }
            if self.arms[..i].iter().any(|a| a.name == arm.name) {
                return Err(EvalError::Config(format!(
                    "two arms are named {:?}",
                    arm.name
                )));
            }
        }
        Ok(())
    }

    fn arm_dir(&self, arm: &Arm) -> PathBuf {
        self.config.out.join("arms").join(&arm.name)
    }

    /// Generate every arm's images (resuming), judge them (resuming), and write
    /// `eval.json` and `eval.html` into the output folder.
    pub async fn run(&self) -> Result<EvalReport, EvalError> {
        self.check()?;
        std::fs::create_dir_all(&self.config.out).map_err(|source| BatchError::Io {
            path: self.config.out.clone(),
            source,
        })?;
        let judge_name = self.judge.name();
        // One budget over every arm and the judging; chat calls are priced as the judge
        // model's, images as the first arm's generator's.
        let generator = self.arms[0].pipeline.models().generator.clone();
        let budget = Arc::new(Budget::new(
            self.config.limits.clone(),
            self.config.prices.clone(),
            &judge_name,
            &generator,
        )?);
        let mut outcomes = BTreeMap::new();
        for arm in &self.arms {
            let outcome = self.generate(arm, budget.clone()).await?;
            tracing::info!(arm = %arm.name, ?outcome, "arm generated");
            outcomes.insert(arm.name.clone(), outcome);
        }
        let produced = self.collect()?;
        let judgments = Judgments::open(&self.config.out.join("judgments.sqlite"))?;
        let checklists = self.checklists(&judgments, &budget).await?;
        let cells = self
            .judge_all(&judgments, &budget, &produced, &checklists)
            .await?;
        let pairs = self.judge_pairs(&judgments, &budget, &produced).await?;
        let arm_names: Vec<String> = self.arms.iter().map(|a| a.name.clone()).collect();
        let inputs = Inputs {
            prompts: &self.prompts,
            arms: &arm_names,
            judge_model: &judge_name,
            config: ReportSettings {
                metrics: &self.config.metrics,
                resamples: self.config.resamples,
                seed: self.config.seed,
                wiscore_prompt: self.config.wiscore_prompt.as_ref(),
            },
            produced: &produced,
            checklists: &checklists,
            cells: &cells,
            pairs: &pairs,
        };
        let report = build_report(&inputs, outcomes, budget.halted().map(|h| h.to_string()));
        let json = serde_json::to_vec_pretty(&report).map_err(|e| BatchError::Io {
            path: self.config.out.join("eval.json"),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.config.out.join("eval.json"), &json)?;
        let html = super::report::render_html(&report).map_err(|e| BatchError::Io {
            path: self.config.out.join("eval.html"),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.config.out.join("eval.html"), html.as_bytes())?;
        Ok(report)
    }

    async fn generate(&self, arm: &Arm, budget: Arc<Budget>) -> Result<BatchOutcome, EvalError> {
        let dir = self.arm_dir(arm);
        std::fs::create_dir_all(&dir).map_err(|source| BatchError::Io {
            path: dir.clone(),
            source,
        })?;
        let jobs = self.jobs(arm);
        let fps: Vec<String> = jobs.iter().map(|j| fingerprint(j, &arm.pipeline)).collect();
        let journal = Arc::new(Journal::open(&dir.join("journal.sqlite"))?);
        let plan = journal.plan(&jobs, &fps, false, |job, fp| {
            JobOutputs::complete(&dir, job, fp).then(|| job.id.clone())
        })?;
        let mut config = self.config.runner.clone();
        config.out = dir.clone();
        config.concurrency = self.config.concurrency.max(1);
        let runner = Runner::new(
            arm.pipeline.clone(),
            journal,
            budget,
            config,
            self.stopping.clone(),
        );
        Ok(runner.run(plan.to_run).await?)
    }

    /// The batch jobs of `arm`, one per prompt.
    fn jobs(&self, arm: &Arm) -> Vec<Job> {
        self.prompts
            .prompts
            .iter()
            .enumerate()
            .map(|(i, p)| Job {
                id: p.id.clone(),
                line: i + 1,
                prompt: p.prompt.clone(),
                edit_image: None,
                gate_mode: arm.gate_mode,
                max_rounds: arm.max_rounds,
                metadata: serde_json::json!({"category": p.category, "arm": arm.name}),
            })
            .collect()
    }

    /// Read every arm's current outputs: `produced[arm][prompt id]`. Only a job whose
    /// journal row is done for the fingerprint it has now has an image (see
    /// [`read_outputs`]): a stale file left in its folder is never judged.
    fn collect(&self) -> Result<BTreeMap<String, BTreeMap<String, Produced>>, EvalError> {
        let mut all = BTreeMap::new();
        for arm in &self.arms {
            let dir = self.arm_dir(arm);
            let rows: BTreeMap<String, JobRow> =
                Journal::open_read_only(&dir.join("journal.sqlite"))?
                    .rows()?
                    .into_iter()
                    .map(|r| (r.id.clone(), r))
                    .collect();
            let mut per = BTreeMap::new();
            for job in self.jobs(arm) {
                let fp = fingerprint(&job, &arm.pipeline);
                let produced = read_outputs(&dir.join(&job.id), rows.get(&job.id), &fp);
                per.insert(job.id, produced);
            }
            all.insert(arm.name.clone(), per);
        }
        Ok(all)
    }
}
