//! `iat2i serve`: internet-augmented images behind the OpenAI Images API, for pipelines
//! in any language.
//!
//! One process loads the CLIP model once and keeps one reference memory for every
//! request; each configured pipeline is a `model` a client names. Requests are admitted
//! by bearer key, a bounded queue and per-key daily budgets kept in a durable ledger.
//!
//! ```no_run
//! use iat2i::serve::{ServeConfig, Server};
//! use iat2i::Settings;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = Settings::default().with_env();
//! let config = ServeConfig::new(vec![("iat2i/gpt-image-1".into(), settings)]);
//! let server = Server::new(config)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.run(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod admission;
pub mod api;
mod handlers;
pub mod metrics;
mod pages;
mod reports;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

pub use admission::{ApiKey, Keys};

use crate::batch::PriceTable;
use crate::selectors::HierarchicalSelector;
use crate::settings::{Backend, ChatSettings, GeneratorSettings, RunSettings, SettingsError};
use crate::{Pipeline, Settings};

/// What the server is started with. Build it with [`ServeConfig::new`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The pipelines, by the `model` name clients ask for; the first is the default.
    /// Their engines and memory settings are the first's: one selector serves all.
    pub models: Vec<(String, Settings)>,
    /// Bearer keys; none: loopback callers only, unless `insecure_no_auth`.
    pub keys: Vec<ApiKey>,
    /// Serve callers from anywhere without keys.
    pub insecure_no_auth: bool,
    /// Requests running at once (default 8).
    pub concurrency: usize,
    /// Requests waiting beyond those (default 64); more are answered 429.
    pub queue: usize,
    /// Requests of one key at once, running or waiting (default 4).
    pub per_key_concurrency: usize,
    /// Images one key may have generated per UTC day.
    pub daily_images: Option<u64>,
    /// Estimated US dollars one key may spend per UTC day (every model needs a price).
    pub daily_cost: Option<f64>,
    /// Prices for the cost budget and the reports.
    pub prices: PriceTable,
    /// Where the spend ledger and the reports are kept.
    pub state_dir: PathBuf,
    /// The largest request body (default 25 MiB): 413 beyond it, before any paid call.
    pub max_body_bytes: usize,
    /// The longest prompt in characters (default 32000, as gpt-image-1's).
    pub max_prompt_chars: usize,
    /// A request's deadline (default 540 s, under OpenAI SDKs' 600 s read timeout): no
    /// paid call starts after it.
    pub request_timeout: Duration,
    /// After SIGTERM, how long running requests may take to finish (default 60 s).
    pub shutdown_grace: Duration,
}

