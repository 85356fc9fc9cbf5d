//! Targets for the image generators' answers: Gemini's `generateContent`, chat-completions
//! images (OpenRouter's `message.images[]`), and ComfyUI's `/prompt`, `/history/{id}`,
//! websocket frames and `/object_info`.

use std::sync::LazyLock;

use iat2i::generator::comfyui::{ComfyUi, Workflow};
use iat2i::generator::{ChatImages, GeminiImages, ImageError};
use iat2i::retrievers::HttpClient;

use super::Target;

/// The prompt id the ComfyUI targets wait for: the one the fixtures are written with.
const PROMPT_ID: &str = "__PROMPT_ID__";

/// The start of each message the parsers write themselves (the rest of an `Api` or
/// `NoImage` message is the server's, so only these prefixes tell outcomes apart).
const MESSAGES: &[&str] = &[
    "/prompt answered with something that is not JSON",
    "/prompt refused the workflow",
    "the server ignored the client-chosen prompt_id",
    "the workflow failed validation",
    "/history answered with something that is not JSON",
    "a /history entry of an unexpected shape",
    "not a generateContent response",
    "no candidates and no block reason",
    "the candidate has neither",
    "not a chat completion",
    "no choices",
    "choices[0] has no message",
    "choices[0].message has neither",
    "part ",
    "images[",
];

fn message_kind(message: &str) -> &'static str {
    MESSAGES
        .iter()
        .find(|m| message.starts_with(*m))
        .copied()
        .unwrap_or("the server's")
}

/// A short signature of an error: its variant, with a refusal's kind, a node failure's
/// kind and how many nodes it names, or which of the parsers' own messages it is.
fn image_error(e: &ImageError) -> String {
    match e {
        ImageError::Config(_) => "err config".into(),
        ImageError::Http { .. } => "err http".into(),
        ImageError::Api { message, .. } => format!("err api: {}", message_kind(message)),
        ImageError::NoImage { detail, .. } => format!("err no image: {}", message_kind(detail)),
        ImageError::Refused { kind, text, .. } => {
            format!("err refused {kind:?} text {}", text.is_some())
        }
        ImageError::Node {
            failure, message, ..
        } => {
            let nodes = 1 + message.matches("; also node ").count();
            format!("err node {failure:?} x{}", nodes.min(8))
        }
        ImageError::Timeout { .. } => "err timeout".into(),
        _ => "err other".into(),
    }
}

fn reply(r: Result<(usize, bool), ImageError>) -> String {
    match r {
        Ok((images, text)) => format!("ok {} text {text}", images.min(4)),
        Err(e) => image_error(&e),
    }
}

fn gemini(input: &[u8]) -> String {
    reply(GeminiImages::fuzz_read_reply(input))
}

fn chat_images(input: &[u8]) -> String {
    reply(ChatImages::fuzz_read_reply(input))
}

/// A client for a local ComfyUI running the SDXL example workflow (the one the
/// `/object_info` fixture describes in full). Built once; it never sends a request.
static COMFY: LazyLock<Option<ComfyUi>> = LazyLock::new(|| {
    let graph = include_str!("../../../examples/workflows/sdxl_text.json");
    let nodes = include_str!("../../../examples/workflows/sdxl_text.nodes.json");
    let workflow = Workflow::from_json(graph, nodes).ok()?;
    let http = HttpClient::builder().build().ok()?;
    ComfyUi::new(http, "http://127.0.0.1:8188", workflow).ok()
});

fn comfy() -> &'static ComfyUi {
    match COMFY.as_ref() {
        Some(c) => c,
        None => panic!("the fuzz harness could not build its ComfyUI client"),
    }
}

/// `/prompt`'s answer, read both as a 200 and as a 400 (a failed validation).
fn comfyui_prompt(input: &[u8]) -> String {
    let as_status = |status| match comfy().fuzz_prompt_answer(status, input, PROMPT_ID) {
        Ok(()) => "queued".to_string(),
        Err(e) => image_error(&e),
    };
    format!("200 {} / 400 {}", as_status(200), as_status(400))
}

fn comfyui_history(input: &[u8]) -> String {
    match comfy().fuzz_history(input, PROMPT_ID) {
        Ok(None) => "pending".into(),
        Ok(Some(images)) => format!("finished {}", images.min(4)),
        Err(e) => image_error(&e),
    }
}

