//! `ComfyUi` checks a workflow against the server's `GET /object_info` before it uploads
//! or queues anything: a node class the server lacks (a custom node not installed) or a
//! mapped input its node does not have is a clear error naming the node; the answer is
//! fetched once per client; a server without `/object_info` is not checked.

mod common;

use common::*;
use iat2i::ErrorClass;
use iat2i::generator::comfyui::Workflow;
use iat2i::generator::{GenerationRequest, Generator, ImageError};

async fn with_object_info(edit: impl FnOnce(&mut serde_json::Value)) -> Comfy {
    let comfy = Comfy::start(None, HistoryScript::SuccessAfter(0)).await;
    let mut info = gen_json("comfyui_object_info.json");
    edit(&mut info);
    comfy.serve_object_info(info).await;
    comfy
}

#[tokio::test]
async fn a_node_class_the_server_lacks_is_named_and_nothing_is_queued() {
    // An older server without CLIPTextEncode's class (as a missing custom node looks).
    let comfy = with_object_info(|info| {
        info.as_object_mut().unwrap().remove("CLIPTextEncode");
    })
    .await;
    let err = comfy
        .client(comfy_workflow("sdxl_text"))
        .with_websocket(false)
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        matches!(&err, ImageError::Node { node, class_type, .. } if node == "6" && class_type == "CLIPTextEncode"),
        "{err:?}"
    );
    assert!(
        shown.contains("node 7 (CLIPTextEncode)"),
        "every node named: {shown}"
    );
    assert!(
        shown.contains("no node class \"CLIPTextEncode\""),
        "{shown}"
    );
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    assert!(comfy.requests("/prompt").await.is_empty());
}

#[tokio::test]
async fn a_mapped_input_the_node_does_not_have_is_named_before_queueing() {
    let comfy = with_object_info(|_| {}).await;
    let graph = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflows/sdxl_text.json"),
    )
    .unwrap();
    // A node map written for KSamplerAdvanced-style inputs.
    let nodes = r#"{"prompt": {"node_id": "6", "input_field": "text"},
                    "seed": {"node_id": "3", "input_field": "noise_seed"}}"#;
    let wf = Workflow::from_json(&graph, nodes).unwrap();
    let err = comfy
        .client(wf)
        .with_websocket(false)
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(
        matches!(&err, ImageError::Node { node, class_type, .. } if node == "3" && class_type == "KSampler"),
        "{err:?}"
    );
    assert!(shown.contains("no input \"noise_seed\""), "{shown}");
    assert!(shown.contains("seed") && shown.contains("steps"), "{shown}");
    assert_eq!(err.class(), ErrorClass::InvalidRequest);
    assert!(comfy.requests("/prompt").await.is_empty());
}

#[tokio::test]
async fn object_info_is_fetched_once_and_a_server_without_it_is_not_blocked() {
    let comfy = with_object_info(|_| {}).await;
    let c = comfy
        .client(comfy_workflow("sdxl_text"))
        .with_websocket(false);
    for _ in 0..3 {
        c.generate(&GenerationRequest::new("a cat")).await.unwrap();
    }
    let shared = c.clone();
    shared
        .generate(&GenerationRequest::new("a cat"))
        .await
        .unwrap();
    assert_eq!(comfy.requests("/object_info").await.len(), 1);
    assert_eq!(comfy.requests("/prompt").await.len(), 4);

    // No /object_info (404): the jobs run, and the server is not asked again.
    let bare = Comfy::start(None, HistoryScript::SuccessAfter(0)).await;
    let c = bare
        .client(comfy_workflow("sdxl_text"))
        .with_websocket(false);
    for _ in 0..2 {
        c.generate(&GenerationRequest::new("a cat")).await.unwrap();
    }
    assert_eq!(bare.requests("/object_info").await.len(), 1);
    assert_eq!(bare.requests("/prompt").await.len(), 2);
}
