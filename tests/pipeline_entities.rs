//! One reference per entity: a prompt naming two unfamiliar things gets one search and
//! one selection per entity, and the generator gets both references, each labelled with
//! its entity; the judge's per-entity word swaps only the wrong one; a backend that takes
//! fewer images keeps the most unfamiliar entities and records the others.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use common::*;
use iat2i::generator::ReferenceLimits;
use iat2i::prelude::*;
use iat2i::selectors::SelectError;

/// A distinct picture for each query (so a test can tell whose reference was sent).
fn picture_of(query: &str, alternate: bool) -> Bytes {
    let seed = query
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    let seed = seed.wrapping_add(u32::from(alternate) * 1000);
    Bytes::from(encode(
        scene(seed % 10_000, 24, 16),
        image::ImageFormat::Png,
    ))
}

/// A selector that ranks its candidates by position: the first is the best, the second
/// its alternate; each reference carries the picture of the query that found it. It
/// remembers every request, as CLIP would see it.
#[derive(Default, Clone)]
struct ByQuery {
    requests: Arc<Mutex<Vec<SelectionRequest>>>,
}

#[async_trait]
impl Selector for ByQuery {
    async fn select(
        &self,
        request: &SelectionRequest,
        candidates: Vec<Candidate>,
    ) -> Result<Selection, SelectError> {
        self.requests.lock().unwrap().push(request.clone());
        let make = |c: &Candidate, alt: bool| {
            let mut r = reference(picture_of(&c.query, alt), c.image_url.as_str(), &c.query);
            if alt {
                r.candidate.image_url =
                    url::Url::parse(&format!("{}?alternate", c.image_url)).unwrap();
            }
            r
        };
        let first = candidates.first().ok_or(SelectError::NoCandidates {
            dropped: Vec::new(),
        })?;
        Ok(Selection {
            best: make(first, false),
            alternates: vec![make(first, true)],
            ranked: Vec::new(),
            dropped: Vec::new(),
            stages: Vec::new(),
            judge_reason: None,
            memory: Default::default(),
        })
    }
}

async fn pipeline_with(
    h: &Harness,
    selector: ByQuery,
    limits: Option<ReferenceLimits>,
) -> iat2i::Pipeline {
    let mut images = images_client(&h.server);
    if let Some(l) = limits {
        images = images.with_reference_limits(l);
    }
    Pipeline::builder()
        .lmm(Arc::new(chat_client(&h.server, test_http())))
        .generator(Arc::new(images))
        .engines(vec![Arc::new(h.search.clone())])
        .selector(Arc::new(selector))
        .max_rounds(2)
        .build()
        .unwrap()
}

const PROMPT: &str = "The Hogwarts Legacy protagonist riding a Graphorn";

/// The picture the selection picked for `entity` (its best, or its `alternate`).
fn picked(report: &Report, entity: &str, alternate: bool) -> Vec<u8> {
    let r = report
        .retrievals
        .iter()
        .find(|r| r.entity.as_deref() == Some(entity))
        .unwrap_or_else(|| panic!("no retrieval for {entity}"));
    let s = r.selection.as_ref().expect("a selection");
    let chosen = if alternate { &s.alternates[0] } else { &s.best };
    assert!(
        chosen
            .candidate
            .query
            .contains(entity.split(' ').next().unwrap()),
        "{entity}'s reference was found by one of its own queries: {}",
        chosen.candidate.query
    );
    chosen.bytes.to_vec()
}

