//! The evaluation tests' scripted judges: a chat server that answers each judge (by the
//! JSON schema it asks for) with known replies, counting the calls, and a pipeline world.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use iat2i::eval::EvalReport;
use iat2i::prelude::*;
use serde_json::{Value, json};
use wiremock::{MockServer, Request as WireRequest, Respond, ResponseTemplate};

use super::{Harness, fixture_json, mount_chat_replies};

/// A chat completion whose content is `content` (the shape of the recorded fixtures).
pub fn completion(content: &Value) -> ResponseTemplate {
    let mut body = fixture_json("verdict_aligned.json");
    body["choices"][0]["message"]["content"] = Value::String(content.to_string());
    body["usage"] = json!({"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940});
    ResponseTemplate::new(200).set_body_json(body)
}

/// Answers `content`, counting the calls; after `stop_after` calls it sets `stop` (an
/// interruption in the middle of the judging).
pub struct Scripted {
    pub content: Value,
    pub calls: Arc<AtomicUsize>,
    pub stop: Option<(usize, Arc<AtomicBool>)>,
}

impl Respond for Scripted {
    fn respond(&self, _: &WireRequest) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((after, flag)) = &self.stop
            && n >= *after
        {
            flag.store(true, Ordering::SeqCst);
        }
        completion(&self.content)
    }
}

/// The pairwise judge prefers the augmented arm's (green) image in whichever position it
/// is shown, so the swap rule must give augmented the win every time.
pub struct PrefersGreen {
    pub green: String,
    pub calls: Arc<AtomicUsize>,
}

impl Respond for PrefersGreen {
    fn respond(&self, req: &WireRequest) -> ResponseTemplate {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let parts = &body["messages"][0]["content"];
        let urls: Vec<&str> = parts
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["image_url"]["url"].as_str())
            .collect();
        let winner = match urls.first() {
            Some(u) if u.ends_with(&self.green) => "A",
            _ => "B",
        };
        completion(&json!({"winner": winner, "reason": "the right subject"}))
    }
}

pub struct Judges {
    pub checklist: Arc<AtomicUsize>,
    pub wiscore: Arc<AtomicUsize>,
    pub pairwise: Arc<AtomicUsize>,
}

pub async fn mount_judges(server: &MockServer, stop: Option<(usize, Arc<AtomicBool>)>) -> Judges {
    let j = Judges {
        checklist: Arc::default(),
        wiscore: Arc::default(),
        pairwise: Arc::default(),
    };
    // Items 1 and 2 satisfied, 3 not, the rest unjudged (so unsatisfied): 2/len per prompt.
    let items = json!({"items": [
        {"index": 1, "satisfied": true, "reason": "visible"},
        {"index": 2, "satisfied": true, "reason": "visible"},
        {"index": 3, "satisfied": false, "reason": "absent"},
    ]});
    mount_chat_replies(
        server,
        "checklist",
        Scripted {
            content: items,
            calls: j.checklist.clone(),
            stop,
        },
    )
    .await;
    mount_chat_replies(
        server,
        "wiscore",
        Scripted {
            content: json!({"consistency": 2, "realism": 1, "aesthetic_quality": 1, "reason": "ok"}),
            calls: j.wiscore.clone(),
            stop: None,
        },
    )
    .await;
    let green = fixture_json("images_green.json")["data"][0]["b64_json"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    mount_chat_replies(
        server,
        "pairwise",
        PrefersGreen {
            green,
            calls: j.pairwise.clone(),
        },
    )
    .await;
    j
}

pub async fn world() -> (Harness, Arc<Pipeline>) {
    let h = Harness::start(&["gate_needs_reference.json"], &["verdict_aligned.json"]).await;
    h.images("generations", &["images_red.json"]).await;
    h.images("edits", &["images_green.json"]).await;
    let pipeline = Arc::new(h.builder(GateMode::FromPrompt, 1).build().unwrap());
    (h, pipeline)
}

/// A chat completion whose content is the plain text `text`.
pub fn completion_text(text: &str) -> ResponseTemplate {
    let mut body = fixture_json("verdict_aligned.json");
    body["choices"][0]["message"]["content"] = Value::String(text.to_string());
    ResponseTemplate::new(200).set_body_json(body)
}

/// The summary of the arm named `name`.
pub fn eval_arm<'a>(r: &'a EvalReport, name: &str) -> &'a iat2i::eval::ArmSummary {
    r.arms.iter().find(|a| a.name == name).unwrap()
}
