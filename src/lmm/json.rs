//! Structured answers: schemas from Rust types, a tolerant parser, one retry.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ChatRequest, JsonSchemaFormat, Lmm, LmmError, Message, Usage};

/// The JSON schema of `T` in the subset OpenAI's strict structured outputs accept:
/// sub-schemas inlined, every object closed (`additionalProperties: false`) with all its
/// properties required, `oneOf` turned into `anyOf`, and `$schema`/`format` removed.
pub fn strict_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
    }
    make_strict(&mut value);
    value
}

fn make_strict(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("format").is_some_and(Value::is_string) {
                map.remove("format");
            }
            if let Some(one_of) = map.remove("oneOf") {
                map.insert("anyOf".into(), one_of);
            }
            let keys: Option<Vec<Value>> = map
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().map(Value::String).collect());
            if let Some(keys) = keys {
                map.insert("required".into(), Value::Array(keys));
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for child in map.values_mut() {
                make_strict(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_strict),
        _ => {}
    }
}

/// Find the JSON object in a model's answer: the whole text when it parses, else the
/// inside of a ```` ```json ```` fence, else the first balanced `{...}` that parses
/// (braces inside strings are skipped). Servers that ignore `response_format` often
/// wrap JSON in prose.
///
/// Linear in the length of the text: one pass finds every balanced `{...}` span, and
/// the parser is handed at most a few times the text's length in all, so a degenerate
/// reply (100,000 `{`, deeply nested braces) costs no more than a long ordinary one.
pub fn extract_json(text: &str) -> Option<Value> {
    extract_json_counted(text).0
}

/// [`extract_json`], also returning how many bytes were scanned or handed to the
/// parser (the work done), so tests can check it stays linear.
pub(crate) fn extract_json_counted(text: &str) -> (Option<Value>, usize) {
    let trimmed = text.trim();
    let mut work = trimmed.len();
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(trimmed) {
        return (Some(v), work);
    }
    if let Some(inner) = fenced(trimmed) {
        work += inner.len();
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(inner.trim()) {
            return (Some(v), work);
        }
    }
    // Strings tracked first (braces inside strings skipped); then, for a stray quote in
    // the prose that swallowed the rest, braces alone. Earliest start first in each.
    let mut spans = balanced_spans(trimmed, true);
    spans.sort_unstable_by_key(|&(start, _)| start);
    let mut loose = balanced_spans(trimmed, false);
    loose.sort_unstable_by_key(|&(start, _)| start);
    spans.extend(loose);
    work += 2 * trimmed.len();
    let budget = 4 * trimmed.len() + 4096;
    let mut handed = 0usize;
    for (start, end) in spans {
        let Some(candidate) = trimmed.get(start..end) else {
            continue;
        };
        handed += candidate.len();
        if handed > budget {
            break;
        }
        if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(candidate) {
            return (Some(v), work + handed);
        }
    }
    (None, work + handed.min(budget))
}

/// Every balanced `{...}` span (start, end exclusive), in one pass. With
/// `strings`, quotes inside braces open strings whose braces do not count (a `"` in the
/// prose around the JSON does not).
fn balanced_spans(text: &str, strings: bool) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, byte) in text.bytes().enumerate() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' if strings && !open.is_empty() => in_string = true,
            b'{' => open.push(i),
            b'}' => {
                if let Some(start) = open.pop() {
                    spans.push((start, i + 1));
                }
            }
            _ => {}
        }
    }
    spans
}

fn fenced(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = text.get(start + 3..)?;
    let body_start = after.find('\n').map(|i| i + 1).unwrap_or(0);
    let body = after.get(body_start..)?;
    let end = body.find("```")?;
    body.get(..end)
}

/// A parsed structured answer and the tokens it cost (retries included).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JsonReply<T> {
    /// The parsed value.
    pub value: T,
    /// Token counts of every call made to get it.
    pub usage: Usage,
    /// What the calls had to do without (see [`super::ChatResponse::degraded`]).
    pub degraded: Vec<String>,
}

impl<T> JsonReply<T> {
    /// A reply that cost nothing and lost nothing (a gate or judge of your own that asks
    /// no model); set the cost with [`JsonReply::with_usage`].
    pub fn new(value: T) -> Self {
        JsonReply {
            value,
            usage: Usage::default(),
            degraded: Vec::new(),
        }
    }

    /// With the tokens it cost.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }
}

fn snippet(text: &str) -> String {
    text.chars().take(160).collect()
}

fn parse_reply<T: DeserializeOwned>(lmm: &dyn Lmm, content: &str) -> Result<T, LmmError> {
    let value = extract_json(content).ok_or_else(|| LmmError::NotJson {
        endpoint: lmm.describe(),
        detail: "no JSON object in the answer".into(),
        snippet: snippet(content),
    })?;
    serde_json::from_value(value).map_err(|e| LmmError::NotJson {
        endpoint: lmm.describe(),
        detail: format!("the JSON does not match the schema: {e}"),
        snippet: snippet(content),
    })
}