impl ServeConfig {
    /// A configuration serving `models` with the defaults above; the state under
    /// `<cache>/serve`.
    pub fn new(models: Vec<(String, Settings)>) -> Self {
        let cache = models
            .first()
            .and_then(|(_, s)| s.memory.cache_dir.clone())
            .unwrap_or_else(crate::selectors::default_cache_dir);
        ServeConfig {
            models,
            keys: Vec::new(),
            insecure_no_auth: false,
            concurrency: 8,
            queue: 64,
            per_key_concurrency: 4,
            daily_images: None,
            daily_cost: None,
            prices: PriceTable::default(),
            state_dir: cache.join("serve"),
            max_body_bytes: 25 << 20,
            max_prompt_chars: 32_000,
            request_timeout: Duration::from_secs(540),
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

/// The `model` name a pipeline is served under by default: `iat2i/<image model>`
/// (`iat2i/gpt-image-1`, `iat2i/gemini-2.5-flash-image`, `iat2i/comfyui-<workflow>`).
pub fn model_name(settings: &Settings) -> String {
    match settings.generator.generator {
        Backend::Comfyui => {
            let workflow = settings
                .generator
                .workflow
                .as_ref()
                .and_then(|w| w.file_stem())
                .map(|s| s.to_string_lossy().replace('_', "-"))
                .unwrap_or_else(|| "workflow".into());
            format!("iat2i/comfyui-{workflow}")
        }
        _ => format!("iat2i/{}", settings.generator.model()),
    }
}

/// One entry of a pipelines file: a name, and what differs from the base settings.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ModelEntry {
    name: Option<String>,
    generator: Option<GeneratorSettings>,
    chat: Option<ChatSettings>,
    run: Option<RunSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelsFile {
    #[serde(default)]
    model: Vec<ModelEntry>,
}

/// The pipelines of a TOML file (`[[model]]` tables with a `name` and optional
/// `generator`, `chat` and `run` tables), each starting from `base`.
///
/// ```toml
/// [[model]]
/// name = "iat2i/gemini-2.5-flash-image"
/// generator = { generator = "gemini" }
/// ```
pub fn models_from_toml(
    text: &str,
    base: &Settings,
) -> Result<Vec<(String, Settings)>, SettingsError> {
    let file: ModelsFile =
        toml::from_str(text).map_err(|e| SettingsError::Invalid(e.to_string()))?;
    let mut out: Vec<(String, Settings)> = Vec::new();
    for entry in file.model {
        let mut s = base.clone();
        if let Some(g) = entry.generator {
            s.generator = g.with_env();
        }
        if let Some(c) = entry.chat {
            s.chat = c.with_env();
        }
        if let Some(r) = entry.run {
            s.run = r;
        }
        let name = entry.name.unwrap_or_else(|| model_name(&s));
        if out.iter().any(|(n, _)| *n == name) {
            return Err(SettingsError::Invalid(format!(
                "two pipelines are named {name:?}"
            )));
        }
        out.push((name, s));
    }
    Ok(out)
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// No pipeline is configured.
    #[error("no pipeline is configured")]
    NoModels,
    /// A pipeline's settings are unusable.
    #[error("pipeline {name}: {source}")]
    Settings {
        /// The pipeline.
        name: String,
        /// Why.
        source: Box<SettingsError>,
    },
    /// The state directory cannot be used.
    #[error("the state directory {}: {source}", path.display())]
    State {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The cost budget needs a price for every model.
    #[error("{0}")]
    Budget(String),
    /// The listener failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// A configured pipeline.
struct Model {
    name: String,
    pipeline: Arc<Pipeline>,
    backend: Backend,
    /// The chat and image models as `Report::models` names them (for prices).
    chat: String,
    image: String,
}

/// What every request shares.
struct State {
    models: Vec<Model>,
    selector: Arc<HierarchicalSelector>,
    keys: Keys,
    admission: Arc<admission::Admission>,
    budgets: admission::Budgets,
    metrics: Arc<metrics::Metrics>,
    reports: reports::Reports,
    max_prompt_chars: usize,
    max_body_bytes: usize,
    request_timeout: Duration,
    shutdown_grace: Duration,
    require_memory: bool,
    ready: AtomicBool,
    not_ready_because: std::sync::Mutex<Option<String>>,
    draining: AtomicBool,
    started: u64,
}

impl State {
    fn model(&self, asked: Option<&str>) -> Option<&Model> {
        let Some(asked) = asked.map(str::trim).filter(|m| !m.is_empty()) else {
            return self.models.first();
        };
        self.models
            .iter()
            .find(|m| m.name == asked || m.name.strip_prefix("iat2i/") == Some(asked))
    }

    fn model_names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }
}

/// The service: its pipelines, admission and state. [`Server::run`] serves it.
#[derive(Clone)]
pub struct Server {
    state: Arc<State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("models", &self.state.model_names())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Build every pipeline (sharing one selector: one CLIP model, one memory) and open
    /// the state directory. Nothing is contacted yet.
    pub fn new(config: ServeConfig) -> Result<Self, ServeError> {
        let Some((first_name, first)) = config.models.first() else {
            return Err(ServeError::NoModels);
        };
        let settings_err = |name: &str, source| ServeError::Settings {
            name: name.to_string(),
            source: Box::new(source),
        };
        let selector = first.selector().map_err(|e| settings_err(first_name, e))?;
        let mut models = Vec::new();
        for (name, s) in &config.models {
            let pipeline = s
                .pipeline_builder_sharing(&selector)
                .and_then(|b| Ok(b.build()?))
                .map_err(|e| settings_err(name, e))?;
            let m = pipeline.models().clone();
            let chat = m
                .judge
                .clone()
                .or(m.gate.clone())
                .unwrap_or_else(|| s.chat.model.clone());
            models.push(Model {
                name: name.clone(),
                backend: s.generator.generator,
                chat,
                image: m.generator.clone(),
                pipeline: Arc::new(pipeline),
            });
        }
        if config.daily_cost.is_some() {
            for m in &models {
                for model in [&m.chat, &m.image] {
                    if config.prices.get(model).is_none() {
                        return Err(ServeError::Budget(format!(
                            "--daily-cost needs a price for every model, and {} has none \
                             (add it to --prices)",
                            PriceTable::name_of(model)
                        )));
                    }
                }
            }
        }
        let state_err = |path: &PathBuf| {
            let path = path.clone();
            move |source| ServeError::State { path, source }
        };
        let budgets = config.state_dir.join("budgets");
        for dir in [&config.state_dir, &budgets] {
            std::fs::create_dir_all(dir).map_err(state_err(dir))?;
        }
        let reports = reports::Reports::open(&config.state_dir).map_err(|e| ServeError::State {
            path: config.state_dir.join("reports.sqlite"),
            source: std::io::Error::other(e),
        })?;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let require_memory = first.memory.require_memory;
        Ok(Server {
            state: Arc::new(State {
                models,
                selector: selector.selector,
                keys: Keys::new(config.keys, config.insecure_no_auth),
                admission: admission::Admission::new(
                    config.concurrency,
                    config.queue,
                    config.per_key_concurrency,
                ),
                budgets: admission::Budgets::new(
                    &budgets,
                    config.daily_images,
                    config.daily_cost,
                    config.prices,
                ),
                metrics: metrics::Metrics::new(),
                reports,
                max_prompt_chars: config.max_prompt_chars,
                max_body_bytes: config.max_body_bytes,
                request_timeout: config.request_timeout,
                shutdown_grace: config.shutdown_grace,
                require_memory,
                ready: AtomicBool::new(false),
                not_ready_because: std::sync::Mutex::new(Some("loading the CLIP model".into())),
                draining: AtomicBool::new(false),
                started,
            }),
        })
    }

    /// The configured `model` names.
    pub fn models(&self) -> Vec<String> {
        self.state.model_names()
    }

    /// The HTTP routes (for tests and for embedding in another axum app).
    pub fn router(&self) -> axum::Router {
        handlers::router(self.state.clone())
    }

    /// Load the CLIP model and open the reference memory; `/readyz` answers 200 after.
    /// A memory that cannot be opened keeps the server unready only when it is required.
    pub async fn warm_up(&self) {
        let s = &self.state;
        let mut problems = Vec::new();
        if let Err(e) = s.selector.warm_up().await {
            problems.push(format!("the CLIP model: {e} (references will be missing)"));
        }
        let store = match s.selector.store().await {
            Ok(store) => store.ready().await,
            Err(e) => Err(e),
        };
        let mut ready = true;
        if let Err(e) = store {
            problems.push(format!("the reference memory: {e}"));
            ready = !s.require_memory;
        }
        for p in &problems {
            tracing::warn!(problem = %p, "serve: degraded at start");
        }
        if let Ok(mut why) = s.not_ready_because.lock() {
            *why = (!problems.is_empty()).then(|| problems.join("; "));
        }
        s.ready.store(ready, Ordering::SeqCst);
    }

    /// Serve on `listener` until `shutdown` resolves; then stop accepting, let running
    /// requests finish within the grace period, and return. The model loads in the
    /// background: `/healthz` answers at once, `/readyz` once it is loaded.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let warm = self.clone();
        tokio::spawn(async move { warm.warm_up().await });
        let state = self.state.clone();
        let grace = state.shutdown_grace;
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            state.draining.store(true, Ordering::SeqCst);
            tracing::info!(
                grace_s = grace.as_secs(),
                "serve: stopping: no new connections; running requests may finish"
            );
            let _ = stopped_tx.send(());
        });
        let overrun = async {
            if stopped_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = serve => r.map_err(ServeError::Io),
            () = overrun => {
                tracing::warn!("serve: the grace period passed with requests running; stopping them");
                Ok(())
            }
        }
    }
}