fn comfyui_ws(input: &[u8]) -> String {
    match comfy().fuzz_ws_frame(&String::from_utf8_lossy(input), PROMPT_ID) {
        Ok(kind) => kind.to_string(),
        Err(e) => image_error(&e),
    }
}

fn comfyui_object_info(input: &[u8]) -> String {
    match comfy().fuzz_object_info(input) {
        Ok(true) => "workflow passes".into(),
        Ok(false) => "not checked".into(),
        Err(e) => image_error(&e),
    }
}

const GEMINI_DICT: &[&[u8]] = &[
    b"\"candidates\":",
    b"\"content\":{\"parts\":[]}",
    b"\"parts\":",
    b"\"text\":\"\"",
    b"\"thought\":true",
    b"\"thought\":false",
    b"\"thoughtSignature\":\"\"",
    b"\"thought_signature\":",
    b"\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"\"}",
    b"\"inline_data\":",
    b"\"mimeType\":",
    b"\"data\":\"iVBORw0KGgo=\"",
    b"\"data\":\"/9j/\"",
    b"\"data\":\"====\"",
    b"\"finishReason\":\"STOP\"",
    b"\"finishReason\":\"IMAGE_SAFETY\"",
    b"\"finishReason\":\"NO_IMAGE\"",
    b"\"finishReason\":\"\"",
    b"\"finishMessage\":\"\"",
    b"\"promptFeedback\":{\"blockReason\":\"SAFETY\"}",
    b"\"blockReasonMessage\":",
    b"\"safetyRatings\":[{\"category\":\"X\",\"probability\":\"HIGH\",\"blocked\":true}]",
    b"\"usageMetadata\":{}",
    b"\"promptTokenCount\":18446744073709551615",
    b"\"thoughtsTokenCount\":-1",
    b"\"candidatesTokensDetails\":[{\"modality\":\"IMAGE\",\"tokenCount\":1e30}]",
    b"\"modality\":\"TEXT\"",
    b"{\"modality\":\"IMAGE\",\"tokenCount\":18446744073709551615},",
    b"{\"modality\":\"TEXT\",\"tokenCount\":9223372036854775808},",
];

const CHAT_IMAGES_DICT: &[&[u8]] = &[
    b"\"choices\":",
    b"\"message\":",
    b"\"images\":[]",
    b"\"images\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"\"}}]",
    b"\"image_url\":",
    b"\"url\":\"data:image/png;base64,iVBORw0KGgo=\"",
    b"data:",
    b";base64,",
    b"data:image/png,",
    b"\"content\":[{\"type\":\"text\",\"text\":\"x\"}]",
    b"\"content\":\"\"",
    b"\"refusal\":\"no\"",
    b"\"finish_reason\":\"content_filter\"",
    b"\"native_finish_reason\":\"IMAGE_PROHIBITED_CONTENT\"",
    b"\"native_finish_reason\":\"\"",
    b"\"error\":{\"code\":502,\"message\":\"x\"}",
    b"\"error\":null",
    b"\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":-1,\"total_tokens\":1e99}",
];

const COMFYUI_DICT: &[&[u8]] = &[
    b"\"__PROMPT_ID__\"",
    b"\"prompt_id\":\"__PROMPT_ID__\"",
    b"\"prompt_id\":\"other\"",
    b"\"prompt_id\":null",
    b"\"number\":",
    b"\"node_errors\":{}",
    b"\"node_errors\":{\"3\":{\"errors\":[],\"class_type\":\"KSampler\"}}",
    b"\"errors\":[{\"type\":\"x\",\"message\":\"m\",\"details\":\"d\"}]",
    b"\"dependent_outputs\":[\"9\"]",
    b"\"class_type\":",
    b"\"error\":\"x\"",
    b"\"error\":{\"message\":\"m\",\"details\":\"d\"}",
    b"\"extra_info\":{}",
    b"\"outputs\":{}",
    b"\"images\":[{\"filename\":\"a.png\",\"subfolder\":\"\",\"type\":\"output\"}]",
    b"\"type\":\"temp\"",
    b"\"status\":{\"status_str\":\"success\",\"completed\":true,\"messages\":[]}",
    b"\"status_str\":\"error\"",
    b"\"completed\":",
    b"\"messages\":[[\"execution_error\",{}]]",
    b"[\"execution_start\",{}]",
    b"\"node_id\":3",
    b"\"node_id\":\"99\"",
    b"\"node_type\":null",
    b"\"exception_type\":\"torch.OutOfMemoryError\"",
    b"\"exception_message\":\"CUDA out of memory\"",
    b"\"input\":{\"required\":{},\"optional\":{}}",
    b"\"required\":null",
    b"\"optional\":[]",
    b"\"hidden\":{\"prompt\":\"PROMPT\"}",
    b"\"KSampler\"",
    b"\"18446744073709551615\"",
];

