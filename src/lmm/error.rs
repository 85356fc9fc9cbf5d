use iat2i_retrievers::HttpError;

/// What went wrong with a chat call.
///
/// Messages name the endpoint (without secrets) and say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LmmError {
    /// The client is misconfigured (no key, bad base URL ...).
    #[error("LMM configuration: {0}")]
    Config(String),
    /// The HTTP exchange failed after retries (timeout, refused connection, 4xx/5xx).
    #[error("LMM {endpoint}: {source}{}", http_hint(.source))]
    Http {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: HttpError,
    },
    /// The server answered 200 with an error object in the body.
    #[error("LMM {endpoint} returned an error: {message}{}", code_suffix(.code))]
    Api {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// The server's message.
        message: String,
        /// The server's error code or type, when given.
        code: Option<String>,
    },
    /// The model refused to answer.
    #[error("LMM {endpoint} refused: {refusal} (rephrase the prompt or use another model)")]
    Refused {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// The model's refusal text.
        refusal: String,
    },
    /// The answer was cut off at the token limit.
    #[error(
        "LMM {endpoint} stopped at its token limit (finish_reason=length); raise max_tokens or use a model with a longer output"
    )]
    Truncated {
        /// Model and endpoint, without secrets.
        endpoint: String,
    },
    /// The server answered with no usable choice or content.
    #[error("LMM {endpoint} returned no answer: {detail}")]
    Empty {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// What was missing.
        detail: String,
    },
    /// The body was not a chat-completion object.
    #[error("LMM {endpoint} sent a response that is not a chat completion: {detail}")]
    Protocol {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// What was wrong.
        detail: String,
    },
    /// The answer was not the JSON asked for, even after one retry.
    #[error(
        "LMM {endpoint} did not answer with the JSON asked for ({detail}); answer began: {snippet:?}. Use a model that supports structured outputs (response_format json_schema)"
    )]
    NotJson {
        /// Model and endpoint, without secrets.
        endpoint: String,
        /// What was wrong.
        detail: String,
        /// The start of the answer.
        snippet: String,
    },
    /// Any other failure (for custom implementations).
    #[error("{0}")]
    Other(String),
    /// The call failed after the model had answered and been paid for (an answer that was
    /// not the JSON asked for, then a retry that failed too): `usage` is what was billed,
    /// so that reports and budgets count it.
    #[error("{source} ({} tokens were billed for the unusable answers)", .usage.total_tokens)]
    Billed {
        /// The tokens of the answers that could not be used.
        usage: super::Usage,
        /// The failure.
        #[source]
        source: Box<LmmError>,
    },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}

fn http_hint(e: &HttpError) -> &'static str {
    match e.status().map(|s| s.as_u16()) {
        Some(401) | Some(403) => " (check OPENAI_API_KEY or the key given to the client)",
        Some(404) => " (check the base URL, which should end in /v1, and the model name)",
        Some(429) => " (rate limited or out of quota: wait, or lower the request rate)",
        Some(s) if s >= 500 => " (the server failed: try again later or use another endpoint)",
        _ => match e.innermost() {
            HttpError::Timeout { .. } => {
                " (the server is slow or hung: raise the timeout or check the server)"
            }
            HttpError::Transport { .. } => " (is the server running and the base URL right?)",
            _ => "",
        },
    }
}

impl LmmError {
    /// Whether the failed call provably was not processed, so asking again bills nothing
    /// twice: the server said 429, the connection failed before the request was sent, or
    /// the client never sent it (a configuration error).
    pub fn provably_not_processed(&self) -> bool {
        match self.inner() {
            LmmError::Http { source, .. } => {
                source.status().is_some_and(|s| s.as_u16() == 429)
                    || (!source.was_not_retried()
                        && matches!(source.innermost(), HttpError::Transport { .. }))
            }
            LmmError::Config(_) => true,
            _ => false,
        }
    }

    /// Whether asking again with a reminder may help (a refusal or a non-JSON answer).
    pub fn is_retryable_reply(&self) -> bool {
        matches!(self, LmmError::Refused { .. } | LmmError::NotJson { .. })
    }

    /// The tokens billed for answers this failure made useless (zero for a call that
    /// never got an answer).
    pub fn billed(&self) -> super::Usage {
        match self {
            LmmError::Billed { usage, .. } => *usage,
            _ => super::Usage::default(),
        }
    }

    /// The failure itself, looking through [`LmmError::Billed`].
    pub fn inner(&self) -> &LmmError {
        match self {
            LmmError::Billed { source, .. } => source.inner(),
            other => other,
        }
    }

    /// This failure, carrying `usage` as billed when there was any.
    pub(crate) fn with_billed(self, usage: super::Usage) -> LmmError {
        if usage.total_tokens == 0 && usage.prompt_tokens == 0 && usage.completion_tokens == 0 {
            return self;
        }
        match self {
            LmmError::Billed { usage: u, source } => {
                let mut all = usage;
                all.add(&u);
                LmmError::Billed { usage: all, source }
            }
            other => LmmError::Billed {
                usage,
                source: Box::new(other),
            },
        }
    }
}
