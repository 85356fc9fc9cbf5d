//! Tolerant readers for optional fields of paid answers (token counts in `usage`).
//!
//! A server that reports `"prompt_tokens": null`, `12.0`, `"12"` or leaves the field out
//! has still answered, and the call was billed: the answer must not be thrown away over
//! how it counts. Counts read here never fail: what cannot be read counts as 0 (and is
//! logged).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A token count: an integer, a float (rounded), a numeric string, or `null`/missing
/// (0). Negative or unreadable values count as 0.
pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.as_ref().map_or(0, to_count))
}

/// [`count`] for a `u32` field.
pub(crate) fn count_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    count(d).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn to_count(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .map(|f| f.round() as u64)
            })
            .unwrap_or(0),
        Value::String(s) => s.trim().parse::<f64>().map_or(0, |f| {
            if f.is_finite() && f > 0.0 {
                f.round() as u64
            } else {
                0
            }
        }),
        _ => 0,
    }
}

/// An optional object read as `T`, or `None` (logged) when it has a shape `T` cannot take:
/// a `usage` block that is a string or an array must not lose the answer it came with.
pub(crate) fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Option::<Value>::deserialize(d)?;
    Ok(value.filter(|v| !v.is_null()).and_then(|v| {
        serde_json::from_value(v)
            .map_err(|e| tracing::warn!(error = %e, "ignoring an unreadable usage block"))
            .ok()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Counts {
        #[serde(default, deserialize_with = "count")]
        n: u64,
    }

    fn n(json: &str) -> u64 {
        serde_json::from_str::<Counts>(json).unwrap().n
    }

    #[test]
    fn counts_tolerate_null_floats_strings_and_absence() {
        assert_eq!(n(r#"{"n": 12}"#), 12);
        assert_eq!(n(r#"{"n": null}"#), 0);
        assert_eq!(n(r#"{}"#), 0);
        assert_eq!(n(r#"{"n": 12.0}"#), 12);
        assert_eq!(n(r#"{"n": 11.6}"#), 12);
        assert_eq!(n(r#"{"n": "7"}"#), 7);
        assert_eq!(n(r#"{"n": -3}"#), 0);
        assert_eq!(n(r#"{"n": {"x": 1}}"#), 0);
        assert_eq!(n(r#"{"n": 1e300}"#), u64::MAX);
    }
}
