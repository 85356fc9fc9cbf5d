//! What the memory keeps about one image, and the id it is kept under.

use iat2i_retrievers::{Candidate, License, LicensePolicy};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use crate::store::{Condition, FieldKind, Payload};

/// Where a remembered image came from.
pub const SOURCE_WEB: &str = "web";
/// An image indexed from a curated asset folder.
pub const SOURCE_LIBRARY: &str = "library";

/// The payload of one remembered image (one point per image and embedding model).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemoryRecord {
    /// The normalised image URL (the point id is derived from it and the model).
    pub url: String,
    /// The image URL as the engine gave it.
    pub image_url: String,
    /// The thumbnail that was downloaded, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    /// The page the image appears on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_page: Option<String>,
    /// The engine that found it (`library` for indexed assets).
    pub engine: String,
    /// `web` or `library`.
    pub source: String,
    /// Licence code, lower-case, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Licence version, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_version: Option<String>,
    /// Link to the licence deed, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_url: Option<String>,
    /// How restrictive a licence policy may be and still permit the image: the index in
    /// [`LicensePolicy::ALL`] of the strictest policy that does (0: only `any`).
    #[serde(default)]
    pub license_level: u8,
    /// Author or creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// Title or caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The queries it was found for.
    #[serde(default)]
    pub queries: Vec<String>,
    /// The entities it was found for (lower-case).
    #[serde(default)]
    pub entities: Vec<String>,
    /// Pixel width of the stored bytes.
    pub width: u32,
    /// Pixel height of the stored bytes.
    pub height: u32,
    /// MIME type of the stored bytes.
    pub mime: String,
    /// True when the stored bytes are the full-size original, not the engine's thumbnail.
    #[serde(default)]
    pub original: bool,
    /// SHA-256 of the bytes (the blob cache's key).
    pub content_hash: String,
    /// Perceptual hash (base64, image_hasher's gradient hash).
    pub phash: String,
    /// The embedding model.
    pub model: String,
    /// First seen, seconds since the Unix epoch.
    pub first_seen: i64,
    /// Last seen, seconds since the Unix epoch (freshness is judged by it).
    pub last_seen: i64,
    /// How often the selector chose it as the reference. This and the two counts below
    /// are totals as read: the plain counters of records written before the verdict tally
    /// existed, plus the entries of the point's [`VERDICTS`] map (see [`Tally`]).
    #[serde(default)]
    pub chosen: u64,
    /// How often the judge accepted an image generated with it.
    #[serde(default)]
    pub accepted: u64,
    /// How often the judge rejected it (asked for another reference or none).
    #[serde(default)]
    pub rejected: u64,
}

/// The payload field that holds the tally: a map from a unique id per event (a UUID v4) to
/// what happened (`chosen`, `accepted`, `rejected`).
///
/// Qdrant has no atomic increment, and a read-modify-write of a counter loses one of two
/// increments made at once (two batch shards judging the same reference). So every event
/// is a new key of its own, written with set-payload on `verdicts` alone: concurrent
/// writers touch different keys and both survive. Reading sums the entries and adds the
/// plain counters of older records.
pub const VERDICTS: &str = "verdicts";

/// One event in a remembered image's tally (see [`VERDICTS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tally {
    /// The selector chose it as the reference.
    Chosen,
    /// The judge accepted an image generated with it.
    Accepted,
    /// The judge rejected it.
    Rejected,
}

impl Tally {
    /// The value stored in the [`VERDICTS`] map.
    pub fn as_str(self) -> &'static str {
        match self {
            Tally::Chosen => "chosen",
            Tally::Accepted => "accepted",
            Tally::Rejected => "rejected",
        }
    }

    /// The fields to merge into [`VERDICTS`] to record one such event: a fresh UUID v4 key
    /// (never one another writer uses) with this event.
    pub fn entry(self) -> Payload {
        let mut m = Payload::new();
        m.insert(Uuid::new_v4().to_string(), self.as_str().into());
        m
    }
}

/// The counters the tally adds up; a payload merged over an existing point never carries them.
const COUNTERS: [&str; 4] = ["chosen", "accepted", "rejected", VERDICTS];

