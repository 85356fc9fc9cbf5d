//! The cluster layout of `deploy/k8s/`, run on one machine: each shard container's command
//! line and environment, read from the manifest, started as a local process per
//! `JOB_COMPLETION_INDEX`, all against one real Qdrant server (`../shared/bin/qdrant`),
//! one output folder and one cache (the manifest's claims), with the OpenAI and engine
//! stand-ins; then the summary job's command. A second night recalls what the first
//! stored instead of downloading it again.
//!
//! Needs ONNX Runtime and the Qdrant binary: says it skipped without them, fails under
//! `CI=true`.

mod common;
// Shared with the selectors' tests; this test uses part of it.
#[allow(dead_code)]
#[path = "../selectors/tests/common/qdrant.rs"]
mod qdrant;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use iat2i::batch::{JobState, Shard};
use serde_yaml::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Respond, ResponseTemplate};

fn manifest_docs() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s/batch-cronjob.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// A container's args and literal env, with the pod's paths mapped into `root`.
struct Container {
    args: Vec<String>,
    env: HashMap<String, String>,
}

fn container(job_spec: &Value, root: &Path) -> Container {
    let c = &job_spec["template"]["spec"]["containers"][0];
    let local = |s: &str| -> String {
        for (pod, here) in [
            ("/manifests", "manifests"),
            ("/data", "data"),
            ("/cache", "cache"),
        ] {
            if let Some(rest) = s.strip_prefix(pod) {
                return format!("{}{rest}", root.join(here).display());
            }
        }
        s.to_string()
    };
    let args = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| local(a.as_str().unwrap()))
        .collect();
    let env = c["env"]
        .as_sequence()
        .map(|e| e.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), local(e["value"].as_str()?))))
        .collect();
    Container { args, env }
}

