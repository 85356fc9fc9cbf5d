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
/// inside of a ```` ```json ```` fence, else the first balanced `{...}` (braces inside
/// strings are skipped). Servers that ignore `response_format` often wrap JSON in prose.
pub fn extract_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(trimmed) {
        return Some(v);
    }
    if let Some(inner) = fenced(trimmed)
        && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(inner.trim())
    {
        return Some(v);
    }
    let mut from = 0;
    while let Some(offset) = trimmed.get(from..).and_then(|t| t.find('{')) {
        let start = from + offset;
        if let Some(candidate) = balanced(trimmed, start)
            && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(candidate)
        {
            return Some(v);
        }
        from = start + 1;
    }
    None
}

fn fenced(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = text.get(start + 3..)?;
    let body_start = after.find('\n').map(|i| i + 1).unwrap_or(0);
    let body = after.get(body_start..)?;
    let end = body.find("```")?;
    body.get(..end)
}

/// The substring from `start` (a `{`) to its matching `}`.
fn balanced(text: &str, start: usize) -> Option<&str> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, ch) in text.get(start..)?.char_indices() {
        if in_string {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return text.get(start..start + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// A parsed structured answer and the tokens it cost (retries included).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonReply<T> {
    /// The parsed value.
    pub value: T,
    /// Token counts of every call made to get it.
    pub usage: Usage,
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
    let first = match lmm.chat(&request).await {
        Ok(resp) => {
            usage.add(&resp.usage);
            match parse_reply::<T>(lmm, &resp.content) {
                Ok(value) => return Ok(JsonReply { value, usage }),
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
    let resp = lmm.chat(&request).await?;
    usage.add(&resp.usage);
    let value = parse_reply::<T>(lmm, &resp.content)?;
    Ok(JsonReply { value, usage })
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
