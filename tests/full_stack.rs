//! The whole stack with no stubs: the gate, judge and generator speak OpenAI's protocol
//! to one wiremock server; the real Openverse engine searches another, which also serves
//! the images; the default `HierarchicalSelector` (tiny CLIP test model, a real
//! qdrant-edge store in a temp dir, the LMM candidate judge) picks the reference.
//!
//! Needs ONNX Runtime (`ORT_DYLIB_PATH`, set by `make test`); skips with a message without it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use iat2i::generator::comfyui::ComfyUi;
use iat2i::prelude::*;
use iat2i::retrievers::engines::Openverse;
use iat2i::selectors::SelectorConfig;
use serde_json::json;
use url::Url;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A seeded PNG, so each served image looks (and hashes, and embeds) differently.
fn picture(seed: u32, w: u32, h: u32) -> Vec<u8> {
    encode(scene(seed, w, h), image::ImageFormat::Png)
}

/// One Openverse result, shaped like `GET /v1/images/` answers.
fn result(web: &str, id: &str, title: &str, w: u32, h: u32) -> serde_json::Value {
    json!({
        "id": id,
        "title": title,
        "foreign_landing_url": format!("https://www.flickr.com/photos/someone/{id}"),
        "url": format!("{web}/full/{id}.png"),
        "creator": "A. Naturalist",
        "creator_url": "https://www.flickr.com/photos/someone",
        "license": "by-sa",
        "license_version": "2.0",
        "license_url": "https://creativecommons.org/licenses/by-sa/2.0/",
        "provider": "flickr",
        "source": "flickr",
        "category": null,
        "filesize": null,
        "filetype": "png",
        "tags": [{"name": "graphorn", "accuracy": null}],
        "attribution": format!("\"{title}\" by A. Naturalist is licensed under CC BY-SA 2.0."),
        "fields_matched": ["title"],
        "mature": false,
        "height": h,
        "width": w,
        "thumbnail": format!("{web}/thumb/{id}.png"),
        "detail_url": format!("{web}/v1/images/{id}/"),
        "related_url": format!("{web}/v1/images/{id}/related/"),
        "unstable__sensitivity": []
    })
}

/// Mounts the Openverse API and the images it points at; returns each id's thumbnail bytes.
async fn mount_web(web: &MockServer) -> Vec<(String, Vec<u8>)> {
    let base = web.uri();
    let ids = ["graphorn-a", "graphorn-b", "graphorn-c"];
    let mut results: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| result(&base, id, &format!("Graphorn photo {i}"), 800, 600))
        .collect();
    // A result whose image is an HTML error page: dropped by the selector, never fatal.
    results.push(result(&base, "broken", "Graphorn (broken)", 800, 600));
    let body = json!({
        "result_count": results.len(), "page_count": 1, "page_size": 20, "page": 1,
        "results": results, "warnings": []
    });
    Mock::given(method("GET"))
        .and(path("/v1/images/"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(web)
        .await;
    let mut served = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let bytes = picture(i as u32 + 1, 320, 240);
        for dir in ["thumb", "full"] {
            Mock::given(method("GET"))
                .and(path(format!("/{dir}/{id}.png")))
                .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.clone(), "image/png"))
                .mount(web)
                .await;
        }
        served.push((id.to_string(), bytes));
    }
    for dir in ["thumb", "full"] {
        Mock::given(method("GET"))
            .and(path(format!("/{dir}/broken.png")))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(&b"<html>gone</html>"[..], "text/html"),
            )
            .mount(web)
            .await;
    }
    served
}

/// The pipeline with every default but the endpoints: the real Openverse engine on
/// `web`, the models on `api`, the default selector with the tiny CLIP model.
fn whole_stack(api: &MockServer, web: &MockServer, cache: &Path) -> Pipeline {
    whole_stack_with(api, web, cache, Arc::new(images_client(api)))
        .build()
        .unwrap()
}

/// The same stack drawing with `generator`.
fn whole_stack_with(
    api: &MockServer,
    web: &MockServer,
    cache: &Path,
    generator: Arc<dyn Generator>,
) -> iat2i::PipelineBuilder {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/tiny-clip");
    let http = test_http();
    let openverse = Openverse::new(http.clone()).with_base_url(Url::parse(&web.uri()).unwrap());
    let selector = SelectorConfig::default().model_dir(&model).cache_dir(cache);
    Pipeline::builder()
        .http(http)
        .lmm(Arc::new(chat_client(api, test_http())))
        .generator(generator)
        .engines(vec![Arc::new(openverse)])
        .selector_config(selector)
}

