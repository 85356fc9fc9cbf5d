//! Stub search and selection: the real selector needs a CLIP model.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use iat2i::prelude::*;
use iat2i::retrievers::{License, SearchError};
use iat2i::selectors::{SelectError, StageScores};
use url::Url;

use super::fixture_bytes;

/// A search engine that returns one candidate per query and remembers the queries.
#[derive(Default, Clone)]
pub struct StubSearch {
    pub queries: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl ImageSearch for StubSearch {
    fn name(&self) -> &str {
        "stub"
    }
    async fn search(&self, query: &str, _: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        self.queries.lock().unwrap().push(query.to_string());
        let slug: String = query.chars().filter(char::is_ascii_alphanumeric).collect();
        let mut c = Candidate::new(
            Url::parse(&format!("https://upload.example.org/{slug}.png")).unwrap(),
            "stub",
            query,
        );
        c.source_page = Some(Url::parse(&format!("https://example.org/wiki/{slug}")).unwrap());
        c.title = Some(format!("{query} (photo)"));
        c.license = Some(License {
            code: "cc-by-sa".into(),
            version: Some("4.0".into()),
            url: None,
        });
        c.creator = Some("A. Photographer".into());
        Ok(vec![c])
    }
}

pub fn reference(bytes: Bytes, url: &str, query: &str) -> Reference {
    let mut c = Candidate::new(Url::parse(url).unwrap(), "stub", query);
    c.source_page = Some(Url::parse("https://example.org/wiki/Graphorn").unwrap());
    c.license = Some(License {
        code: "cc-by-sa".into(),
        version: Some("4.0".into()),
        url: None,
    });
    Reference {
        bytes,
        source: iat2i::selectors::ReferenceSource::Original,
        source_note: None,
        mime: "image/png".into(),
        width: 8,
        height: 8,
        candidate: c,
        scores: StageScores {
            combined: Some(0.8),
            ..StageScores::default()
        },
    }
}

/// A selector that returns reference A with alternate B, remembering each request.
#[derive(Default, Clone)]
pub struct StubSelector {
    pub requests: Arc<Mutex<Vec<SelectionRequest>>>,
}

#[async_trait]
impl Selector for StubSelector {
    async fn select(
        &self,
        request: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        self.requests.lock().unwrap().push(request.clone());
        let n = self.requests.lock().unwrap().len();
        let q = candidates
            .first()
            .map(|c| c.query.clone())
            .unwrap_or_default();
        Ok(Selection {
            best: reference(
                fixture_bytes("reference_a.png"),
                &format!("https://upload.example.org/a{n}.png"),
                &q,
            ),
            alternates: vec![reference(
                fixture_bytes("reference_b.png"),
                &format!("https://upload.example.org/b{n}.png"),
                &q,
            )],
            ranked: Vec::new(),
            dropped: Vec::new(),
            stages: Vec::new(),
            judge_reason: Some("the clearest picture".into()),
            memory: Default::default(),
        })
    }
}
