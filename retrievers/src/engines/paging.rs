//! Gathering an engine's candidates over its result pages.

use std::collections::HashSet;

use reqwest::header::HeaderMap;
use url::Url;

use super::endpoint::Endpoint;
use crate::{Candidate, HttpResponse, SearchError};

/// Where a paged search starts and how far it may go.
#[derive(Debug)]
pub(crate) struct Paging {
    first: Url,
    headers: HeaderMap,
    limit: usize,
    max_pages: usize,
}

impl Paging {
    /// Start at `first`; gather up to `limit` candidates from up to `max_pages` pages.
    pub(crate) fn new(first: Url, limit: usize, max_pages: usize) -> Self {
        Paging {
            first,
            headers: HeaderMap::new(),
            limit,
            max_pages,
        }
    }

    /// Send `headers` with every page.
    pub(crate) fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }
}

/// Fetch pages from `site` until the limit, the page budget, a page that adds nothing
/// new, or a page without a next one. `parse` reads page `n` (from 0) into its
/// candidates and the next page's URL.
///
/// The first page's failure is the search's failure; a later one ends paging and keeps
/// what earlier pages gave.
pub(crate) async fn gather<P>(
    site: &Endpoint,
    paging: Paging,
    parse: P,
) -> Result<Vec<Candidate>, SearchError>
where
    P: Fn(&HttpResponse, usize) -> Result<(Vec<Candidate>, Option<Url>), SearchError>,
{
    let mut pages = Pages::new(site.engine(), paging.limit);
    let mut url = paging.first;
    for n in 0..paging.max_pages {
        let outcome = site.get(&url, paging.headers.clone()).await;
        let Some((found, next)) = pages.accept(outcome.and_then(|resp| parse(&resp, n)))? else {
            break;
        };
        let added = pages.add(found);
        match next {
            Some(next) if added > 0 && !pages.is_full() => url = next,
            _ => break,
        }
    }
    Ok(pages.into_candidates())
}

/// Candidates gathered over result pages: each image once, ranked in the order
/// found, no more than the limit.
#[derive(Debug)]
struct Pages {
    engine: &'static str,
    limit: usize,
    out: Vec<Candidate>,
    seen: HashSet<Url>,
    received: usize,
}

impl Pages {
    /// Gather up to `limit` candidates for `engine`.
    fn new(engine: &'static str, limit: usize) -> Self {
        Pages {
            engine,
            limit,
            out: Vec::new(),
            seen: HashSet::new(),
            received: 0,
        }
    }

    /// One page's outcome. The first page's failure is the search's failure; a later
    /// page's failure ends paging (with a warning) and keeps what earlier pages gave,
    /// as `Ok(None)`.
    fn accept<T>(&mut self, outcome: Result<T, SearchError>) -> Result<Option<T>, SearchError> {
        match outcome {
            Ok(page) => {
                self.received += 1;
                Ok(Some(page))
            }
            Err(e) if self.received > 0 => {
                let page = self.received + 1;
                tracing::warn!(engine = self.engine, error = %e, page, "stopping paging");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Add one page's candidates, skipping images already found and stopping at the
    /// limit; returns how many were added.
    fn add(&mut self, found: Vec<Candidate>) -> usize {
        let before = self.out.len();
        for mut c in found {
            if self.is_full() {
                break;
            }
            if self.seen.insert(c.image_url.clone()) {
                c.rank = self.out.len() as u32;
                self.out.push(c);
            }
        }
        self.out.len() - before
    }

    /// True once the limit is reached.
    fn is_full(&self) -> bool {
        self.out.len() >= self.limit
    }

    /// The candidates gathered.
    fn into_candidates(self) -> Vec<Candidate> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(u: &str) -> Candidate {
        Candidate::new(Url::parse(u).unwrap(), "t", "q")
    }

    fn fail() -> SearchError {
        SearchError::Parse {
            engine: "t".into(),
            detail: "x".into(),
        }
    }

    #[test]
    fn dedups_ranks_and_stops_at_the_limit() {
        let mut p = Pages::new("t", 3);
        assert_eq!(
            p.add(vec![c("http://a/1"), c("http://a/2"), c("http://a/1")]),
            2
        );
        assert_eq!(p.add(vec![c("http://a/2")]), 0);
        assert!(!p.is_full());
        assert_eq!(p.add(vec![c("http://a/3"), c("http://a/4")]), 1);
        assert!(p.is_full());
        let out = p.into_candidates();
        let ranks: Vec<u32> = out.iter().map(|c| c.rank).collect();
        assert_eq!(ranks, [0, 1, 2]);
        assert_eq!(out[2].image_url.as_str(), "http://a/3");
    }

    #[test]
    fn only_the_first_page_failure_fails_the_search() {
        let mut p = Pages::new("t", 3);
        assert!(p.accept::<()>(Err(fail())).is_err());
        assert_eq!(p.accept(Ok(7)).unwrap(), Some(7));
        assert_eq!(p.accept::<u8>(Err(fail())).unwrap(), None);
    }
}
