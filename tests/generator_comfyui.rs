//! `ComfyUi` against a local ComfyUI (HTTP API on wiremock, websocket of our own):
//! uploads, the queued workflow with the mapped inputs set, websocket progress, the
//! polling fallback, node errors, execution errors and the interrupt on timeout; one
//! client shared by concurrent jobs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use iat2i::generator::comfyui::{ComfyUi, Workflow};
use iat2i::generator::{
    GenerationRequest, Generator, GeneratorProgress, ImageError, ImageSize, ProgressSink,
};
use iat2i::{ErrorClass, InputImage};
use wiremock::ResponseTemplate;

fn workflow(name: &str) -> Workflow {
    comfy_workflow(name)
}

fn client(c: &Comfy, wf: &str) -> ComfyUi {
    c.client(workflow(wf))
}

/// A request whose progress reports are collected.
fn watched(request: GenerationRequest) -> (GenerationRequest, Arc<Mutex<Vec<GeneratorProgress>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let mut request = request;
    request.progress = Some(ProgressSink::new(move |p| s.lock().unwrap().push(p)));
    (request, seen)
}

#[tokio::test]
async fn a_reference_is_uploaded_set_on_load_image_and_progress_comes_over_the_websocket() {
    let comfy = Comfy::start(Some(WsScript::Success), HistoryScript::SuccessAfter(0)).await;
    let mut request = GenerationRequest::new("A Graphorn grazing at dusk")
        .with_references(vec![png_ref("orange.png", "a Graphorn")]);
    request.seed = Some(42);
    let (request, seen) = watched(request);
    let out = client(&comfy, "flux_kontext")
        .generate(&request)
        .await
        .unwrap();

    // The upload: multipart image + type=input + overwrite=true, bytes unchanged.
    let uploads = comfy.requests("/upload/image").await;
    assert_eq!(uploads.len(), 1);
    let form = Form::parse(&uploads[0]);
    assert_eq!(form.text("type"), "input");
    assert_eq!(form.text("overwrite"), "true");
    let image = form.named("image");
    assert_eq!(image.len(), 1);
    assert_eq!(image[0].data, gen_bytes("orange.png").to_vec());
    assert_eq!(image[0].content_type.as_deref(), Some("image/png"));
    let uploaded = image[0].filename.clone().unwrap();

    // The job: our client_id and prompt_id; the mapped inputs set, links kept.
    let queued = comfy.queued().await;
    assert!(queued["client_id"].as_str().is_some_and(|c| !c.is_empty()));
    let id = queued["prompt_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let graph = &queued["prompt"];
    assert_eq!(graph["6"]["inputs"]["text"], "A Graphorn grazing at dusk");
    assert_eq!(graph["31"]["inputs"]["seed"], 42);
    assert_eq!(graph["142"]["inputs"]["image"], uploaded.as_str());
    assert_eq!(
        graph["42"]["inputs"]["image"],
        serde_json::json!(["142", 0])
    );

    // Progress from the websocket, other jobs' messages ignored.
    let seen = seen.lock().unwrap().clone();
    let steps: Vec<(u64, u64)> = seen
        .iter()
        .filter(|p| p.stage == "progress")
        .map(|p| (p.value.unwrap(), p.max.unwrap()))
        .collect();
    assert_eq!(steps, [(1, 2), (2, 2)], "{seen:?}");
    assert!(
        seen.iter()
            .any(|p| p.stage == "executing" && p.node.as_deref() == Some("3"))
    );
    assert!(!seen.iter().any(|p| p.stage == "polling"), "{seen:?}");

    // The image through /view, the temp preview skipped.
    let views = comfy.requests("/view").await;
    assert_eq!(views.len(), 1);
    let q: Vec<(String, String)> = views[0].url.query_pairs().into_owned().collect();
    assert!(
        q.contains(&("filename".into(), "iat2i_00001_.png".into())),
        "{q:?}"
    );
    assert!(q.contains(&("type".into(), "output".into())), "{q:?}");
    assert_eq!(out.images.len(), 1);
    assert_eq!(out.images[0].bytes, gen_bytes("teal.png"));
    assert_eq!((out.usage.images, out.usage.calls), (1, 1));
    assert_eq!(out.prompt_sent, "A Graphorn grazing at dusk");
}

#[tokio::test]
async fn a_dropped_websocket_falls_back_to_polling_history() {
    let comfy = Comfy::start(Some(WsScript::Drop), HistoryScript::SuccessAfter(2)).await;
    let (request, seen) = watched(GenerationRequest::new("a cat"));
    let out = client(&comfy, "sdxl_text")
        .generate(&request)
        .await
        .unwrap();
    assert_eq!(out.images[0].bytes, gen_bytes("teal.png"));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|p| p.stage == "started"), "{seen:?}");
    assert!(seen.iter().any(|p| p.stage == "polling"), "{seen:?}");
    assert!(comfy.requests("/prompt").await.len() == 1);
    let polls = comfy
        .http
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/history/"))
        .count();
    assert!(polls >= 3, "polled {polls} times");
}