#[tokio::test]
async fn two_entities_get_a_reference_each_labelled_in_the_prompt() {
    let h = Harness::start(
        &["gate_two_entities.json"],
        &["verdict_entities_aligned.json"],
    )
    .await;
    h.images("edits", &["images_red.json"]).await;
    let selector = ByQuery::default();
    let out = pipeline_with(&h, selector.clone(), None)
        .await
        .run(Request::new(PROMPT))
        .await
        .unwrap();

    // One selection per entity, each ranked against its own description and queries.
    let mut asked: Vec<SelectionRequest> = selector.requests.lock().unwrap().clone();
    asked.sort_by(|a, b| a.entities.cmp(&b.entities));
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].entities, ["Graphorn"]);
    assert!(
        asked[0].prompt.starts_with("Graphorn: a large grey"),
        "{}",
        asked[0].prompt
    );
    assert!(asked[0].queries.iter().all(|q| q.contains("Graphorn")));
    assert_eq!(asked[1].entities, ["Hogwarts Legacy protagonist"]);
    assert!(
        asked[1]
            .queries
            .iter()
            .all(|q| q.contains("Hogwarts Legacy"))
    );

    // The generator got both, in the gate's order, each the picture found for its entity.
    let edits = h.edits().await;
    assert_eq!(edits.len(), 1);
    let sent = &sent_images(&edits)[0];
    assert_eq!(sent.len(), 2, "two image[] parts");
    assert!(
        sent[0] == picked(&out.report, "Graphorn", false),
        "image 1 is Graphorn's"
    );
    assert!(
        sent[1] == picked(&out.report, "Hogwarts Legacy protagonist", false),
        "image 2 is the protagonist's"
    );
    assert!(sent[0] != sent[1]);
    let prompt = Form::parse(&edits[0]).text("prompt");
    assert!(
        prompt.contains("Reference image 1 shows Graphorn"),
        "{prompt}"
    );
    assert!(
        prompt.contains("Reference image 2 shows Hogwarts Legacy protagonist"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("Graphorn and Hogwarts"),
        "no joint label: {prompt}"
    );

    // The report: a retrieval per entity, both references with their entity and role.
    let r = &out.report;
    let mut entities: Vec<&str> = r
        .retrievals
        .iter()
        .filter_map(|x| x.entity.as_deref())
        .collect();
    entities.sort();
    assert_eq!(entities, ["Graphorn", "Hogwarts Legacy protagonist"]);
    let refs = &r.rounds[0].references;
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].entity.as_deref(), Some("Graphorn"));
    assert_eq!(
        refs[1].entity.as_deref(),
        Some("Hogwarts Legacy protagonist")
    );
    assert_eq!(out.references.len(), 2);
    let v = out.verdict.as_ref().unwrap();
    assert_eq!(v.entities.len(), 2, "the per-entity verdict is kept");
    let json = serde_json::to_value(r).unwrap();
    assert_eq!(json["rounds"][0]["references"][1]["role"], "subject");
}

#[tokio::test]
async fn the_judge_swaps_only_the_entity_it_found_wrong() {
    let h = Harness::start(
        &["gate_two_entities.json"],
        &[
            "verdict_entity_two_wrong.json",
            "verdict_entities_aligned.json",
        ],
    )
    .await;
    h.images("edits", &["images_red.json", "images_green.json"])
        .await;
    let out = pipeline_with(&h, ByQuery::default(), None)
        .await
        .run(Request::new(PROMPT))
        .await
        .unwrap();

    let sent = sent_images(&h.edits().await);
    assert_eq!(sent.len(), 2, "two rounds");
    let graphorn = picked(&out.report, "Graphorn", false);
    let hero = picked(&out.report, "Hogwarts Legacy protagonist", false);
    let hero_alt = picked(&out.report, "Hogwarts Legacy protagonist", true);
    assert!(
        sent[0] == [graphorn.clone(), hero],
        "round 1: both best references"
    );
    assert!(
        sent[1] == [graphorn, hero_alt],
        "round 2: entity 1 kept, entity 2 swapped to its alternate"
    );
    let step = out.report.rounds[0].next_step.as_deref().unwrap();
    assert!(step.contains("of Hogwarts Legacy protagonist"), "{step}");
    assert_eq!(out.round, 2);
}

#[tokio::test]
async fn a_backend_taking_three_images_keeps_the_three_most_unfamiliar() {
    let h = Harness::start(
        &["gate_five_entities.json"],
        &["verdict_entities_aligned.json"],
    )
    .await;
    h.images("edits", &["images_red.json"]).await;
    let limits = ReferenceLimits::new(3, 4 << 20, 4096 * 4096);
    let out = pipeline_with(&h, ByQuery::default(), Some(limits))
        .await
        .run(Request::new("Five rare things at a picnic"))
        .await
        .unwrap();

    let sent = sent_images(&h.edits().await);
    assert_eq!(sent[0].len(), 3);
    let round = &out.report.rounds[0];
    let names: Vec<&str> = round
        .references
        .iter()
        .filter_map(|r| r.entity.as_deref())
        .collect();
    assert_eq!(
        names,
        ["Graphorn", "Hogwarts Legacy protagonist", "Niffler"],
        "the gate's order: most unfamiliar first"
    );
    assert_eq!(
        round.references_dropped.len(),
        2,
        "{:?}",
        round.references_dropped
    );
    assert!(round.references_dropped[0].starts_with("Highland Cow of Hogsmeade"));
    assert!(round.references_dropped[1].contains("at most 3 image(s)"));
    let lost = out
        .report
        .degraded
        .iter()
        .filter(|d| d.lost == Lost::EntityReference)
        .count();
    assert_eq!(lost, 2);
    assert!(!out.report.lost_reference(), "the run has its references");
}