const COMFYUI_WS_DICT: &[&[u8]] = &[
    b"{\"type\":\"",
    b"\"data\":{}",
    b"\"data\":null",
    b"\"type\":\"status\"",
    b"\"type\":\"execution_start\"",
    b"\"type\":\"execution_cached\"",
    b"\"type\":\"executing\"",
    b"\"type\":\"progress\"",
    b"\"type\":\"progress_state\"",
    b"\"type\":\"executed\"",
    b"\"type\":\"execution_success\"",
    b"\"type\":\"execution_error\"",
    b"\"type\":\"execution_interrupted\"",
    b"\"prompt_id\":\"__PROMPT_ID__\"",
    b"\"prompt_id\":\"someone-else\"",
    b"\"node\":null",
    b"\"node\":\"3\"",
    b"\"node\":3",
    b"\"display_node\":\"3\"",
    b"\"nodes\":[\"4\",5,null]",
    b"\"value\":18446744073709551615",
    b"\"max\":-1",
    b"\"value\":1.5",
    b"\"node_id\":[1]",
    b"\"node_type\":\"KSampler\"",
    b"\"exception_type\":\"RuntimeError\"",
    b"\"exception_message\":\"MPS backend out of memory\"",
    b"\"traceback\":[]",
    b"\"sid\":\"c1\"",
    b"\"output\":{\"images\":[]}",
];

/// Gemini `generateContent` answers.
pub const GEMINI: Target = Target {
    name: "gemini",
    run: gemini,
    fixtures: &[
        "generators/gemini_image.json",
        "generators/gemini_image_snake.json",
        "generators/gemini3_pro_thinking.json",
        "generators/gemini_image_safety.json",
        "generators/gemini_image_prohibited.json",
        "generators/gemini_image_recitation.json",
        "generators/gemini_no_image.json",
        "generators/gemini_prompt_blocked.json",
        "generators/gemini_prompt_blocked_safety.json",
        "generators/gemini_safety.json",
        "generators/gemini_text_only.json",
        "generators/gemini_error_429.json",
    ],
    extra: &[
        r#"{"candidates": [{"content": {"parts": [{"text": "a caption", "thoughtSignature": "c2ln"}, {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRgABAQ=="}}]}, "finishReason": "STOP"}]}"#,
        r#"{"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "text/plain", "data": "aGVsbG8="}}]}, "finishReason": "NO_IMAGE", "finishMessage": "no image"}]}"#,
        r#"{"candidates": [{"finishReason": "IMAGE_OTHER"}], "usageMetadata": {"promptTokenCount": 3, "thoughtsTokenCount": 9}}"#,
        r#"{"candidates": [], "promptFeedback": {"blockReason": "OTHER", "blockReasonMessage": "blocked"}}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": "x"}]}}], "usageMetadata": {"promptTokenCount": 18446744073709551615, "thoughtsTokenCount": 18446744073709551615, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9223372036854775808}, {"modality": "IMAGE", "tokenCount": 18446744073709551615}], "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 18446744073709551615}]}}"#,
    ],
    dict: GEMINI_DICT,
    json: true,
    chat_content: false,
};

