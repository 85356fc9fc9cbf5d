//! One test suite for every vector store — the exact in-memory store, qdrant-edge, and a
//! real Qdrant server (`../shared/bin/qdrant`): rankings and scores agree with brute-force
//! cosine, filters hold, upserts replace, reads return vectors and pages, deletes by filter
//! remove exactly what they match, a missing collection reads as empty, inserts keep what
//! exists, and set-payload changes only the fields it names.

mod common;

use std::collections::BTreeSet;

use iat2i_selectors::embed::cosine;
use iat2i_selectors::store::{CollectionSpec, FieldKind, Payload};
use iat2i_selectors::{Condition, EdgeStore, MemoryStore, StoreFilter, StorePoint, VectorStore};
use serde_json::json;
use uuid::Uuid;

const DIM: usize = 32;

/// Deterministic pseudo-random vectors (xorshift), components in -1..1.
fn vectors(seed: u64, n: usize) -> Vec<Vec<f32>> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            (0..DIM)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 20_000) as f32 / 10_000.0 - 1.0
                })
                .collect()
        })
        .collect()
}

fn spec(name: &str) -> CollectionSpec {
    CollectionSpec {
        name: name.into(),
        dim: DIM,
        indexes: vec![
            ("group".into(), FieldKind::Keyword),
            ("tags".into(), FieldKind::Keyword),
            ("open".into(), FieldKind::Bool),
            ("seen".into(), FieldKind::Integer),
        ],
    }
}

fn id(i: usize) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("https://img.example/{i}.jpg").as_bytes(),
    )
}

fn payload(i: usize) -> Payload {
    let v = json!({
        "i": i,
        "group": if i.is_multiple_of(2) { "even" } else { "odd" },
        "tags": if i.is_multiple_of(3) { vec!["fox", "snow"] } else { vec!["cat"] },
        "open": i.is_multiple_of(4),
        "seen": 1000 + i as i64,
    });
    match v {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn index_of(p: &Payload) -> usize {
    p.get("i").and_then(|v| v.as_u64()).unwrap() as usize
}

/// Brute force: indices of `all` passing `keep`, best cosine to `q` first, top `limit`.
fn exact(
    all: &[Vec<f32>],
    q: &[f32],
    keep: impl Fn(usize) -> bool,
    limit: usize,
) -> Vec<(usize, f32)> {
    let mut v: Vec<(usize, f32)> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, v)| (i, cosine(v, q)))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.truncate(limit);
    v
}

async fn check_search(
    store: &dyn VectorStore,
    c: &str,
    all: &[Vec<f32>],
    f: &StoreFilter,
    keep: impl Fn(usize) -> bool + Copy,
) {
    for q in vectors(3, 4) {
        let hits = store.search(c, &q, f, 10).await.unwrap();
        let want = exact(all, &q, keep, 10);
        let got: Vec<usize> = hits.iter().map(|h| index_of(&h.payload)).collect();
        let want_ids: Vec<usize> = want.iter().map(|w| w.0).collect();
        assert_eq!(
            got,
            want_ids,
            "{}: ranking differs from brute force",
            store.name()
        );
        for (h, w) in hits.iter().zip(&want) {
            assert!(
                (h.score - w.1).abs() < 1e-4,
                "{}: score {} vs {}",
                store.name(),
                h.score,
                w.1
            );
            assert_eq!(h.id, id(w.0));
        }
    }
}