#[tokio::test]
async fn text_workflow_inputs_size_batch_and_negative_prompt_are_set() {
    let comfy = Comfy::start(None, HistoryScript::SuccessAfter(1)).await;
    let mut request = GenerationRequest::new("a lighthouse");
    request.negative_prompt = Some("fog".into());
    request.size = Some(ImageSize::parse("3:2").unwrap());
    request.n = 3;
    request
        .options
        .insert("3".into(), serde_json::json!({"steps": 8, "cfg": 4.5}));
    let out = client(&comfy, "sdxl_text")
        .with_websocket(false)
        .generate(&request)
        .await
        .unwrap();
    let graph = &comfy.queued().await["prompt"];
    assert_eq!(graph["6"]["inputs"]["text"], "a lighthouse");
    assert_eq!(graph["7"]["inputs"]["text"], "fog");
    assert_eq!(graph["5"]["inputs"]["width"], 1024);
    assert_eq!(graph["5"]["inputs"]["height"], 704);
    assert_eq!(
        graph["5"]["inputs"]["batch_size"], 3,
        "n goes to the batch size"
    );
    assert_eq!(graph["3"]["inputs"]["steps"], 8);
    assert_eq!(graph["3"]["inputs"]["model"], serde_json::json!(["4", 0]));
    assert!(graph["3"]["inputs"]["seed"].is_u64());
    assert!(comfy.requests("/upload/image").await.is_empty());
    assert!(out.notes.is_empty(), "{:?}", out.notes);
}

#[tokio::test]
async fn node_errors_name_the_node_and_the_message() {
    let comfy = Comfy::rejecting(
        ResponseTemplate::new(400).set_body_json(gen_json("comfyui_prompt_invalid.json")),
    )
    .await;
    let err = client(&comfy, "sdxl_text")
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    let ImageError::Node {
        node,
        class_type,
        message,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (node.as_str(), class_type.as_str()),
        ("4", "CheckpointLoaderSimple")
    );
    assert!(message.contains("Value not in list"), "{message}");
    assert!(
        err.to_string().contains("flux1-dev-kontext_fp8_scaled"),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::InvalidRequest, "{err}");
}

