use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use super::normalize::{bing_thumb_id, dedup_keys};
use super::*;
use crate::{SearchError, SearchQuery};

fn u(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn normalisation_ignores_scheme_www_tracking_order_and_encoding() {
    let a = normalize_url(&u(
        "https://www.example.org/img/cat%20one.jpg?b=2&a=1&utm_source=x&fbclid=y#top",
    ));
    let b = normalize_url(&u("http://example.org/img/cat one.jpg?a=1&b=2&gclid=z"));
    assert_eq!(a, b);
    assert_ne!(
        a,
        normalize_url(&u("https://example.org/img/cat%20one.jpg?a=1&b=3"))
    );
    assert_ne!(
        normalize_url(&u("https://example.org:8443/a.jpg")),
        normalize_url(&u("https://example.org/a.jpg"))
    );
    assert_eq!(
        normalize_url(&u("https://example.org:443/a.jpg")),
        normalize_url(&u("http://example.org:80/a.jpg"))
    );
}

#[test]
fn wikimedia_thumbnails_map_to_their_original() {
    let thumb = u(
        "https://upload.wikimedia.org/wikipedia/commons/thumb/4/4f/Xenopus_laevis_%28cropped%29.jpg/640px-Xenopus_laevis_%28cropped%29.jpg",
    );
    let orig =
        u("https://upload.wikimedia.org/wikipedia/commons/4/4f/Xenopus_laevis_(cropped).jpg");
    assert_eq!(normalize_url(&thumb), normalize_url(&orig));
    let other = u("https://upload.wikimedia.org/wikipedia/commons/4/4f/Other.jpg");
    assert_ne!(normalize_url(&other), normalize_url(&orig));
}

#[test]
fn proxies_unwrap_and_bing_thumbnails_share_a_key() {
    let ddg = u(
        "https://external-content.duckduckgo.com/iu/?u=https%3A%2F%2Fwww.example.org%2Fa.jpg&f=1&nofb=1",
    );
    assert_eq!(
        normalize_url(&ddg),
        normalize_url(&u("https://example.org/a.jpg"))
    );
    let sx = u("http://localhost:8888/image_proxy?url=https%3A%2F%2Fexample.org%2Fa.jpg&h=abc");
    assert_eq!(
        normalize_url(&sx),
        normalize_url(&u("https://example.org/a.jpg"))
    );
    let t1 = u("https://tse2.mm.bing.net/th?id=OIP.AbC123&pid=Api");
    let t2 = u("https://th.bing.com/th/id/OIP.AbC123?w=300&h=200&c=7");
    assert_eq!(bing_thumb_id(&t1).as_deref(), Some("OIP.AbC123"));
    assert_eq!(bing_thumb_id(&t2).as_deref(), Some("OIP.AbC123"));
    let k1 = dedup_keys(&u("https://a.example/x.jpg"), Some(&t1));
    let k2 = dedup_keys(&u("https://b.example/y.jpg"), Some(&t2));
    assert!(k1.iter().any(|k| k2.contains(k)));
    // An ordinary thumbnail is no evidence that two images are the same.
    let k3 = dedup_keys(
        &u("https://c.example/z.jpg"),
        Some(&u("https://cdn.example/t.jpg")),
    );
    assert_eq!(k3.len(), 1);
}

/// An engine that answers from a fixed list, fails, or hangs.
struct Fake {
    name: &'static str,
    urls: Vec<&'static str>,
    mode: Mode,
}

#[derive(Clone, Copy)]
enum Mode {
    Answer,
    Fail,
    Hang,
}

#[async_trait]
impl ImageSearch for Fake {
    fn name(&self) -> &str {
        self.name
    }
    async fn search(&self, query: &str, _: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
        match self.mode {
            Mode::Fail => Err(SearchError::Blocked {
                engine: self.name.into(),
                detail: "served a CAPTCHA".into(),
            }),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Vec::new())
            }
            Mode::Answer => Ok(self
                .urls
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut c = Candidate::new(u(s), self.name, query);
                    c.rank = i as u32;
                    c
                })
                .collect()),
        }
    }
}

fn fake(name: &'static str, urls: Vec<&'static str>, mode: Mode) -> Arc<dyn ImageSearch> {
    Arc::new(Fake { name, urls, mode })
}