async fn suite(store: &dyn VectorStore) {
    let c = format!("suite_{}", Uuid::new_v4().simple());
    assert!(
        store
            .search(&c, &[0.5; DIM], &StoreFilter::all(), 5)
            .await
            .unwrap()
            .is_empty(),
        "{}: a missing collection searches as empty",
        store.name()
    );
    assert_eq!(store.count(&c, &StoreFilter::all()).await.unwrap(), 0);
    assert!(store.retrieve(&c, &[id(1)]).await.unwrap().is_empty());

    store.ensure(&spec(&c)).await.unwrap();
    store.ensure(&spec(&c)).await.unwrap(); // idempotent
    let all = vectors(1, 60);
    let points: Vec<StorePoint> = all
        .iter()
        .enumerate()
        .map(|(i, v)| StorePoint {
            id: id(i),
            vector: v.clone(),
            payload: payload(i),
        })
        .collect();
    store.upsert(&c, points).await.unwrap();
    assert!(store.collections().await.unwrap().contains(&c));
    assert_eq!(store.count(&c, &StoreFilter::all()).await.unwrap(), 60);

    // Unfiltered and filtered rankings agree with brute force.
    check_search(store, &c, &all, &StoreFilter::all(), |_| true).await;
    let even = StoreFilter::all().with(Condition::Keyword("group".into(), "even".into()));
    check_search(store, &c, &all, &even, |i| i % 2 == 0).await;
    let fox_open = StoreFilter::all()
        .with(Condition::AnyKeyword(
            "tags".into(),
            vec!["fox".into(), "dog".into()],
        ))
        .without(Condition::Bool("open".into(), true));
    check_search(store, &c, &all, &fox_open, |i| i % 3 == 0 && i % 4 != 0).await;
    let recent = StoreFilter::all().with(Condition::Range {
        key: "seen".into(),
        gte: Some(1040.0),
        lt: None,
    });
    check_search(store, &c, &all, &recent, |i| i >= 40).await;
    let either = StoreFilter::all().with(Condition::Either(vec![
        Condition::Range {
            key: "seen".into(),
            gte: None,
            lt: Some(1010.0),
        },
        Condition::Keyword("tags".into(), "snow".into()),
    ]));
    check_search(store, &c, &all, &either, |i| i < 10 || i % 3 == 0).await;
    assert_eq!(store.count(&c, &recent).await.unwrap(), 20);

    // Retrieve returns vectors and payloads; unknown ids are skipped.
    let got = store.retrieve(&c, &[id(5), id(999), id(7)]).await.unwrap();
    let mut got_i: Vec<usize> = got.iter().map(|p| index_of(&p.payload)).collect();
    got_i.sort();
    assert_eq!(got_i, vec![5, 7]);
    for p in &got {
        let want = &all[index_of(&p.payload)];
        assert!(
            cosine(&p.vector, want) > 0.9999,
            "{}: vector kept",
            store.name()
        );
    }

    // Scrolling pages through exactly the matching points.
    let mut seen = BTreeSet::new();
    let mut offset = None;
    loop {
        let (page, next) = store.scroll(&c, &even, offset, 7).await.unwrap();
        assert!(page.len() <= 7);
        for p in page {
            assert!(seen.insert(index_of(&p.payload)), "no point twice");
        }
        match next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (0..60).filter(|i| i % 2 == 0).collect());

    // Upserting the same id replaces the point.
    let q = vectors(4, 1).remove(0);
    store
        .upsert(
            &c,
            vec![StorePoint {
                id: id(7),
                vector: q.clone(),
                payload: payload(7),
            }],
        )
        .await
        .unwrap();
    let hits = store
        .search(&c, &q, &StoreFilter::all(), 100)
        .await
        .unwrap();
    assert_eq!(hits.len(), 60, "{}: replaced, not added", store.name());
    assert_eq!(index_of(&hits[0].payload), 7);
    assert!((hits[0].score - 1.0).abs() < 1e-4);

    // A point of the wrong size is refused.
    let wrong = StorePoint {
        id: id(100),
        vector: vec![1.0; DIM + 1],
        payload: payload(100),
    };
    assert!(store.upsert(&c, vec![wrong]).await.is_err());

    // Delete by filter removes exactly the matching points.
    store.delete(&c, &even).await.unwrap();
    assert_eq!(store.count(&c, &StoreFilter::all()).await.unwrap(), 30);
    assert_eq!(store.count(&c, &even).await.unwrap(), 0);
}