#[tokio::test]
async fn node_errors_of_several_nodes_name_every_node_and_message() {
    let comfy = Comfy::rejecting(
        ResponseTemplate::new(400).set_body_json(gen_json("comfyui_prompt_invalid_many.json")),
    )
    .await;
    let err = client(&comfy, "sdxl_text")
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    let shown = err.to_string();
    for part in [
        "node 3 (KSampler)",
        "Value 0 smaller than min of 1: steps",
        "sampler_name: 'euler_fast' not in",
        "node 4 (CheckpointLoaderSimple)",
        "ckpt_name: 'sd_xl_base_1.0.safetensors' not in []",
        "node 6 (CLIPTextEncode)",
        "Required input is missing: clip",
    ] {
        assert!(shown.contains(part), "{part:?} missing from: {shown}");
    }
    assert!(
        matches!(&err, ImageError::Node { node, class_type, .. } if node == "3" && class_type == "KSampler"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
}

#[tokio::test]
async fn execution_errors_from_history_and_websocket_name_the_node() {
    let comfy = Comfy::start(None, HistoryScript::Error).await;
    let err = client(&comfy, "sdxl_text")
        .with_websocket(false)
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        matches!(err, ImageError::Node { ref node, .. } if node == "3"),
        "{err:?}"
    );
    assert!(
        shown.contains("KSampler") && shown.contains("CUDA out of memory"),
        "{shown}"
    );
    // Out of GPU memory: the server is busy or the job too big, not a bug of ours.
    assert_eq!(err.class(), ErrorClass::Unavailable, "{err}");

    let comfy = Comfy::start(Some(WsScript::Error), HistoryScript::Never).await;
    let err = client(&comfy, "sdxl_text")
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("RuntimeError: Expected all tensors"),
        "{err}"
    );
    assert!(
        matches!(&err, ImageError::Node { node, class_type, .. } if node == "3" && class_type == "KSampler"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::InvalidRequest, "{err}");
}

#[tokio::test]
async fn a_job_that_outlives_the_timeout_is_interrupted_and_dequeued() {
    let comfy = Comfy::start(None, HistoryScript::Never).await;
    let err = client(&comfy, "sdxl_text")
        .with_websocket(false)
        .with_timeout(Duration::from_millis(300))
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Timeout { .. }), "{err:?}");
    let id = comfy.queued().await["prompt_id"]
        .as_str()
        .unwrap()
        .to_string();
    let interrupts = comfy.requests("/interrupt").await;
    assert_eq!(interrupts.len(), 1);
    assert_eq!(json_body(&interrupts[0])["prompt_id"], id.as_str());
    let deletes = comfy.requests("/queue").await;
    assert!(
        deletes
            .iter()
            .any(|r| json_body(r)["delete"][0] == id.as_str())
    );
}

#[tokio::test]
async fn server_errors_and_malformed_answers_are_clear_errors() {
    let comfy = Comfy::rejecting(ResponseTemplate::new(500).set_body_string("boom")).await;
    let err = client(&comfy, "sdxl_text")
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Http { .. }), "{err:?}");
    assert!(err.to_string().contains("500"), "{err}");

    let comfy = Comfy::rejecting(ResponseTemplate::new(200).set_body_string("<html>")).await;
    let err = client(&comfy, "sdxl_text")
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}

#[tokio::test]
async fn a_text_only_request_uses_the_text_workflow_and_extra_images_are_noted() {
    let comfy = Comfy::start(None, HistoryScript::SuccessAfter(0)).await;
    let c = client(&comfy, "qwen_image_edit")
        .with_websocket(false)
        .with_text_workflow(workflow("sdxl_text"));
    c.generate(&GenerationRequest::new("a cat")).await.unwrap();
    assert_eq!(
        comfy.queued().await["prompt"]["4"]["class_type"],
        "CheckpointLoaderSimple"
    );

    let comfy = Comfy::start(None, HistoryScript::SuccessAfter(0)).await;
    let c = client(&comfy, "qwen_image_edit").with_websocket(false);
    let request = GenerationRequest::new("put the creature in a meadow")
        .with_references(vec![png_ref("orange.png", "a Graphorn")])
        .with_edit_image(InputImage::sniff(gen_bytes("teal.png")));
    let out = c.generate(&request).await.unwrap();
    let graph = &comfy.queued().await["prompt"];
    assert_eq!(
        graph["111"]["inputs"]["prompt"],
        "put the creature in a meadow"
    );
    let form = Form::parse(&comfy.requests("/upload/image").await[0]);
    let image = form.named("image");
    assert_eq!(
        image[0].data,
        gen_bytes("teal.png").to_vec(),
        "the image to edit fills the one slot"
    );
    assert!(
        out.notes[0].contains("1 of 2 images not sent"),
        "{:?}",
        out.notes
    );
}