/// The gate, the candidate judge and the judge, without an image endpoint.
async fn mount_chat_models(api: &MockServer) {
    mount_chat(api, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(api, "pick", &["chat_pick.json"]).await;
    mount_chat(api, "verdict", &["verdict_aligned.json"]).await;
}

/// The bytes the web server served for the selected reference.
fn best_bytes(report: &Report, served: &[(String, Vec<u8>)]) -> Vec<u8> {
    let selection = report.retrievals[0]
        .selection
        .as_ref()
        .expect("a selection");
    let url = &selection.best.candidate.image_url;
    let file = url.path().rsplit('/').next().unwrap();
    let id = file.trim_end_matches(".png");
    served.iter().find(|(i, _)| i == id).unwrap().1.clone()
}

/// The gate, the candidate judge, the judge and the edits endpoint.
async fn mount_models(api: &MockServer) {
    mount_chat(api, "assessment", &["gate_needs_reference.json"]).await;
    mount_chat(api, "pick", &["chat_pick.json"]).await;
    mount_chat(api, "verdict", &["verdict_aligned.json"]).await;
    mount_images(api, "edits", &["images_red.json"]).await;
}

/// Searched with the gate's queries on the real engine.
async fn assert_searched_with_the_gates_queries(web: &MockServer) {
    let searched: Vec<String> = requests_to(web, "/v1/images/")
        .await
        .iter()
        .filter_map(|r| {
            let mut pairs = r.url.query_pairs();
            pairs.find(|(k, _)| k == "q").map(|(_, v)| v.into_owned())
        })
        .collect();
    let wanted = "Graphorn Fantastic Beasts";
    assert!(searched.iter().any(|q| q == wanted), "{searched:?}");
}

/// Selected for real: three survivors ranked with CLIP scores, the broken one dropped,
/// the LMM candidate judge's reason kept.
fn assert_selected_with_clip(report: &Report) -> &Selection {
    let selection = report.retrievals[0].selection.as_ref();
    let selection = selection.expect("a selection");
    assert_eq!(selection.ranked.len(), 3, "{:?}", selection.dropped);
    let ranked = &selection.ranked;
    assert!(ranked.iter().all(|r| r.scores.clip_prompt.is_some()));
    let dropped = &selection.dropped;
    assert!(
        dropped
            .iter()
            .any(|d| d.candidate.image_url.path().contains("broken"))
    );
    let reason = &selection.judge_reason;
    assert!(reason.is_some(), "the LMM candidate judge ran");
    let licence = selection.best.candidate.license.as_ref();
    assert_eq!(licence.map(|l| l.code.as_str()), Some("by-sa"));
    selection
}

/// The chosen reference's bytes went to the edits endpoint, as the one image[] part.
async fn assert_reference_sent(api: &MockServer, best: &Candidate, served: &[(String, Vec<u8>)]) {
    let file = best.image_url.path().rsplit('/').next().unwrap();
    let best_id = file.trim_end_matches(".png");
    let best_bytes = &served.iter().find(|(id, _)| id == best_id).unwrap().1;
    let edits = requests_to(api, "/v1/images/edits").await;
    assert_eq!(edits.len(), 1);
    let form = Form::parse(&edits[0]);
    assert_eq!(form.image_bytes(), [best_bytes.as_slice()]);
}

#[tokio::test]
async fn a_rare_entity_is_searched_selected_with_clip_and_used_as_reference() {
    if !ort_available() {
        return;
    }
    let (api, web) = (MockServer::start().await, MockServer::start().await);
    let served = mount_web(&web).await;
    mount_models(&api).await;
    let cache = tempfile::tempdir().unwrap();
    let prompt = "A Graphorn grazing on a misty hillside at dusk";
    let pipeline = whole_stack(&api, &web, cache.path());
    let out = pipeline.run(Request::new(prompt)).await.unwrap();

    assert_searched_with_the_gates_queries(&web).await;
    let report = &out.report;
    assert_eq!(out.round, 1, "{}", report.stop_reason);
    let selection = assert_selected_with_clip(report);
    assert_reference_sent(&api, &selection.best.candidate, &served).await;
    // The report is JSON a user can audit and carries no secret.
    let text = serde_json::to_string(report).unwrap();
    assert!(text.contains("graphorn-a") && !text.contains(KEY));
    // The run's points were removed from the store; the store itself stays on disk.
    assert!(cache.path().read_dir().unwrap().next().is_some());
}

#[tokio::test]
async fn the_loop_runs_with_gemini_drawing_from_the_reference() {
    if !ort_available() {
        return;
    }
    let (api, web, gem) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    let served = mount_web(&web).await;
    mount_chat_models(&api).await;
    let generate = "/v1beta/models/gemini-2.5-flash-image:generateContent";
    Mock::given(method("POST"))
        .and(path(generate))
        .respond_with(ResponseTemplate::new(200).set_body_json(gen_json("gemini_image.json")))
        .mount(&gem)
        .await;
    let cache = tempfile::tempdir().unwrap();
    let pipeline = whole_stack_with(&api, &web, cache.path(), Arc::new(gemini_client(&gem)))
        .build()
        .unwrap();
    let out = pipeline
        .run(Request::new(
            "A Graphorn grazing on a misty hillside at dusk",
        ))
        .await
        .unwrap();
    assert_eq!(out.round, 1, "{}", out.report.stop_reason);
    assert_eq!(out.image.bytes, gen_bytes("orange.png"));
    let body = json_body(&requests_to(&gem, generate).await[0]);
    let parts = body["contents"][0]["parts"].as_array().unwrap();
    let sent = unbase64(parts[0]["inlineData"]["data"].as_str().unwrap());
    assert_eq!(
        sent,
        best_bytes(&out.report, &served),
        "the selected reference went first"
    );
    let text = parts[1]["text"].as_str().unwrap();
    assert!(text.contains("Reference image 1 shows"), "{text}");
    assert_eq!(out.report.rounds[0].prompt_sent, text);
    assert_eq!(out.report.usage.images.total_tokens, 2591);
}

#[tokio::test]
async fn the_loop_runs_with_a_chat_completions_image_model() {
    if !ort_available() {
        return;
    }
    let (api, web, gw) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    let served = mount_web(&web).await;
    mount_chat_models(&api).await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(gen_json("chat_images_image.json")))
        .mount(&gw)
        .await;
    let cache = tempfile::tempdir().unwrap();
    let generator = Arc::new(chat_images_client(&gw));
    let pipeline = whole_stack_with(&api, &web, cache.path(), generator)
        .build()
        .unwrap();
    let out = pipeline
        .run(Request::new(
            "A Graphorn grazing on a misty hillside at dusk",
        ))
        .await
        .unwrap();
    assert_eq!(out.round, 1, "{}", out.report.stop_reason);
    assert_eq!(out.image.bytes, gen_bytes("orange.png"));
    let body = json_body(&requests_to(&gw, "/api/v1/chat/completions").await[0]);
    let urls = image_urls(&body, 0);
    let data = urls[0].strip_prefix("data:image/png;base64,").unwrap();
    assert_eq!(unbase64(data), best_bytes(&out.report, &served));
}

