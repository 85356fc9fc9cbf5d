//! Payload filters, one small language every store translates (and the exact store evaluates).

use serde_json::{Value, json};

use super::Payload;

/// One condition on a payload field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// The field equals this string (or, for an array field, contains it).
    Keyword(String, String),
    /// The field (or one element of an array field) equals one of these strings.
    AnyKeyword(String, Vec<String>),
    /// The boolean field has this value.
    Bool(String, bool),
    /// The numeric field is `>= gte` and `< lt` (either bound optional).
    Range {
        /// The field.
        key: String,
        /// Lower bound, inclusive.
        gte: Option<f64>,
        /// Upper bound, exclusive.
        lt: Option<f64>,
    },
    /// At least one of these holds.
    Either(Vec<Condition>),
}

/// Conditions that must all hold, and conditions none of which may hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFilter {
    /// Every one of these must hold.
    pub must: Vec<Condition>,
    /// None of these may hold.
    pub must_not: Vec<Condition>,
}

impl StoreFilter {
    /// Matches every point.
    pub fn all() -> Self {
        Self::default()
    }

    /// Add a condition that must hold.
    pub fn with(mut self, c: Condition) -> Self {
        self.must.push(c);
        self
    }

    /// Add a condition that must not hold.
    pub fn without(mut self, c: Condition) -> Self {
        self.must_not.push(c);
        self
    }

    /// True when `payload` passes (the exact store's evaluation).
    pub fn matches(&self, payload: &Payload) -> bool {
        self.must.iter().all(|c| c.matches(payload))
            && !self.must_not.iter().any(|c| c.matches(payload))
    }

    /// The filter in Qdrant's JSON form (for qdrant-edge, whose `Filter` deserialises it).
    pub(crate) fn to_qdrant_json(&self) -> Value {
        let conv = |cs: &[Condition]| cs.iter().map(Condition::to_qdrant_json).collect::<Vec<_>>();
        json!({ "must": conv(&self.must), "must_not": conv(&self.must_not) })
    }
}

impl Condition {
    fn matches(&self, payload: &Payload) -> bool {
        let values = |key: &str| -> Vec<Value> {
            match payload.get(key) {
                Some(Value::Array(a)) => a.clone(),
                Some(v) => vec![v.clone()],
                None => Vec::new(),
            }
        };
        match self {
            Condition::Keyword(k, s) => values(k).iter().any(|v| v.as_str() == Some(s)),
            Condition::AnyKeyword(k, set) => values(k)
                .iter()
                .any(|v| v.as_str().is_some_and(|v| set.iter().any(|s| s == v))),
            Condition::Bool(k, b) => values(k).iter().any(|v| v.as_bool() == Some(*b)),
            Condition::Range { key, gte, lt } => values(key).iter().any(|v| {
                v.as_f64()
                    .is_some_and(|x| gte.is_none_or(|g| x >= g) && lt.is_none_or(|l| x < l))
            }),
            Condition::Either(cs) => cs.iter().any(|c| c.matches(payload)),
        }
    }

    fn to_qdrant_json(&self) -> Value {
        match self {
            Condition::Keyword(k, s) => json!({ "key": k, "match": { "value": s } }),
            Condition::AnyKeyword(k, set) => json!({ "key": k, "match": { "any": set } }),
            Condition::Bool(k, b) => json!({ "key": k, "match": { "value": b } }),
            Condition::Range { key, gte, lt } => {
                json!({ "key": key, "range": { "gte": gte, "lt": lt } })
            }
            Condition::Either(cs) => {
                json!({ "should": cs.iter().map(Condition::to_qdrant_json).collect::<Vec<_>>() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_evaluation_follows_qdrant_semantics() {
        let p: Payload = serde_json::from_value(json!({
            "license": "cc-by", "entities": ["graphorn", "hogwarts"], "open": true, "seen": 100
        }))
        .unwrap();
        let f = StoreFilter::all()
            .with(Condition::Keyword("entities".into(), "graphorn".into()))
            .with(Condition::Bool("open".into(), true))
            .with(Condition::Range {
                key: "seen".into(),
                gte: Some(50.0),
                lt: None,
            });
        assert!(f.matches(&p));
        let f2 = f.clone().without(Condition::AnyKeyword(
            "license".into(),
            vec!["cc-by".into()],
        ));
        assert!(!f2.matches(&p));
        let old = StoreFilter::all().with(Condition::Range {
            key: "seen".into(),
            gte: Some(101.0),
            lt: None,
        });
        assert!(!old.matches(&p));
        assert!(
            !StoreFilter::all()
                .with(Condition::Keyword("missing".into(), "x".into()))
                .matches(&p)
        );
    }
}