#[tokio::test]
async fn one_image_found_for_two_entities_is_not_both_their_reference() {
    // Both entities' searches find the same URL: the second entity takes its alternate.
    let h = Harness::start(
        &["gate_two_entities.json"],
        &["verdict_entities_aligned.json"],
    )
    .await;
    h.images("edits", &["images_red.json"]).await;

    #[derive(Default, Clone)]
    struct Same(ByQuery);
    #[async_trait]
    impl Selector for Same {
        async fn select(
            &self,
            request: &SelectionRequest,
            mut candidates: Vec<Candidate>,
        ) -> Result<Selection, SelectError> {
            for c in &mut candidates {
                c.image_url = url::Url::parse("https://upload.example.org/shared.png").unwrap();
                c.query = "shared".into();
            }
            self.0.select(request, candidates).await
        }
    }
    let pipeline = Pipeline::builder()
        .lmm(Arc::new(chat_client(&h.server, test_http())))
        .generator(Arc::new(images_client(&h.server)))
        .engines(vec![Arc::new(h.search.clone())])
        .selector(Arc::new(Same::default()))
        .max_rounds(1)
        .build()
        .unwrap();
    let out = pipeline.run(Request::new(PROMPT)).await.unwrap();
    let refs = &out.report.rounds[0].references;
    assert_eq!(refs.len(), 2);
    assert_ne!(refs[0].image_url, refs[1].image_url);
    let notes: Vec<&String> = out
        .report
        .retrievals
        .iter()
        .flat_map(|r| &r.notes)
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("already Graphorn's reference")),
        "{notes:?}"
    );
}