/// Images the image server served (reference downloads), by path.
async fn downloads(images: &MockServer) -> usize {
    images
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with(".png"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_shards_share_one_qdrant_finish_every_job_once_and_recall_next_night() {
    if !ort_available() {
        return;
    }
    let Some(server) = qdrant::QdrantServer::start() else {
        return;
    };
    let api = MockServer::start().await;
    mount_reference_run(&api).await;
    mount_images(&api, "edits", &["images_red.json"]).await;
    let (openverse, images, _) = engine_and_images().await;

    let docs = manifest_docs();
    let nightly = docs
        .iter()
        .find(|d| d["kind"] == "CronJob" && d["metadata"]["name"] == "iat2i-nightly")
        .unwrap();
    let job = &nightly["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    let shards = job["parallelism"].as_u64().unwrap();
    let summary_job = docs
        .iter()
        .find(|d| d["kind"] == "CronJob" && d["metadata"]["name"] == "iat2i-nightly-summary")
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("manifests")).unwrap();
    let jobs = 8;
    let lines: String = (1..=jobs)
        .map(|i| format!("{{\"id\":\"job-{i}\",\"prompt\":\"A Graphorn grazing, take {i}\"}}\n"))
        .collect();
    std::fs::write(root.path().join("manifests/prompts.jsonl"), lines).unwrap();
    // What the pods reach as services, here: the stand-ins and the Qdrant server.
    let local_services = [
        "--engine".to_string(),
        "openverse".into(),
        "--openverse-url".into(),
        openverse.uri(),
        "--allow-host".into(),
        "127.0.0.1".into(),
        "--model-dir".into(),
        tiny_model().display().to_string(),
    ];
    let nightly_dir = root.path().join("data/nightly").display().to_string();
    // The shard pods of one night: `indices` started at once, the chat and image API at
    // `api`, writing to data/<out>.
    let start = |out: &str, api: &str, indices: &[u64]| {
        let shard = container(job, root.path());
        let out_dir = root.path().join("data").join(out).display().to_string();
        indices
            .iter()
            .map(|k| {
                let mut c = Command::new(iat2i_binary());
                for var in INHERITED {
                    c.env_remove(var);
                }
                let args: Vec<String> = shard
                    .args
                    .iter()
                    .map(|a| a.replace(&nightly_dir, &out_dir))
                    .collect();
                c.args(&args)
                    .args(&local_services)
                    .args(["--base-url", &format!("{api}/v1")])
                    .envs(&shard.env)
                    .env("QDRANT_URL", server.url())
                    .env("OPENAI_API_KEY", KEY)
                    .env("JOB_COMPLETION_INDEX", k.to_string())
                    .current_dir(root.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let every_shard: Vec<u64> = (0..shards).collect();
    let night = |out: &str| {
        start(out, &api.uri(), &every_shard)
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    };

    // Night 1: every shard at once.
    for (k, o) in night("nightly").iter().enumerate() {
        assert_eq!(o.status.code(), Some(0), "shard {k}: {}", shown(o));
    }
    let first_night = downloads(&images).await;
    // The summary job's command merges the shards.
    let summary = container(&summary_job["spec"]["jobTemplate"]["spec"], root.path());
    let o = Command::new(iat2i_binary())
        .args(&summary.args)
        .current_dir(root.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", shown(&o));
    let out = root.path().join("data/nightly");
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["jobs"], jobs, "{s}");
    assert_eq!(s["by_state"]["done"], jobs, "{s}");
    let journals = iat2i::batch::folder_journals(&out).unwrap();
    assert_eq!(journals.len() as u64, shards, "a journal per shard");
    let mut done = Vec::new();
    for j in &journals {
        let journal = iat2i::batch::Journal::open_read_only(j).unwrap();
        for row in journal.rows().unwrap() {
            if row.state == iat2i::batch::JobState::Done {
                done.push(row.id);
            }
        }
    }
    done.sort();
    let before = done.len();
    done.dedup();
    assert_eq!(
        (before, done.len()),
        (jobs, jobs),
        "every job done exactly once"
    );
    assert_eq!(
        requests_to(&api, "/v1/images/edits").await.len(),
        jobs,
        "one paid image per job"
    );
    // Every shard wrote to the one shared memory.
    let collections: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{}/collections", server.http_port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let names: Vec<String> = collections["result"]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("iat2i_refs_")),
        "{collections}"
    );

    // Night 2 (a new output folder, the same memory and cache): recalled, not downloaded.
    for (k, o) in night("nightly-2").iter().enumerate() {
        assert_eq!(o.status.code(), Some(0), "night 2, shard {k}: {}", shown(o));
    }
    let second_night = downloads(&images).await - first_night;
    eprintln!("reference downloads: night 1 {first_night}, night 2 {second_night}");
    assert!(
        second_night < first_night,
        "night 1 downloaded {first_night} images, night 2 {second_night}"
    );

    // Night 3: a pod is killed while its image calls are in flight, and Kubernetes starts
    // its index again. The busiest shard's first image comes back at once, the others hang.
    let slow = MockServer::start().await;
    mount_reference_run(&slow).await;
    let hang = Arc::new(AtomicBool::new(true));
    Mock::given(method("POST"))
        .and(path("/v1/images/edits"))
        .respond_with(FirstThenHang {
            answered: AtomicUsize::new(0),
            hang: hang.clone(),
        })
        .mount(&slow)
        .await;
    let ids: Vec<String> = (1..=jobs).map(|i| format!("job-{i}")).collect();
    let shard_of = |k: u64| {
        Shard::from_completion_index(Some(&k.to_string()), Some(&shards.to_string()))
            .unwrap()
            .unwrap()
    };
    let owned = |k: u64| ids.iter().filter(|id| shard_of(k).owns(id)).count();
    let k = (0..shards).max_by_key(|k| owned(*k)).unwrap();
    let mine = owned(k);
    assert!(
        mine >= 2,
        "the busiest of {shards} shards owns {mine} of {jobs} jobs"
    );
    let mut pod = start("nightly-3", &slow.uri(), &[k]).remove(0);
    let out3 = root.path().join("data/nightly-3");
    let journal3 = out3.join(shard_of(k).journal_name());
    let cut = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let sent = requests_to(&slow, "/v1/images/edits").await.len();
        let done = iat2i::batch::Journal::open_read_only(&journal3)
            .and_then(|j| j.rows())
            .map(|rows| rows.iter().filter(|r| r.state == JobState::Done).count())
            .unwrap_or(0);
        if sent == mine && done == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < cut,
            "shard {k}: {sent} image calls, {done} done"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    pod.kill().unwrap();
    let killed = pod.wait_with_output().unwrap();
    assert!(!killed.status.success());
    let spent = iat2i::batch::Journal::open_read_only(&journal3)
        .unwrap()
        .spend()
        .unwrap();
    // Every call cut off by the kill is on the books as possibly billed (once the journal
    // is next opened by a run, it stops being "in flight").
    assert_eq!(
        spent.in_flight.images + spent.interrupted.images,
        (mine - 1) as i64,
        "{spent:?}"
    );
    hang.store(false, Ordering::SeqCst);
    let rerun = start("nightly-3", &slow.uri(), &[k])
        .remove(0)
        .wait_with_output()
        .unwrap();
    assert_eq!(
        rerun.status.code(),
        Some(0),
        "re-run of shard {k}: {}",
        shown(&rerun)
    );
    let journal = iat2i::batch::Journal::open_read_only(&journal3).unwrap();
    let rows = journal.rows().unwrap();
    assert_eq!(rows.len(), mine);
    assert!(rows.iter().all(|r| r.state == JobState::Done), "{rows:?}");
    assert!(
        journal.completions().unwrap().iter().all(|(_, n)| *n == 1),
        "a job completed twice"
    );
    // The job finished before the kill was not paid for again; the cut-off ones were
    // re-run, their first calls still counted against the budget.
    assert_eq!(
        requests_to(&slow, "/v1/images/edits").await.len(),
        mine + (mine - 1),
        "image calls: {mine} before the kill, {} re-run",
        mine - 1
    );
    let spent = journal.spend().unwrap();
    assert_eq!(spent.interrupted.images, (mine - 1) as i64, "{spent:?}");
    assert_eq!(spent.billed.images, mine as i64, "{spent:?}");
}

/// Answers the first image call at once and holds every later one while `hang` is set.
struct FirstThenHang {
    answered: AtomicUsize,
    hang: Arc<AtomicBool>,
}

impl Respond for FirstThenHang {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        let ok = ResponseTemplate::new(200).set_body_json(fixture_json("images_red.json"));
        let first = self.answered.fetch_add(1, Ordering::SeqCst) == 0;
        if first || !self.hang.load(Ordering::SeqCst) {
            ok
        } else {
            ok.set_delay(std::time::Duration::from_secs(600))
        }
    }
}