/// Chat-completions image answers (OpenRouter's `message.images[]`).
pub const CHAT_IMAGES: Target = Target {
    name: "chat_images",
    run: chat_images,
    fixtures: &[
        "generators/chat_images_image.json",
        "generators/chat_images_filtered.json",
        "generators/chat_images_text_only.json",
        "generators/chat_images_error_in_200.json",
        "generators/gemini_chat_openai.json",
    ],
    extra: &[
        r#"{"choices": [{"message": {"content": [{"type": "text", "text": "here"}], "images": [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ=="}}]}, "finish_reason": "stop"}]}"#,
        r#"{"choices": [{"message": {"content": null, "refusal": "I can't draw that"}, "finish_reason": "stop", "native_finish_reason": "SAFETY"}]}"#,
        r#"{"choices": [{"error": {"code": 429, "message": "Rate limit exceeded"}, "finish_reason": "error"}]}"#,
        r#"{"choices": [{"message": {"images": [{"image_url": {"url": "https://example.com/a.png"}}]}}]}"#,
        r#"{"choices": []}"#,
    ],
    dict: CHAT_IMAGES_DICT,
    json: true,
    chat_content: false,
};

/// ComfyUI's `POST /prompt` answers (200, and 400 with `node_errors`).
pub const COMFYUI_PROMPT: Target = Target {
    name: "comfyui_prompt",
    run: comfyui_prompt,
    fixtures: &[
        "generators/comfyui_prompt_ok.json",
        "generators/comfyui_prompt_invalid.json",
        "generators/comfyui_prompt_invalid_many.json",
    ],
    extra: &[
        r#"{"prompt_id": "another-id", "number": 0, "node_errors": {}}"#,
        r#"{"error": "no prompt", "node_errors": []}"#,
        r#"{"error": {"type": "invalid_prompt", "message": "Cannot execute because a node is missing the class_type property.", "details": "Node ID '#7'", "extra_info": {}}, "node_errors": {}}"#,
        r#"{"error": {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}, "node_errors": []}"#,
        "Internal Server Error",
    ],
    dict: COMFYUI_DICT,
    json: true,
    chat_content: false,
};

/// ComfyUI's `GET /history/{id}` answers.
pub const COMFYUI_HISTORY: Target = Target {
    name: "comfyui_history",
    run: comfyui_history,
    fixtures: &[
        "generators/comfyui_history_success.json",
        "generators/comfyui_history_error.json",
    ],
    extra: &[
        "{}",
        r#"{"__PROMPT_ID__": {"outputs": {}, "status": {"status_str": "success", "completed": true, "messages": []}}}"#,
        r#"{"__PROMPT_ID__": {"outputs": {"5": {"images": [{"filename": "a.png", "subfolder": "x", "type": "output"}]}}, "status": null}}"#,
        r#"{"__PROMPT_ID__": {"outputs": {}, "status": {"status_str": "error", "completed": false, "messages": [["execution_interrupted", {"prompt_id": "__PROMPT_ID__", "node_id": "3", "node_type": "KSampler", "executed": []}]]}}}"#,
    ],
    dict: COMFYUI_DICT,
    json: true,
    chat_content: false,
};

/// ComfyUI's websocket text frames, in the shapes ComfyUI's `server.py` and
/// `execution.py` send them.
pub const COMFYUI_WS: Target = Target {
    name: "comfyui_ws",
    run: comfyui_ws,
    fixtures: &[],
    extra: &[
        r#"{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "c1"}}"#,
        r#"{"type": "execution_start", "data": {"prompt_id": "__PROMPT_ID__", "timestamp": 1746042000123}}"#,
        r#"{"type": "execution_cached", "data": {"nodes": ["4", "7"], "prompt_id": "__PROMPT_ID__", "timestamp": 1746042000124}}"#,
        r#"{"type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": "__PROMPT_ID__"}}"#,
        r#"{"type": "progress", "data": {"value": 3, "max": 20, "prompt_id": "__PROMPT_ID__", "node": "3"}}"#,
        r#"{"type": "progress", "data": {"value": 3, "max": 20}}"#,
        r#"{"type": "progress", "data": {"value": 9, "max": 9, "prompt_id": "someone-else", "node": "3"}}"#,
        r#"{"type": "progress_state", "data": {"prompt_id": "__PROMPT_ID__", "nodes": {"3": {"value": 3, "max": 20, "state": "running", "node_id": "3", "prompt_id": "__PROMPT_ID__", "display_node_id": "3", "parent_node_id": null, "real_node_id": "3"}}}}"#,
        r#"{"type": "executed", "data": {"node": "9", "display_node": "9", "output": {"images": [{"filename": "iat2i_00001_.png", "subfolder": "", "type": "output"}]}, "prompt_id": "__PROMPT_ID__"}}"#,
        r#"{"type": "executing", "data": {"node": null, "prompt_id": "__PROMPT_ID__"}}"#,
        r#"{"type": "execution_success", "data": {"prompt_id": "__PROMPT_ID__", "timestamp": 1746042000999}}"#,
        r#"{"type": "execution_error", "data": {"prompt_id": "__PROMPT_ID__", "node_id": "3", "node_type": "KSampler", "executed": ["4"], "exception_message": "Allocation on device", "exception_type": "torch.OutOfMemoryError", "traceback": ["  File \"execution.py\"\n"], "current_inputs": {}, "current_outputs": {}, "timestamp": 1746042000500}}"#,
        r#"{"type": "execution_interrupted", "data": {"prompt_id": "__PROMPT_ID__", "node_id": "3", "node_type": "KSampler", "executed": ["4"], "timestamp": 1746042000600}}"#,
        r#"{"type": "crystools.monitor", "data": {"cpu_utilization": 12.5, "gpus": [{"gpu_utilization": 99}]}}"#,
    ],
    dict: COMFYUI_WS_DICT,
    json: true,
    chat_content: false,
};