/// The payload fields the memory filters by, and how they are indexed.
pub(crate) fn indexed_fields() -> Vec<(String, FieldKind)> {
    [
        ("url", FieldKind::Keyword),
        ("engine", FieldKind::Keyword),
        ("source", FieldKind::Keyword),
        ("license", FieldKind::Keyword),
        ("license_level", FieldKind::Integer),
        ("entities", FieldKind::Keyword),
        ("last_seen", FieldKind::Integer),
    ]
    .into_iter()
    .map(|(k, t)| (k.to_string(), t))
    .collect()
}

/// At most this many queries and entities are kept per image (the newest win).
const MAX_TAGS: usize = 24;

impl MemoryRecord {
    /// The record as a store payload.
    pub fn to_payload(&self) -> Payload {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => Payload::new(),
        }
    }

    /// The record as fields to merge over a point that may already exist: everything but
    /// the counters and the tally, which only [`Tally::entry`] writes (so a merge never
    /// overwrites what other writers counted meanwhile).
    pub fn merge_payload(&self) -> Payload {
        let mut p = self.to_payload();
        for k in COUNTERS {
            p.remove(k);
        }
        p
    }

    /// A record read back from a store payload (`None` when it is not one of ours): the
    /// counts are the plain counters plus the entries of the [`VERDICTS`] tally.
    pub fn from_payload(payload: &Payload) -> Option<Self> {
        let mut plain = payload.clone();
        let tally = plain.remove(VERDICTS);
        let mut r: Self = serde_json::from_value(serde_json::Value::Object(plain)).ok()?;
        let entries = tally.as_ref().and_then(|t| t.as_object());
        for v in entries.into_iter().flat_map(|m| m.values()) {
            match v.as_str() {
                Some("chosen") => r.chosen += 1,
                Some("accepted") => r.accepted += 1,
                Some("rejected") => r.rejected += 1,
                _ => {}
            }
        }
        Some(r)
    }

    /// Fill provenance from `c` (engine, licence, creator, title, pages).
    pub(crate) fn set_provenance(&mut self, c: &Candidate) {
        self.url = normalize_url(&c.image_url);
        self.image_url = c.image_url.to_string();
        self.thumbnail_url = c.thumbnail_url.as_ref().map(Url::to_string);
        if c.source_page.is_some() {
            self.source_page = c.source_page.as_ref().map(Url::to_string);
        }
        self.engine = c.engine.clone();
        if let Some(l) = &c.license {
            self.license = Some(l.code.to_ascii_lowercase());
            self.license_version = l.version.clone();
            self.license_url = l.url.as_ref().map(Url::to_string);
        }
        self.license_level = license_level(c.license.as_ref());
        if c.creator.is_some() {
            self.creator = c.creator.clone();
        }
        if c.title.is_some() {
            self.title = c.title.clone();
        }
    }

    /// Note that the image was found (again) for `query` and `entities`.
    pub(crate) fn tag(&mut self, query: &str, entities: &[String]) {
        push_tag(&mut self.queries, query.trim());
        for e in entities {
            push_tag(&mut self.entities, &e.trim().to_lowercase());
        }
    }

    /// The candidate this record stands for, as a source of its own (`engine` is
    /// `memory`, or `library` for curated assets) with its stored provenance.
    pub fn to_candidate(&self) -> Option<Candidate> {
        let image_url = Url::parse(&self.image_url).ok()?;
        let engine = if self.source == SOURCE_LIBRARY {
            SOURCE_LIBRARY.to_string()
        } else {
            format!("memory/{}", self.engine)
        };
        let query = self.queries.last().cloned().unwrap_or_default();
        let mut c = Candidate::new(image_url, engine, query);
        c.thumbnail_url = self
            .thumbnail_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok());
        c.source_page = self.source_page.as_deref().and_then(|u| Url::parse(u).ok());
        c.title = self.title.clone();
        c.width = Some(self.width);
        c.height = Some(self.height);
        c.mime = Some(self.mime.clone());
        c.creator = self.creator.clone();
        c.license = self.license.as_ref().map(|code| License {
            code: code.clone(),
            version: self.license_version.clone(),
            url: self.license_url.as_deref().and_then(|u| Url::parse(u).ok()),
        });
        Some(c)
    }

    /// The judge's record as a ranking adjustment in -1..=1 (0 without verdicts).
    pub fn feedback(&self) -> f32 {
        let (a, r) = (self.accepted as f32, self.rejected as f32);
        (a - r) / (a + r + 1.0)
    }
}