/// Partial writes: an insert never touches a point that exists, and set-payload changes
/// only the fields (or the nested object's keys) it names.
async fn partial_writes(store: &dyn VectorStore) {
    let c = "partial";
    store.ensure(&spec(c)).await.unwrap();
    let v = vectors(5, 2);
    let point = |i: usize, tag: &str| {
        let mut p = payload(i);
        p.insert("tag".into(), json!(tag));
        StorePoint {
            id: id(i),
            vector: v[i].clone(),
            payload: p,
        }
    };
    store.upsert(c, vec![point(0, "first")]).await.unwrap();
    store
        .insert(c, vec![point(0, "second"), point(1, "new")])
        .await
        .unwrap();
    let tag_of = |p: &StorePoint| p.payload["tag"].as_str().unwrap().to_string();
    let read = |i: usize| async move { store.retrieve(c, &[id(i)]).await.unwrap().remove(0) };
    assert_eq!(tag_of(&read(0).await), "first", "insert keeps what exists");
    assert_eq!(tag_of(&read(1).await), "new", "insert adds what is new");

    let fields = |v: serde_json::Value| v.as_object().unwrap().clone();
    store
        .set_payload(c, id(0), Some("tally"), fields(json!({"a": "x"})))
        .await
        .unwrap();
    store
        .set_payload(c, id(0), Some("tally"), fields(json!({"b": "y"})))
        .await
        .unwrap();
    store
        .set_payload(c, id(0), None, fields(json!({"tag": "merged"})))
        .await
        .unwrap();
    let p = read(0).await;
    assert_eq!(
        p.payload["tally"],
        json!({"a": "x", "b": "y"}),
        "keys merge"
    );
    assert_eq!(tag_of(&p), "merged");
    assert_eq!(p.payload["group"], json!("even"), "other fields stay");
    assert!(cosine(&p.vector, &v[0]) > 0.999, "the vector stays");
    assert!(
        store
            .set_payload(c, id(7), None, fields(json!({"tag": "ghost"})))
            .await
            .is_err(),
        "a missing point is an error"
    );
}

#[tokio::test]
async fn memory_store_passes_the_suite() {
    suite(&MemoryStore::new()).await;
    partial_writes(&MemoryStore::new()).await;
}

#[tokio::test]
async fn edge_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::new(dir.path());
    suite(&store).await;
    let names = store.collections().await.unwrap();
    assert_eq!(names.len(), 1);
    partial_writes(&store).await;
    assert!(
        dir.path().join(&names[0]).is_dir(),
        "one shard per collection"
    );
}

#[tokio::test]
async fn edge_store_persists_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let v = vectors(9, 3);
    let c = "persist";
    {
        let store = EdgeStore::new(dir.path());
        store.ensure(&spec(c)).await.unwrap();
        let pts = v
            .iter()
            .enumerate()
            .map(|(i, x)| StorePoint {
                id: id(i),
                vector: x.clone(),
                payload: payload(i),
            })
            .collect();
        store.upsert(c, pts).await.unwrap();
    }
    let store = EdgeStore::new(dir.path());
    let hits = store
        .search(c, &v[2], &StoreFilter::all(), 3)
        .await
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(index_of(&hits[0].payload), 2);
}

#[cfg(feature = "qdrant-server")]
#[tokio::test]
async fn qdrant_server_store_passes_the_suite() {
    let Some(server) = common::qdrant::QdrantServer::start() else {
        return;
    };
    let store = iat2i_selectors::QdrantStore::new(&server.url(), None).unwrap();
    suite(&store).await;
    partial_writes(&store).await;
}

#[cfg(feature = "qdrant-server")]
#[tokio::test]
async fn qdrant_server_store_sends_the_api_key_and_never_shows_it() {
    let Some(server) = common::qdrant::QdrantServer::start_with_key(Some("s3cret-key")) else {
        return;
    };
    let without = iat2i_selectors::QdrantStore::new(&server.url(), None).unwrap();
    assert!(
        without.ensure(&spec("keyed")).await.is_err(),
        "the server wants the key"
    );
    let with = iat2i_selectors::QdrantStore::new(&server.url(), Some("s3cret-key".into())).unwrap();
    with.ensure(&spec("keyed")).await.unwrap();
    assert!(
        with.collections()
            .await
            .unwrap()
            .contains(&"keyed".to_string())
    );
    assert!(!format!("{with:?}").contains("s3cret"));
}