#[tokio::test]
async fn the_loop_runs_with_comfyui_and_reports_its_progress() {
    if !ort_available() {
        return;
    }
    let (api, web) = (MockServer::start().await, MockServer::start().await);
    let comfy = Comfy::start(Some(WsScript::Success), HistoryScript::SuccessAfter(0)).await;
    let served = mount_web(&web).await;
    mount_chat_models(&api).await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/workflows");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let wf = iat2i::generator::Workflow::from_json(
        &read("flux_kontext.json"),
        &read("flux_kontext.nodes.json"),
    )
    .unwrap();
    let generator = Arc::new(ComfyUi::new(test_http(), &comfy.base, wf).unwrap());
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let cache = tempfile::tempdir().unwrap();
    let prompt = "A Graphorn grazing on a misty hillside at dusk";
    let pipeline = whole_stack_with(&api, &web, cache.path(), generator)
        .on_event(move |e| seen.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    let out = pipeline.run(Request::new(prompt)).await.unwrap();
    assert_eq!(out.round, 1, "{}", out.report.stop_reason);
    assert_eq!(out.image.bytes, gen_bytes("teal.png"));
    let form = Form::parse(&comfy.requests("/upload/image").await[0]);
    assert_eq!(
        form.named("image")[0].data,
        best_bytes(&out.report, &served)
    );
    // The workflow's image input carries the reference; the prompt carries no wording about it.
    assert_eq!(
        comfy.queued().await["prompt"]["6"]["inputs"]["text"],
        prompt
    );
    assert_eq!(out.report.rounds[0].prompt_sent, prompt);
    let events = events.lock().unwrap();
    let steps = events
        .iter()
        .filter(|e| matches!(e, PipelineEvent::GeneratorProgress { progress, .. } if progress.stage == "progress"))
        .count();
    assert_eq!(
        steps, 2,
        "the websocket's progress reached the pipeline's events"
    );
}