/// Ask `lmm` for a `T`: sends the schema of `T` as `response_format` json_schema named
/// `name`, parses the answer tolerantly, and on a refusal or a non-JSON answer asks
/// exactly once more with a reminder before returning the error.
pub async fn chat_json<T: DeserializeOwned + JsonSchema>(
    lmm: &dyn Lmm,
    name: &str,
    messages: Vec<Message>,
) -> Result<JsonReply<T>, LmmError> {
    let mut request = ChatRequest {
        messages,
        json_schema: Some(JsonSchemaFormat {
            name: name.to_string(),
            schema: strict_schema::<T>(),
        }),
        ..ChatRequest::default()
    };
    let mut usage = Usage::default();
    let mut degraded: Vec<String> = Vec::new();
    let first = match lmm.chat(&request).await {
        Ok(resp) => {
            usage.add(&resp.usage);
            degraded.extend(resp.degraded);
            match parse_reply::<T>(lmm, &resp.content) {
                Ok(value) => {
                    return Ok(JsonReply {
                        value,
                        usage,
                        degraded,
                    });
                }
                Err(e) => {
                    request.messages.push(Message::assistant(resp.content));
                    e
                }
            }
        }
        Err(e) if e.is_retryable_reply() => e,
        Err(e) => return Err(e),
    };
    tracing::warn!(error = %first, "LMM reply unusable; asking once more");
    let schema_text = request
        .json_schema
        .as_ref()
        .map(|s| s.schema.to_string())
        .unwrap_or_default();
    request.messages.push(Message::user(format!(
        "Your previous answer could not be used ({first}). Answer again with only one JSON \
         object, no prose and no code fences, following this JSON schema: {schema_text}"
    )));
    // From here on, a failure carries what the unusable answers cost.
    let resp = lmm.chat(&request).await.map_err(|e| e.with_billed(usage))?;
    usage.add(&resp.usage);
    for note in resp.degraded {
        if !degraded.contains(&note) {
            degraded.push(note);
        }
    }
    let value = parse_reply::<T>(lmm, &resp.content).map_err(|e| e.with_billed(usage))?;
    Ok(JsonReply {
        value,
        usage,
        degraded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_plain_fenced_and_embedded_json() {
        assert_eq!(extract_json(r#"{"a":1}"#), Some(serde_json::json!({"a":1})));
        let fenced = "Sure!\n```json\n{\"a\": \"}\"}\n```\nDone.";
        assert_eq!(extract_json(fenced), Some(serde_json::json!({"a":"}"})));
        let prose = "I think {not json} but here: {\"b\": {\"c\": [1,2]}} ok";
        assert_eq!(
            extract_json(prose),
            Some(serde_json::json!({"b":{"c":[1,2]}}))
        );
        assert_eq!(extract_json("no json at all"), None);
        assert_eq!(extract_json("{\"unbalanced\": "), None);
        let stray = "Note: { opens nothing. He said \"hi. Answer: {\"a\": 1}";
        assert_eq!(extract_json(stray), Some(serde_json::json!({"a":1})));
    }

    /// The old extractor rescanned from every `{` to the end: 100,000 `{` cost about
    /// 5 * 10^9 steps. The work is now bounded by a small multiple of the length.
    #[test]
    fn degenerate_replies_cost_linear_work() {
        let n = 100_000;
        let cases = [
            "{".repeat(n),
            format!("{}{}", "{".repeat(n / 2), "}".repeat(n / 2)),
            "{x}".repeat(n / 3),
            format!("{}{{\"a\": 1}}", "{\"k\": ".repeat(n / 7)),
            format!("{}{{\"a\": 1}}", "{\"".repeat(n / 2)),
        ];
        for text in &cases {
            let (_, work) = extract_json_counted(text);
            assert!(
                work <= 8 * text.len() + 8192,
                "work {work} for {} bytes",
                text.len()
            );
        }
        let (found, _) = extract_json_counted(&format!("{}{{\"a\": 1}}", "{".repeat(n)));
        assert_eq!(found, Some(serde_json::json!({"a": 1})));
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        score: f32,
        note: Option<String>,
        inner: Inner,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        items: Vec<u8>,
    }

    #[test]
    fn strict_schema_closes_objects_and_requires_all_fields() {
        let s = strict_schema::<Sample>();
        assert!(s.get("$schema").is_none());
        assert_eq!(s["additionalProperties"], Value::Bool(false));
        let req: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(req.contains(&"note") && req.contains(&"inner"));
        assert_eq!(
            s["properties"]["inner"]["additionalProperties"],
            Value::Bool(false)
        );
        assert!(!s.to_string().contains("\"format\""));
    }
}