#[tokio::test]
async fn concurrent_jobs_on_one_shared_client_each_hear_their_own_socket() {
    // ComfyUI sends a client id's messages to its newest socket only: jobs sharing a
    // client id would wait out their timeout and then interrupt finished work.
    let run_for = Duration::from_millis(500);
    let comfy = Comfy::start(Some(WsScript::Success), HistoryScript::SuccessAfter(0))
        .await
        .run_for(run_for);
    let shared = Arc::new(client(&comfy, "sdxl_text"));
    let started = Instant::now();
    let calls = (0..4).map(|i| {
        let c = shared.clone();
        tokio::spawn(async move {
            c.generate(&GenerationRequest::new(format!("job {i}")))
                .await
        })
    });
    let outs: Vec<_> = futures::future::join_all(calls).await;
    let took = started.elapsed();
    assert!(comfy.requests("/interrupt").await.is_empty());
    assert!(
        took < run_for * 2 + Duration::from_millis(500),
        "took {took:?}"
    );

    let queued: Vec<serde_json::Value> = comfy
        .requests("/prompt")
        .await
        .iter()
        .map(json_body)
        .collect();
    assert_eq!(queued.len(), 4);
    let mut clients: Vec<String> = queued
        .iter()
        .map(|q| q["client_id"].as_str().unwrap().to_string())
        .collect();
    clients.sort();
    clients.dedup();
    assert_eq!(clients.len(), 4, "one client id per job: {clients:?}");
    let mut sockets = comfy.ws_clients();
    sockets.sort();
    assert_eq!(
        sockets, clients,
        "each job's socket uses its job's client id"
    );
    for (i, out) in outs.into_iter().enumerate() {
        let out = out.unwrap().unwrap();
        let mine = queued
            .iter()
            .find(|q| q["prompt"]["6"]["inputs"]["text"] == format!("job {i}").as_str())
            .unwrap();
        let n = comfy.file_of(mine["prompt_id"].as_str().unwrap());
        assert_eq!(out.images.len(), 1);
        assert_eq!(
            out.images[0].bytes,
            Comfy::output(n),
            "job {i} got job {n}'s image"
        );
    }
}

#[tokio::test]
async fn progress_without_a_prompt_id_from_older_servers_is_the_running_jobs() {
    let comfy = Comfy::start(
        Some(WsScript::LegacyProgress),
        HistoryScript::SuccessAfter(0),
    )
    .await;
    let (request, seen) = watched(GenerationRequest::new("a cat"));
    client(&comfy, "sdxl_text")
        .generate(&request)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let steps: Vec<(u64, u64)> = seen
        .iter()
        .filter(|p| p.stage == "progress")
        .map(|p| (p.value.unwrap(), p.max.unwrap()))
        .collect();
    assert_eq!(steps, [(1, 2), (2, 2)], "{seen:?}");
}

/// A batch re-runs a done job when the workflow changes (its fingerprint carries the
/// generator's identity): the identity holds the workflow's digest and node map.
#[test]
fn the_identity_changes_with_the_workflow_and_its_node_map() {
    use iat2i::generator::Generator;
    let at = |wf: Workflow| {
        ComfyUi::new(test_http(), "http://127.0.0.1:8188", wf)
            .unwrap()
            .identity()
    };
    let kontext = at(comfy_workflow("flux_kontext"));
    assert_eq!(at(comfy_workflow("flux_kontext")), kontext);
    assert_ne!(at(comfy_workflow("qwen_image_edit")), kontext);
    // The same graph with one input changed (more sampling steps).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflows");
    let graph = std::fs::read_to_string(dir.join("flux_kontext.json")).unwrap();
    let nodes = std::fs::read_to_string(dir.join("flux_kontext.nodes.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&graph).unwrap();
    let sampler = value
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|n| n["inputs"].get("steps").is_some())
        .unwrap();
    sampler["inputs"]["steps"] = serde_json::json!(99);
    let changed = Workflow::from_json(&value.to_string(), &nodes).unwrap();
    assert_ne!(at(changed), kontext);
    assert!(!kontext.contains("sk-"), "no secret in {kontext}");
}