/// Openverse answers each entity's queries with that entity's own three pictures; returns
/// every id's served bytes.
async fn mount_two_entities(web: &MockServer) -> Vec<(String, Vec<u8>)> {
    let base = web.uri();
    let mut served = Vec::new();
    let sets = [
        (
            "graphorn",
            &["Graphorn Fantastic Beasts", "Graphorn creature"][..],
            1,
        ),
        (
            "hero",
            &[
                "Hogwarts Legacy protagonist",
                "Hogwarts Legacy player character",
            ][..],
            20,
        ),
    ];
    for (entity, queries, seed) in sets {
        let ids: Vec<String> = (0..3).map(|i| format!("{entity}-{i}")).collect();
        let results: Vec<_> = ids
            .iter()
            .map(|id| result(&base, id, &format!("{entity} photo"), 800, 600))
            .collect();
        let body = json!({
            "result_count": results.len(), "page_count": 1, "page_size": 20, "page": 1,
            "results": results, "warnings": []
        });
        for q in queries {
            Mock::given(method("GET"))
                .and(path("/v1/images/"))
                .and(query_param("q", *q))
                .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
                .mount(web)
                .await;
        }
        for (i, id) in ids.iter().enumerate() {
            let bytes = picture(seed + i as u32, 320, 240);
            for dir in ["thumb", "full"] {
                Mock::given(method("GET"))
                    .and(path(format!("/{dir}/{id}.png")))
                    .respond_with(
                        ResponseTemplate::new(200).set_body_raw(bytes.clone(), "image/png"),
                    )
                    .mount(web)
                    .await;
            }
            served.push((id.clone(), bytes));
        }
    }
    served
}

#[tokio::test]
async fn two_entities_are_each_selected_with_clip_from_their_own_search_and_both_sent() {
    if !ort_available() {
        return;
    }
    let (api, web) = (MockServer::start().await, MockServer::start().await);
    let served = mount_two_entities(&web).await;
    mount_chat(&api, "assessment", &["gate_two_entities.json"]).await;
    mount_chat(&api, "pick", &["chat_pick.json"]).await;
    mount_chat(&api, "verdict", &["verdict_entities_aligned.json"]).await;
    mount_images(&api, "edits", &["images_red.json"]).await;
    let cache = tempfile::tempdir().unwrap();
    let pipeline = whole_stack(&api, &web, cache.path());
    let out = pipeline
        .run(Request::new(
            "The Hogwarts Legacy protagonist riding a Graphorn",
        ))
        .await
        .unwrap();

    let report = &out.report;
    let chosen = |entity: &str| -> &Candidate {
        let r = report
            .retrievals
            .iter()
            .find(|r| r.entity.as_deref() == Some(entity))
            .unwrap_or_else(|| panic!("no retrieval for {entity}"));
        let s = r.selection.as_ref().expect("a selection");
        assert_eq!(s.ranked.len(), 3, "ranked with CLIP among its own 3");
        assert!(s.ranked.iter().all(|x| x.scores.clip_prompt.is_some()));
        &s.best.candidate
    };
    let graphorn = chosen("Graphorn");
    let hero = chosen("Hogwarts Legacy protagonist");
    let id_of = |c: &Candidate| {
        let file = c.image_url.path().rsplit('/').next().unwrap().to_string();
        file.trim_end_matches(".png").to_string()
    };
    assert!(
        id_of(graphorn).starts_with("graphorn-"),
        "{}",
        graphorn.image_url
    );
    assert!(id_of(hero).starts_with("hero-"), "{}", hero.image_url);

    let edits = requests_to(&api, "/v1/images/edits").await;
    assert_eq!(edits.len(), 1);
    let bytes_of = |id: String| served.iter().find(|(i, _)| *i == id).unwrap().1.clone();
    let form = Form::parse(&edits[0]);
    assert!(
        form.image_bytes()
            == [
                bytes_of(id_of(graphorn)).as_slice(),
                bytes_of(id_of(hero)).as_slice()
            ],
        "image[] carries Graphorn's reference, then the protagonist's"
    );
    let prompt = form.text("prompt");
    assert!(
        prompt.contains("Reference image 1 shows Graphorn"),
        "{prompt}"
    );
    assert!(
        prompt.contains("Reference image 2 shows Hogwarts Legacy protagonist"),
        "{prompt}"
    );
    assert_eq!(out.references.len(), 2);
}