fn push_tag(list: &mut Vec<String>, tag: &str) {
    if tag.is_empty() {
        return;
    }
    list.retain(|t| t != tag);
    list.push(tag.to_string());
    if list.len() > MAX_TAGS {
        list.remove(0);
    }
}

/// The URL an image is remembered under: lower-case scheme and host (the `url` crate does
/// that and drops default ports), no fragment, no `utm_*` tracking parameters, the other
/// query parameters sorted.
pub fn normalize_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_fragment(None);
    let mut pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| !k.to_ascii_lowercase().starts_with("utm_"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        u.set_query(None);
    } else {
        pairs.sort();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// The point id of `url` under `model`: a UUID v5 of both, so every worker computes the
/// same id and an image is stored once per model however many write it at once.
pub fn point_id(model: &str, url: &Url) -> Uuid {
    let key = format!("{model}\n{}", normalize_url(url));
    Uuid::new_v5(&Uuid::NAMESPACE_URL, key.as_bytes())
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The index in [`LicensePolicy::ALL`] of the strictest policy that permits `license` (the
/// policies form a chain, each permitting a subset of the one before).
pub(crate) fn license_level(license: Option<&License>) -> u8 {
    LicensePolicy::ALL
        .iter()
        .rposition(|p| p.permits(license))
        .unwrap_or(0) as u8
}

/// The store condition that keeps only images `policy` permits (`None` for `any`).
pub(crate) fn license_condition(policy: LicensePolicy) -> Option<Condition> {
    let level = LicensePolicy::ALL.iter().position(|p| *p == policy)?;
    (level > 0).then(|| Condition::Range {
        key: "license_level".into(),
        gte: Some(level as f64),
        lt: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_urls_share_one_id() {
        let a = Url::parse("HTTPS://Img.Example:443/a.jpg?b=2&a=1&utm_source=x#frag").unwrap();
        let b = Url::parse("https://img.example/a.jpg?a=1&b=2").unwrap();
        assert_eq!(normalize_url(&a), "https://img.example/a.jpg?a=1&b=2");
        assert_eq!(point_id("clip", &a), point_id("clip", &b));
        assert_ne!(point_id("clip", &a), point_id("other", &a));
    }

    #[test]
    fn records_round_trip_and_keep_recent_tags() {
        let mut r = MemoryRecord {
            image_url: "https://img.example/a.jpg".into(),
            ..MemoryRecord::default()
        };
        for i in 0..30 {
            r.tag(&format!("q{i}"), &["Graphorn".into()]);
        }
        assert_eq!(r.queries.len(), MAX_TAGS);
        assert_eq!(r.queries.last().map(String::as_str), Some("q29"));
        assert_eq!(r.entities, vec!["graphorn".to_string()]);
        let back = MemoryRecord::from_payload(&r.to_payload()).unwrap();
        assert_eq!(back, r);
        r.accepted = 3;
        assert!(r.feedback() > 0.5);
    }

    #[test]
    fn counts_add_plain_counters_and_tally_entries() {
        let old = MemoryRecord {
            chosen: 2,
            accepted: 1,
            ..MemoryRecord::default()
        };
        let mut payload = old.to_payload();
        let mut tally = Tally::Accepted.entry();
        tally.extend(Tally::Accepted.entry());
        tally.extend(Tally::Rejected.entry());
        tally.extend(Tally::Chosen.entry());
        tally.insert("x".into(), "unknown".into());
        payload.insert(VERDICTS.into(), serde_json::Value::Object(tally));
        let r = MemoryRecord::from_payload(&payload).unwrap();
        assert_eq!((r.chosen, r.accepted, r.rejected), (3, 3, 1));
        let merge = r.merge_payload();
        assert!(COUNTERS.iter().all(|k| !merge.contains_key(*k)));
        assert!(merge.contains_key("url"));
    }

    #[test]
    fn licence_levels_follow_the_policy_chain() {
        let lic = |code: &str| License {
            code: code.into(),
            version: Some("4.0".into()),
            url: None,
        };
        assert_eq!(license_level(None), 0);
        assert_eq!(license_level(Some(&lic("by-nc"))), 0);
        assert_eq!(license_level(Some(&lic("by-nd"))), 1);
        assert_eq!(license_level(Some(&lic("by-sa"))), 2);
        assert_eq!(license_level(Some(&lic("cc0"))), 3);
        assert_eq!(license_condition(LicensePolicy::Any), None);
        assert!(license_condition(LicensePolicy::PublicDomainOnly).is_some());
    }
}
