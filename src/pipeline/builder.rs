use std::sync::Arc;
use std::time::Duration;

use iat2i_retrievers::{HttpClient, ImageSearch, MultiSearch, SearchQuery};
use iat2i_selectors::{HierarchicalSelector, Selector, SelectorConfig};
use tokio::sync::mpsc::UnboundedSender;

use super::Pipeline;
use crate::candidate_judge::LmmCandidateJudge;
use crate::error::PipelineError;
use crate::events::{EventSink, PipelineEvent};
use crate::gate::{Gate, GateMode, LmmGate};
use crate::generator::{GenerationSettings, Generator, OpenAiImages};
use crate::judge::{Judge, LmmJudge};
use crate::lmm::{Lmm, OpenAiChat, model_http_client};
use crate::report::ModelsRecord;

/// Builds a [`Pipeline`]. Everything but the models has a working default: the keyless
/// search engines, the hierarchical CLIP selector with an LMM candidate judge, 3 rounds,
/// the gate asked from the prompt.
#[derive(Default)]
pub struct PipelineBuilder {
    lmm: Option<Arc<dyn Lmm>>,
    gate_lmm: Option<Arc<dyn Lmm>>,
    judge_lmm: Option<Arc<dyn Lmm>>,
    candidate_judge_lmm: Option<Arc<dyn Lmm>>,
    gate: Option<Arc<dyn Gate>>,
    judge: Option<Arc<dyn Judge>>,
    generator: Option<Arc<dyn Generator>>,
    http: Option<HttpClient>,
    engines: Option<Vec<Arc<dyn ImageSearch>>>,
    search: Option<MultiSearch>,
    selector: Option<Arc<dyn Selector>>,
    selector_judge: Option<LmmCandidateJudge>,
    selector_config: Option<SelectorConfig>,
    gate_mode: GateMode,
    max_rounds: Option<u32>,
    require_reference: bool,
    require_gate: bool,
    require_review: bool,
    languages: Option<Vec<String>>,
    search_options: SearchQuery,
    events: EventSink,
    generation: GenerationSettings,
}

impl std::fmt::Debug for PipelineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineBuilder")
            .field("lmm", &self.lmm)
            .field("generator", &self.generator)
            .field("gate_mode", &self.gate_mode)
            .field("max_rounds", &self.max_rounds)
            .finish_non_exhaustive()
    }
}

impl PipelineBuilder {
    /// A builder with OpenAI clients configured from `OPENAI_API_KEY` and
    /// `OPENAI_BASE_URL`: `chat_model` for the gate and judges, `image_model` (such as
    /// `gpt-image-1`) for generation.
    pub fn openai_from_env(chat_model: &str, image_model: &str) -> Result<Self, PipelineError> {
        let chat_http = model_http_client(Duration::from_secs(120))
            .map_err(|e| PipelineError::Config(e.to_string()))?;
        let image_http = model_http_client(Duration::from_secs(300))
            .map_err(|e| PipelineError::Config(e.to_string()))?;
        let lmm = OpenAiChat::from_env(chat_http, chat_model)
            .map_err(|e| PipelineError::Config(e.to_string()))?;
        let images = OpenAiImages::from_env(image_http, image_model)
            .map_err(|e| PipelineError::Config(e.to_string()))?;
        Ok(PipelineBuilder::default()
            .lmm(Arc::new(lmm))
            .generator(Arc::new(images)))
    }