#[tokio::test]
async fn fuses_by_reciprocal_rank_and_removes_duplicates() {
    let a = fake(
        "a",
        vec![
            "https://x.org/1.jpg",
            "https://x.org/2.jpg",
            "https://x.org/3.jpg",
        ],
        Mode::Answer,
    );
    let b = fake(
        "b",
        vec!["http://www.x.org/3.jpg?utm_medium=s", "https://x.org/4.jpg"],
        Mode::Answer,
    );
    let multi = MultiSearch::new(vec![a, b]);
    let r = multi
        .search(&["q".to_string()], &SearchQuery::default())
        .await;
    let urls: Vec<&str> = r.candidates.iter().map(|c| c.image_url.as_str()).collect();
    // 3.jpg: 1/63 + 1/61 beats 1.jpg: 1/61.
    assert_eq!(urls.first(), Some(&"https://x.org/3.jpg"));
    assert_eq!(urls.len(), 4, "{urls:?}");
    let top = &r.candidates[0];
    assert!((top.fused_score - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-12);
    assert!(
        r.candidates
            .windows(2)
            .all(|w| w[0].fused_score >= w[1].fused_score)
    );
    assert_eq!(r.runs.len(), 2);
    assert!(r.runs.iter().all(|run| run.error.is_none()));
}

#[tokio::test]
async fn failing_and_hanging_engines_are_reported_not_fatal() {
    let ok = fake("ok", vec!["https://x.org/1.jpg"], Mode::Answer);
    let bad = fake("bad", vec![], Mode::Fail);
    let slow = fake("slow", vec![], Mode::Hang);
    let multi = MultiSearch::new(vec![ok, bad, slow]).with_deadline(Duration::from_millis(100));
    let queries = vec!["one".to_string(), "two".to_string()];
    let r = multi.search(&queries, &SearchQuery::default()).await;
    assert_eq!(r.runs.len(), 6);
    let names: Vec<(&str, &str)> = r
        .runs
        .iter()
        .map(|x| (x.engine.as_str(), x.query.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("ok", "one"),
            ("bad", "one"),
            ("slow", "one"),
            ("ok", "two"),
            ("bad", "two"),
            ("slow", "two")
        ]
    );
    let bad_run = r.runs.iter().find(|x| x.engine == "bad").unwrap();
    assert!(bad_run.error.as_deref().unwrap().contains("CAPTCHA"));
    let slow_run = r.runs.iter().find(|x| x.engine == "slow").unwrap();
    assert!(slow_run.error.as_deref().unwrap().contains("deadline"));
    // The same image found by two queries is one candidate scored for both lists.
    assert_eq!(r.candidates.len(), 1);
    assert!((r.candidates[0].fused_score - 2.0 / 61.0).abs() < 1e-12);
    assert!(!r.all_failed());
}

#[tokio::test]
async fn merged_candidates_prefer_the_original_and_keep_metadata() {
    struct Two;
    #[async_trait]
    impl ImageSearch for Two {
        fn name(&self) -> &str {
            "two"
        }
        async fn search(&self, q: &str, _: &SearchQuery) -> Result<Vec<Candidate>, SearchError> {
            let mut thumb = Candidate::new(
                u("https://upload.wikimedia.org/wikipedia/commons/thumb/a/ab/F.jpg/320px-F.jpg"),
                "two",
                q,
            );
            thumb.title = Some("F".into());
            let mut orig = Candidate::new(
                u("https://upload.wikimedia.org/wikipedia/commons/a/ab/F.jpg"),
                "two",
                q,
            );
            orig.width = Some(4000);
            orig.height = Some(3000);
            orig.rank = 1;
            Ok(vec![thumb, orig])
        }
    }
    let multi = MultiSearch::new(vec![Arc::new(Two)]);
    let r = multi.search(&["q".into()], &SearchQuery::default()).await;
    assert_eq!(r.candidates.len(), 1);
    let c = &r.candidates[0];
    assert_eq!(
        c.image_url.as_str(),
        "https://upload.wikimedia.org/wikipedia/commons/a/ab/F.jpg"
    );
    assert!(
        c.thumbnail_url
            .as_ref()
            .unwrap()
            .as_str()
            .contains("/thumb/")
    );
    assert_eq!(
        (c.width, c.height, c.title.as_deref()),
        (Some(4000), Some(3000), Some("F"))
    );
    // Best rank within its list counts once.
    assert!((c.fused_score - 1.0 / 61.0).abs() < 1e-12);
}

#[tokio::test]
async fn no_engines_or_no_queries_give_an_empty_result() {
    let r = MultiSearch::new(vec![])
        .search(&["q".into()], &SearchQuery::default())
        .await;
    assert!(r.candidates.is_empty() && r.runs.is_empty() && !r.all_failed());
    let e = fake("a", vec!["https://x.org/1.jpg"], Mode::Answer);
    let r = MultiSearch::new(vec![e])
        .search(&[], &SearchQuery::default())
        .await;
    assert!(r.candidates.is_empty() && r.runs.is_empty());
}

#[tokio::test]
async fn the_search_future_is_send_so_callers_can_spawn_it() {
    let multi = MultiSearch::new(vec![fake("a", vec!["https://x.org/1.jpg"], Mode::Answer)]);
    let handle = tokio::spawn(async move {
        multi
            .search(&["q".to_string()], &SearchQuery::default())
            .await
    });
    assert_eq!(handle.await.unwrap().candidates.len(), 1);
}
