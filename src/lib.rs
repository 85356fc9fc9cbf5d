//! Internet-augmented text-to-image generation.
//!
//! Image models draw common things well and rare or recent ones badly: a niche species,
//! a minor game character, last month's product. `iat2i` closes that gap the way the
//! IA-T2I paper does, and goes further:
//!
//! ```text
//! Request{prompt, edit_image?}
//!   -> Gate      does the prompt need a reference? which entities? which queries?
//!   -> Search    keyless web image engines, fanned out and fused     (iat2i-retrievers)
//!   -> Select    prefilter, fetch, dedup, CLIP rank, diversity, judge  (iat2i-selectors)
//!   -> loop round 1..=max_rounds
//!        Generator  prompt + reference (+ image to edit)  -> image
//!        Judge      vision LMM: aligned? scores; accept | refine_prompt |
//!                   next_reference | drop_reference | research
//!   -> Outcome{best image over all rounds, Report}
//! ```
//!
//! * [`Pipeline`] runs the loop; [`Pipeline::builder`] has working defaults for
//!   everything but the model endpoints.
//! * Every stage is an object-safe trait ([`Gate`], [`Generator`], [`Judge`], [`Lmm`],
//!   and [`retrievers::ImageSearch`], [`selectors::Selector`]) with built-in
//!   implementations: [`LmmGate`], [`OpenAiImages`], [`LmmJudge`], [`OpenAiChat`] (any
//!   OpenAI-compatible server: OpenAI, Ollama, vLLM, OpenRouter).
//! * [`Report`] records every decision, query, candidate (with licence and source page),
//!   score, prompt sent, verdict, timing and token/image usage, as JSON.
//! * [`PipelineEvent`]s (callback or channel) and `tracing` spans mark every stage.
//! * A failure after the first image never loses it: the best image so far is returned
//!   and the failure is recorded in the report. API keys are [`Secret`]s and never appear
//!   in `Debug` output, errors or reports.
//!
//! # Example
//!
//! ```no_run
//! use iat2i::prelude::*;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // OPENAI_API_KEY (and optionally OPENAI_BASE_URL) configure both models.
//! let pipeline = iat2i::PipelineBuilder::openai_from_env("gpt-4o-mini", "gpt-image-1")?
//!     .max_rounds(3)
//!     .gate_mode(GateMode::FromPrompt)
//!     .query_languages(vec!["en".into(), "zh".into(), "ja".into()])
//!     .on_event(|event| eprintln!("{event:?}"))
//!     .build()?;
//!
//! let outcome = pipeline
//!     .run(Request::new("A photo of a Graphorn grazing at dusk"))
//!     .await?;
//! std::fs::write("graphorn.png", &outcome.image.bytes)?;
//! std::fs::write("report.json", serde_json::to_vec_pretty(&outcome.report)?)?;
//! println!("{} (round {})", outcome.report.stop_reason, outcome.round);
//! # Ok(()) }
//! ```
//!
//! Each stage can have its own endpoint and model, e.g. a local vision model as judge:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use iat2i::lmm::model_http_client;
//! use iat2i::prelude::*;
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let http = model_http_client(Duration::from_secs(120))?;
//! let judge = OpenAiChat::new(http.clone(), "http://localhost:11434/v1", "qwen2.5vl")?;
//! let gate = OpenAiChat::new(http.clone(), "https://api.openai.com/v1", "gpt-4o-mini")?
//!     .with_api_key(Secret::from_env("OPENAI_API_KEY").ok_or("set OPENAI_API_KEY")?);
//! let images = OpenAiImages::new(model_http_client(Duration::from_secs(300))?,
//!     "https://api.openai.com/v1", "gpt-image-1")?
//!     .with_api_key(Secret::new(std::env::var("OPENAI_API_KEY")?));
//! let pipeline = Pipeline::builder()
//!     .gate_lmm(Arc::new(gate))
//!     .judge_lmm(Arc::new(judge.clone()))
//!     .candidate_judge_lmm(Arc::new(judge))
//!     .generator(Arc::new(images))
//!     .build()?;
//! # let _ = pipeline; Ok(()) }
//! ```
#![warn(missing_docs)]

#[cfg(feature = "batch")]
pub mod batch;
pub mod candidate_judge;
pub mod degraded;
pub mod error;
#[cfg(feature = "batch")]
pub mod eval;
pub mod events;
pub mod failure;
pub mod gate;
pub mod generator;
pub mod guard;
pub mod judge;
pub mod lmm;
pub mod pipeline;
pub mod report;
mod secret;
#[cfg(feature = "serve")]
pub mod serve;
pub mod settings;
pub mod stage;
pub mod vocabulary;

pub use iat2i_retrievers as retrievers;
pub use iat2i_selectors as selectors;

pub use candidate_judge::LmmCandidateJudge;
pub use degraded::{Cause, Degradation, Lost};
pub use error::{PipelineError, StageError};
pub use events::{EventCallback, PipelineEvent};
pub use failure::ErrorClass;
pub use gate::{Assessment, EntityPlan, Gate, GateMode, KnowledgeGap, LmmGate};
pub use generator::{
    ChatImages, ComfyUi, GeminiImages, GeneratedImage, Generation, GenerationRequest,
    GenerationSettings, Generator, ImageError, ImageSize, ImageUsage, InputImage, OpenAiImages,
    ReferenceImage, ReferenceRole, RefusalKind,
};
pub use guard::{Halt, HaltKind, PaidCall, PlannedCall, RunGuard, StopReason};
pub use judge::{Action, EntityVerdict, Judge, LmmJudge, ReviewInput, Scores, Shown, Verdict};
pub use lmm::{Lmm, LmmError, OpenAiChat, Usage};
pub use pipeline::{Outcome, Pipeline, PipelineBuilder, Request, RunOptions};
pub use report::Report;
pub use secret::Secret;
pub use settings::Settings;
pub use stage::StageName;

/// The main types of all three crates: `use iat2i::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Action, Assessment, ChatImages, ComfyUi, Degradation, Gate, GateMode, GeminiImages,
        GeneratedImage, GenerationSettings, Generator, ImageSize, Judge, KnowledgeGap, Lmm,
        LmmCandidateJudge, LmmGate, LmmJudge, Lost, OpenAiChat, OpenAiImages, Outcome, Pipeline,
        PipelineError, PipelineEvent, Report, Request, Secret, Verdict,
    };
    pub use iat2i_retrievers::{
        Candidate, HttpClient, ImageSearch, LicensePolicy, MultiSearch, SearchQuery, Trust,
    };
    pub use iat2i_selectors::{
        CandidateJudge, HierarchicalSelector, Reference, Selection, SelectionRequest, Selector,
        SelectorConfig,
    };
}