    /// The chat model used by the gate, the judge and the candidate judge unless each is
    /// given its own.
    pub fn lmm(mut self, lmm: Arc<dyn Lmm>) -> Self {
        self.lmm = Some(lmm);
        self
    }
    /// The gate's own chat model.
    pub fn gate_lmm(mut self, lmm: Arc<dyn Lmm>) -> Self {
        self.gate_lmm = Some(lmm);
        self
    }
    /// The reflection judge's own (vision) chat model.
    pub fn judge_lmm(mut self, lmm: Arc<dyn Lmm>) -> Self {
        self.judge_lmm = Some(lmm);
        self
    }
    /// The candidate judge's own (vision) chat model.
    pub fn candidate_judge_lmm(mut self, lmm: Arc<dyn Lmm>) -> Self {
        self.candidate_judge_lmm = Some(lmm);
        self
    }
    /// A custom gate (replaces the LMM gate).
    pub fn gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gate = Some(gate);
        self
    }
    /// A custom judge (replaces the LMM judge).
    pub fn judge(mut self, judge: Arc<dyn Judge>) -> Self {
        self.judge = Some(judge);
        self
    }
    /// The image generator (required).
    pub fn generator(mut self, generator: Arc<dyn Generator>) -> Self {
        self.generator = Some(generator);
        self
    }
    /// The HTTP client for search and reference downloads (default: the shared defaults).
    pub fn http(mut self, http: HttpClient) -> Self {
        self.http = Some(http);
        self
    }
    /// The search engines to fan out over (default: the keyless engines).
    pub fn engines(mut self, engines: Vec<Arc<dyn ImageSearch>>) -> Self {
        self.engines = Some(engines);
        self
    }
    /// A fully configured multi-engine search (overrides [`Self::engines`]).
    pub fn search(mut self, search: MultiSearch) -> Self {
        self.search = Some(search);
        self
    }
    /// Per-engine search options (result limit, safe search).
    pub fn search_options(mut self, options: SearchQuery) -> Self {
        self.search_options = options;
        self
    }
    /// A custom selector (default: [`HierarchicalSelector`] with an LMM candidate judge).
    pub fn selector(mut self, selector: Arc<dyn Selector>) -> Self {
        self.selector = Some(selector);
        self
    }
    /// The candidate judge inside a custom [`PipelineBuilder::selector`] (one built with
    /// `HierarchicalSelector::with_judge(Arc::new(judge.clone()))`), so that its tokens
    /// are counted: in the report, and by the run's guard (budgets). Without it, a custom
    /// selector's judge calls are not seen by the pipeline.
    pub fn selector_judge(mut self, judge: LmmCandidateJudge) -> Self {
        self.selector_judge = Some(judge);
        self
    }
    /// The configuration of the default selector.
    pub fn selector_config(mut self, config: SelectorConfig) -> Self {
        self.selector_config = Some(config);
        self
    }
    /// When to consult the gate (default [`GateMode::FromPrompt`]).
    pub fn gate_mode(mut self, mode: GateMode) -> Self {
        self.gate_mode = mode;
        self
    }
    /// The most generation rounds (default 3; 0 is refused by [`Self::build`]).
    pub fn max_rounds(mut self, n: u32) -> Self {
        self.max_rounds = Some(n);
        self
    }
    /// Fail the run when it wanted a reference image (the gate asked for one, the gate
    /// mode is [`GateMode::Always`], or the judge found a knowledge gap) and could not
    /// get one, instead of generating without it (default: go on, and record the loss in
    /// the report's `degraded` list). Checked before the first image is paid for.
    pub fn require_reference(mut self, yes: bool) -> Self {
        self.require_reference = yes;
        self
    }
    /// Fail the run when the judge cannot review an image (a 429 storm on the judge's
    /// endpoint, a reply that is not the JSON asked for) instead of keeping the image
    /// unjudged (default: keep it, and record [`crate::Lost::Review`] in the report's
    /// `degraded` list). The error, [`PipelineError::Required`], carries the unjudged image
    /// so that the paid work is not lost.
    pub fn require_review(mut self, yes: bool) -> Self {
        self.require_review = yes;
        self
    }
    /// Fail the run when the gate fails (default: fall back to generating first and
    /// letting the judge decide, recorded in the report's `degraded` list).
    pub fn require_gate(mut self, yes: bool) -> Self {
        self.require_gate = yes;
        self
    }
    /// Size, seed, negative prompt, images per round and backend options for every
    /// generation call. With `n > 1` the judge reviews each image of a round and keeps
    /// the best.
    pub fn generation(mut self, settings: GenerationSettings) -> Self {
        self.generation = settings;
        self
    }
    /// Languages the LMM gate writes queries in (default English; `["en", "zh", "ja"]`
    /// raises recall).
    pub fn query_languages(mut self, languages: Vec<String>) -> Self {
        self.languages = Some(languages);
        self
    }
    /// Receive every [`PipelineEvent`] in a callback.
    pub fn on_event(mut self, f: impl Fn(&PipelineEvent) + Send + Sync + 'static) -> Self {
        self.events.callback = Some(Arc::new(f));
        self
    }
    /// Receive every [`PipelineEvent`] on a channel.
    pub fn event_channel(mut self, tx: UnboundedSender<PipelineEvent>) -> Self {
        self.events.channel = Some(tx);
        self
    }

    /// Build the pipeline, saying what is missing when something is, and refusing
    /// settings it would otherwise have to ignore.
    pub fn build(self) -> Result<Pipeline, PipelineError> {
        self.refuse_ignored_settings()?;
        let generator = self.generator.clone().ok_or_else(|| {
            PipelineError::Config(
                "no image generator: call .generator(Arc::new(OpenAiImages::from_env(..)?))".into(),
            )
        })?;
        let gate_lmm = self.gate_lmm.clone().or_else(|| self.lmm.clone());
        let judge_lmm = self.judge_lmm.clone().or_else(|| self.lmm.clone());
        let gate = self.resolve_gate(&gate_lmm)?;
        let judge = self.resolve_judge(&judge_lmm)?;
        let http = match &self.http {
            Some(h) => h.clone(),
            None => HttpClient::builder()
                .build()
                .map_err(|e| PipelineError::Config(e.to_string()))?,
        };
        let search = self.search.clone().unwrap_or_else(|| {
            let engines = self
                .engines
                .clone()
                .unwrap_or_else(|| iat2i_retrievers::engines::default_keyless(&http));
            MultiSearch::new(engines)
        });
        let cj_lmm = self
            .candidate_judge_lmm
            .clone()
            .or_else(|| judge_lmm.clone());
        let candidate_judge = match &self.selector {
            Some(_) => self.selector_judge.clone(),
            None => cj_lmm.as_ref().map(|l| LmmCandidateJudge::new(l.clone())),
        };
        let selector = self.resolve_selector(http, &candidate_judge);
        let models = ModelsRecord {
            gate: gate_lmm
                .filter(|_| self.gate.is_none())
                .map(|l| l.describe()),
            judge: judge_lmm
                .filter(|_| self.judge.is_none())
                .map(|l| l.describe()),
            candidate_judge: candidate_judge.as_ref().and(cj_lmm).map(|l| l.describe()),
            generator: generator.describe(),
            engines: search
                .engines()
                .iter()
                .map(|e| e.name().to_string())
                .collect(),
        };
        let settings = self.settings_fingerprint(generator.as_ref());
        Ok(Pipeline {
            settings,
            gate,
            judge,
            generator,
            search,
            selector,
            candidate_judge,
            gate_mode: self.gate_mode,
            max_rounds: self.max_rounds.unwrap_or(3),
            require_reference: self.require_reference,
            require_gate: self.require_gate,
            require_review: self.require_review,
            require_memory: self.selector.is_none()
                && self
                    .selector_config
                    .as_ref()
                    .is_some_and(|c| c.memory.enabled && c.memory.required),
            search_options: self.search_options,
            events: self.events,
            models,
            generation: self.generation,
        })
    }

    /// See [`Pipeline::settings_fingerprint`].
    fn settings_fingerprint(&self, generator: &dyn Generator) -> String {
        let g = &self.generation;
        let licence = self
            .selector_config
            .as_ref()
            .map(|c| format!("{:?}", c.prefilter.license_policy));
        serde_json::json!({
            "generator": generator.identity(),
            "size": g.size.as_ref().map(|s| format!("{s:?}")),
            "seed": g.seed,
            "n": g.n.max(1),
            "negative_prompt": g.negative_prompt,
            "options": g.options,
            "licence": licence,
            "custom_selector": self.selector.is_some(),
            "require_reference": self.require_reference,
            "require_gate": self.require_gate,
            "query_languages": self.languages,
        })
        .to_string()
    }

    /// Settings that only configure a default part the caller replaced (or values that
    /// mean nothing) are refused: silently dropping them would run something else than
    /// the caller asked for.
    fn refuse_ignored_settings(&self) -> Result<(), PipelineError> {
        let mut problems = Vec::new();
        if self.selector.is_some() {
            if self.selector_config.is_some() {
                problems.push(
                    "selector_config(..) configures the default selector, but a custom \
                     selector(..) was given: configure that selector instead",
                );
            }
            if self.candidate_judge_lmm.is_some() {
                problems.push(
                    "candidate_judge_lmm(..) is used by the default selector only, but a custom \
                     selector(..) was given: give your selector its own candidate judge",
                );
            }
        }
        if self.gate.is_some() {
            if self.languages.is_some() {
                problems.push(
                    "query_languages(..) configures the default LMM gate, but a custom gate(..) \
                     was given: configure that gate's languages instead",
                );
            }
            if self.gate_lmm.is_some() {
                problems.push(
                    "gate_lmm(..) configures the default LMM gate, but a custom gate(..) was \
                     given",
                );
            }
        }
        if self.judge.is_some() && self.judge_lmm.is_some() && self.selector.is_some() {
            problems.push(
                "judge_lmm(..) configures the default judge (and candidate judge), but a custom \
                 judge(..) and selector(..) were given",
            );
        }
        if self.search.is_some() && self.engines.is_some() {
            problems.push(
                "engines(..) is ignored when a configured search(..) is given: add the engines \
                 to that MultiSearch",
            );
        }
        if self.max_rounds == Some(0) {
            problems.push("max_rounds(0): a run needs at least one round");
        }
        let selector_problems: Vec<String> = self
            .selector_config
            .as_ref()
            .map(|c| c.problems())
            .unwrap_or_default()
            .into_iter()
            .map(|p| format!("selector_config: {p}"))
            .collect();
        let mut problems: Vec<String> = problems.into_iter().map(String::from).collect();
        problems.extend(selector_problems);
        if self.require_reference && self.gate_mode == GateMode::Never {
            problems.push(
                "require_reference(true) with GateMode::Never: that mode never searches for a \
                 reference"
                    .to_string(),
            );
        }
        match problems.is_empty() {
            true => Ok(()),
            false => Err(PipelineError::Config(problems.join("; "))),
        }
    }

    fn resolve_gate(
        &self,
        lmm: &Option<Arc<dyn Lmm>>,
    ) -> Result<Option<Arc<dyn Gate>>, PipelineError> {
        Ok(match (&self.gate, lmm) {
            (Some(g), _) => Some(g.clone()),
            (None, Some(l)) => Some(Arc::new(
                LmmGate::new(l.clone()).with_languages(self.languages.clone().unwrap_or_default()),
            )),
            (None, None) if self.gate_mode == GateMode::Never => None,
            (None, None) => return Err(missing("gate")),
        })
    }

    fn resolve_judge(&self, lmm: &Option<Arc<dyn Lmm>>) -> Result<Arc<dyn Judge>, PipelineError> {
        match (&self.judge, lmm) {
            (Some(j), _) => Ok(j.clone()),
            (None, Some(l)) => Ok(Arc::new(LmmJudge::new(l.clone()))),
            (None, None) => Err(missing("judge")),
        }
    }

    fn resolve_selector(
        &self,
        http: HttpClient,
        candidate_judge: &Option<LmmCandidateJudge>,
    ) -> Arc<dyn Selector> {
        if let Some(s) = &self.selector {
            return s.clone();
        }
        let mut s =
            HierarchicalSelector::new(http, self.selector_config.clone().unwrap_or_default());
        if let Some(cj) = candidate_judge {
            s = s.with_judge(Arc::new(cj.clone()));
        }
        Arc::new(s)
    }
}

fn missing(what: &str) -> PipelineError {
    PipelineError::Config(format!(
        "no chat model for the {what}: call .lmm(..) (or .{what}_lmm(..)) with an \
         OpenAiChat, or give a custom .{what}(..)"
    ))
}