/// ComfyUI's `GET /object_info` answers, checked against the SDXL example workflow.
pub const COMFYUI_OBJECT_INFO: Target = Target {
    name: "comfyui_object_info",
    run: comfyui_object_info,
    fixtures: &["generators/comfyui_object_info.json"],
    extra: &[
        r#"{"KSampler": {"input": {"required": {"seed": ["INT", {}]}}}, "CheckpointLoaderSimple": "garbled", "EmptyLatentImage": {"input": {"required": null}}, "CLIPTextEncode": {"input": {"required": {"text": ["STRING", {"multiline": true}], "clip": ["CLIP"]}}}, "VAEDecode": {}, "SaveImage": {"input": []}}"#,
        r#"{"KSampler": {"input": {"required": {"model": ["MODEL"]}, "optional": {"seed": ["INT"]}, "hidden": {"unique_id": "UNIQUE_ID"}}, "input_order": {"required": ["model"]}, "output": ["LATENT"], "name": "KSampler", "category": "sampling", "output_node": false}}"#,
        "[]",
    ],
    dict: COMFYUI_DICT,
    json: true,
    chat_content: false,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(super::super::fixtures_dir().join("generators").join(name)).unwrap()
    }

    /// The fixtures reach the parsers' outcomes they stand for: a harness that read them
    /// wrongly (a prompt id the fixtures do not use, a workflow the `/object_info`
    /// fixture does not describe) would fuzz the first error path only.
    #[test]
    fn the_fixtures_reach_what_they_stand_for() {
        assert_eq!(
            gemini(&fixture("gemini3_pro_thinking.json")),
            "ok 1 text true"
        );
        assert_eq!(
            gemini(&fixture("gemini_image_safety.json")),
            "err refused Safety text true"
        );
        assert_eq!(
            chat_images(&fixture("chat_images_image.json")),
            "ok 1 text true"
        );
        assert_eq!(
            comfyui_prompt(&fixture("comfyui_prompt_ok.json")),
            "200 queued / 400 err api: the workflow failed validation"
        );
        assert_eq!(
            comfyui_prompt(&fixture("comfyui_prompt_invalid_many.json")),
            "200 err node Invalid x3 / 400 err node Invalid x3"
        );
        assert_eq!(
            comfyui_history(&fixture("comfyui_history_success.json")),
            "finished 1"
        );
        assert!(comfyui_history(&fixture("comfyui_history_error.json")).starts_with("err node"));
        assert_eq!(
            comfyui_object_info(&fixture("comfyui_object_info.json")),
            "workflow passes"
        );
        let outcomes: Vec<String> = COMFYUI_WS
            .extra
            .iter()
            .map(|s| comfyui_ws(s.as_bytes()))
            .collect();
        for kind in [
            "started",
            "progress",
            "unattributed progress",
            "executing done",
        ] {
            assert!(outcomes.iter().any(|o| o == kind), "{kind}: {outcomes:?}");
        }
        assert!(outcomes.iter().any(|o| o == "err node OutOfMemory x1"));
    }
}
