//! iat2i: internet-augmented text-to-image generation.
//!
//! (Crate docs are written below, once the API settles.)
#![warn(missing_docs)]

pub mod candidate_judge;
pub mod error;
pub mod events;
pub mod gate;
pub mod generator;
pub mod judge;
pub mod lmm;
pub mod pipeline;
pub mod report;
mod secret;

pub use iat2i_retrievers as retrievers;
pub use iat2i_selectors as selectors;

pub use candidate_judge::LmmCandidateJudge;
pub use error::{PipelineError, StageError, StageName};
pub use events::{EventCallback, PipelineEvent};
pub use gate::{Assessment, Gate, GateMode, KnowledgeGap, LmmGate};
pub use generator::{
    GeneratedImage, GenerationRequest, Generator, ImageError, ImageUsage, InputImage, OpenAiImages,
    ReferenceImage,
};
pub use judge::{Action, Judge, LmmJudge, ReviewInput, Scores, Verdict};
pub use lmm::{Lmm, LmmError, OpenAiChat, Usage};
pub use pipeline::{Outcome, Pipeline, PipelineBuilder, Request};
pub use report::Report;
pub use secret::Secret;

/// The main types of all three crates: `use iat2i::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Action, Assessment, Gate, GateMode, GeneratedImage, Generator, Judge, KnowledgeGap, Lmm,
        LmmCandidateJudge, LmmGate, LmmJudge, OpenAiChat, OpenAiImages, Outcome, Pipeline,
        PipelineError, PipelineEvent, Report, Request, Secret, Verdict,
    };
    pub use iat2i_retrievers::{
        Candidate, HttpClient, ImageSearch, MultiSearch, SearchQuery, Trust,
    };
    pub use iat2i_selectors::{
        CandidateJudge, HierarchicalSelector, Reference, Selection, SelectionRequest, Selector,
        SelectorConfig,
    };
}