#[tokio::test]
async fn a_batch_job_keeps_every_entitys_reference_and_the_contact_sheet_shows_them() {
    use iat2i::batch::{
        Budget, Format, Journal, Limits, Manifest, PriceTable, Runner, RunnerConfig, fingerprint,
        write_summary,
    };
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    let h = Harness::start(
        &["gate_two_entities.json"],
        &["verdict_entities_aligned.json"],
    )
    .await;
    h.images("edits", &["images_red.json"]).await;
    let pipeline = Arc::new(pipeline_with(&h, ByQuery::default(), None).await);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let m = Manifest::parse(
        &format!("{{\"id\":\"demo\",\"prompt\":\"{PROMPT}\"}}\n"),
        Format::Jsonl,
    );
    let fps: Vec<String> = m.jobs.iter().map(|j| fingerprint(j, &pipeline)).collect();
    let journal = Arc::new(Journal::open(&out.join("journal.sqlite")).unwrap());
    let plan = journal.plan(&m.jobs, &fps, false, |_, _| None).unwrap();
    let budget = Arc::new(
        Budget::new(
            Limits::default(),
            PriceTable::default(),
            "gpt-4o-mini",
            "gpt-image-1",
        )
        .unwrap(),
    );
    let config = RunnerConfig {
        out: out.to_path_buf(),
        concurrency: 1,
        job_timeout: None,
        job_grace: Duration::ZERO,
        max_attempts: 1,
        backoff: Duration::from_millis(10),
        breaker_threshold: 3,
    };
    let runner = Runner::new(
        pipeline,
        journal,
        budget,
        config,
        Arc::new(AtomicBool::new(false)),
    );
    let done = runner.run(plan.to_run).await.unwrap();
    assert_eq!(done.done, 1);

    let job = out.join("demo");
    assert!(job.join("reference.png").is_file());
    assert!(job.join("reference-2.png").is_file());
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(job.join("reference.json")).unwrap()).unwrap();
    assert_eq!(
        info["entity"], "Graphorn",
        "the first reference's fields stay at the top"
    );
    assert_eq!(info["all"][1]["entity"], "Hogwarts Legacy protagonist");
    assert_eq!(info["all"][1]["file"], "reference-2.png");

    write_summary(&[out.join("journal.sqlite")], out).unwrap();
    let html = std::fs::read_to_string(out.join("index.html"))
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(html.contains(r#"src="demo/reference.png""#), "{html}");
    assert!(html.contains(r#"src="demo/reference-2.png""#), "{html}");
    assert!(
        html.contains("<strong>Hogwarts Legacy protagonist</strong>"),
        "{html}"
    );
}

/// The two-entity run with `generator`; returns the outcome.
async fn two_entities_with(generator: Arc<dyn Generator>) -> (Harness, Outcome) {
    let h = Harness::start(
        &["gate_two_entities.json"],
        &["verdict_entities_aligned.json"],
    )
    .await;
    let pipeline = Pipeline::builder()
        .lmm(Arc::new(chat_client(&h.server, test_http())))
        .generator(generator)
        .engines(vec![Arc::new(h.search.clone())])
        .selector(Arc::new(ByQuery::default()))
        .max_rounds(1)
        .build()
        .unwrap();
    let out = pipeline.run(Request::new(PROMPT)).await.unwrap();
    (h, out)
}

#[tokio::test]
async fn gemini_gets_two_inline_images_each_named_in_the_text() {
    use wiremock::matchers::{method, path};
    let gemini = wiremock::MockServer::start().await;
    let generate = "/v1beta/models/gemini-2.5-flash-image:generateContent";
    wiremock::Mock::given(method("POST"))
        .and(path(generate))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(gen_json("gemini_image.json")),
        )
        .mount(&gemini)
        .await;
    let (_h, out) = two_entities_with(Arc::new(gemini_client(&gemini))).await;

    let sent = requests_to(&gemini, generate).await;
    assert_eq!(sent.len(), 1);
    let body = json_body(&sent[0]);
    let parts = body["contents"][0]["parts"].as_array().unwrap();
    let inline: Vec<Vec<u8>> = parts
        .iter()
        .filter_map(|p| p["inlineData"]["data"].as_str())
        .map(unbase64)
        .collect();
    assert_eq!(inline.len(), 2, "two inlineData parts: {parts:?}");
    assert!(inline[0] == picked(&out.report, "Graphorn", false));
    assert!(inline[1] == picked(&out.report, "Hogwarts Legacy protagonist", false));
    let text: String = parts.iter().filter_map(|p| p["text"].as_str()).collect();
    assert!(text.contains("Graphorn"), "{text}");
    assert!(text.contains("Hogwarts Legacy protagonist"), "{text}");
}

#[tokio::test]
async fn comfyui_uploads_two_references_onto_two_mapped_load_image_nodes() {
    let comfy = Comfy::start(Some(WsScript::Success), HistoryScript::SuccessAfter(0)).await;
    // FLUX Kontext with a second LoadImage node mapped as the second image input.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflows");
    let mut graph: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("flux_kontext.json")).unwrap())
            .unwrap();
    graph["143"] = graph["142"].clone();
    let mut nodes: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("flux_kontext.nodes.json")).unwrap(),
    )
    .unwrap();
    nodes["images"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"node_id": "143", "input_field": "image"}));
    let wf = iat2i::generator::comfyui::Workflow::from_json(&graph.to_string(), &nodes.to_string())
        .unwrap();
    let (_h, out) = two_entities_with(Arc::new(comfy.client(wf))).await;

    let uploads = comfy.requests("/upload/image").await;
    assert_eq!(uploads.len(), 2, "one upload per entity");
    let names: Vec<String> = uploads
        .iter()
        .map(|u| {
            let form = Form::parse(u);
            let image = form.parts.iter().find(|p| p.name == "image").unwrap();
            image.filename.clone().unwrap()
        })
        .collect();
    let sent: Vec<Vec<u8>> = uploads
        .iter()
        .map(|u| {
            let form = Form::parse(u);
            form.parts
                .iter()
                .find(|p| p.name == "image")
                .unwrap()
                .data
                .clone()
        })
        .collect();
    assert!(sent[0] == picked(&out.report, "Graphorn", false));
    assert!(sent[1] == picked(&out.report, "Hogwarts Legacy protagonist", false));
    let graph = &comfy.queued().await["prompt"];
    assert_eq!(graph["142"]["inputs"]["image"], names[0].as_str());
    assert_eq!(graph["143"]["inputs"]["image"], names[1].as_str());
}
