//! ComfyUI's JSON: `/prompt` answers, `/history/{id}` entries and websocket messages.

use serde::Deserialize;
use serde_json::Value;

use crate::generator::NodeFailure;

/// A websocket message that matters to one job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WsEvent {
    /// The job started.
    Started,
    /// Nodes whose outputs were cached.
    Cached(Vec<String>),
    /// A node began (`None`: the job is done).
    Executing(Option<String>),
    /// Sampler steps.
    Progress {
        node: Option<String>,
        value: u64,
        max: u64,
    },
    /// Sampler steps without a prompt id (older ComfyUI builds): the running job's,
    /// when the socket has exactly one job of ours running.
    UnattributedProgress {
        node: Option<String>,
        value: u64,
        max: u64,
    },
    /// A node produced output.
    Executed(String),
    /// The job finished.
    Success,
    /// A node failed.
    Error(ExecutionError),
    /// The job was interrupted.
    Interrupted,
    /// Anything else (status, other jobs, previews).
    Other,
}

/// `execution_error`'s data, on the websocket or in a history entry's messages.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct ExecutionError {
    #[serde(default)]
    pub node_id: Option<Value>,
    #[serde(default)]
    pub node_type: Option<String>,
    #[serde(default)]
    pub exception_message: Option<String>,
    #[serde(default)]
    pub exception_type: Option<String>,
}

impl ExecutionError {
    pub fn node(&self) -> String {
        match &self.node_id {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "?".into(),
        }
    }

    /// What kind of failure this is: out of memory, another exception, or unknown.
    pub fn failure(&self) -> NodeFailure {
        let kind = self.exception_type.as_deref().unwrap_or("").trim();
        let msg = self.exception_message.as_deref().unwrap_or("").trim();
        if kind.contains("OutOfMemory") || msg.to_ascii_lowercase().contains("out of memory") {
            NodeFailure::OutOfMemory
        } else if kind.is_empty() && msg.is_empty() {
            NodeFailure::Unknown
        } else {
            NodeFailure::Raised
        }
    }

    pub fn message(&self) -> String {
        let msg = self.exception_message.as_deref().unwrap_or("").trim();
        match self.exception_type.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => format!("{t}: {msg}"),
            _ if msg.is_empty() => "the server reported an error without saying what".into(),
            _ => msg.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct WsMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Parse a text frame; [`WsEvent::Other`] when it is not about `prompt_id`.
pub(crate) fn parse_ws(text: &str, prompt_id: &str) -> WsEvent {
    let Ok(msg) = serde_json::from_str::<WsMessage>(text) else {
        return WsEvent::Other;
    };
    let d = &msg.data;
    let progress = || {
        (
            str_field(d, "node"),
            d.get("value").and_then(Value::as_u64).unwrap_or(0),
            d.get("max").and_then(Value::as_u64).unwrap_or(0),
        )
    };
    match str_field(d, "prompt_id") {
        Some(id) if id == prompt_id => {}
        // Older ComfyUI builds send step progress without the prompt id.
        None if msg.kind == "progress" => {
            let (node, value, max) = progress();
            return WsEvent::UnattributedProgress { node, value, max };
        }
        _ => return WsEvent::Other,
    }
    match msg.kind.as_str() {
        "execution_start" => WsEvent::Started,
        "execution_cached" => WsEvent::Cached(
            d.get("nodes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "executing" => WsEvent::Executing(str_field(d, "node")),
        "progress" => {
            let (node, value, max) = progress();
            WsEvent::Progress { node, value, max }
        }
        "executed" => WsEvent::Executed(str_field(d, "node").unwrap_or_default()),
        "execution_success" => WsEvent::Success,
        "execution_error" => match serde_json::from_value(d.clone()) {
            Ok(e) => WsEvent::Error(e),
            Err(_) => WsEvent::Other,
        },
        "execution_interrupted" => WsEvent::Interrupted,
        _ => WsEvent::Other,
    }
}

/// `POST /prompt`'s answer (200, or 400 with `error` and `node_errors`).
#[derive(Debug, Deserialize)]
pub(crate) struct PromptAnswer {
    #[serde(default)]
    pub prompt_id: Option<String>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub node_errors: Option<Value>,
}

/// One failing node and what the server said about it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeFault {
    /// The node id in the workflow.
    pub node: String,
    /// The node's class (`?` when the server did not say).
    pub class_type: String,
    /// Each of its messages (`message: details`).
    pub messages: Vec<String>,
}

/// Every node in `node_errors` (`{id: {errors: [{type, message, details, extra_info}],
/// dependent_outputs, class_type}}`), in node-id order (numeric ids numerically).
pub(crate) fn node_faults(node_errors: &Value) -> Vec<NodeFault> {
    let Some(map) = node_errors.as_object() else {
        return Vec::new();
    };
    let mut faults: Vec<NodeFault> = map
        .iter()
        .map(|(id, entry)| NodeFault {
            node: id.clone(),
            class_type: entry
                .get("class_type")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            messages: entry
                .get("errors")
                .and_then(Value::as_array)
                .map(|errs| errs.iter().map(error_message).collect())
                .unwrap_or_default(),
        })
        .collect();
    faults.sort_by_key(|f| (f.node.parse::<u64>().unwrap_or(u64::MAX), f.node.clone()));
    faults
}

/// The message of `/prompt`'s `error` (an object with `message`, or a string).
pub(crate) fn error_message(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        v => {
            let m = v.get("message").and_then(Value::as_str).unwrap_or("");
            match v.get("details").and_then(Value::as_str) {
                Some(d) if !d.is_empty() => format!("{m}: {d}"),
                _ => m.to_string(),
            }
        }
    }
}

/// One `/history/{id}` entry.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HistoryEntry {
    #[serde(default)]
    pub outputs: serde_json::Map<String, Value>,
    #[serde(default)]
    pub status: Option<HistoryStatus>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HistoryStatus {
    #[serde(default)]
    pub status_str: Option<String>,
    #[serde(default)]
    pub completed: bool,
    /// `[[name, data], ..]`.
    #[serde(default)]
    pub messages: Vec<(String, Value)>,
}

/// An image listed in `outputs[node].images[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct OutputImage {
    pub filename: String,
    #[serde(default)]
    pub subfolder: String,
    #[serde(default, rename = "type")]
    pub kind: String,
}

impl HistoryEntry {
    /// The execution error recorded in the status messages, when any.
    pub fn error(&self) -> Option<ExecutionError> {
        let st = self.status.as_ref()?;
        st.messages
            .iter()
            .find(|(name, _)| name == "execution_error")
            .and_then(|(_, d)| serde_json::from_value(d.clone()).ok())
    }

    /// Whether the job ended (well or badly).
    pub fn finished(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.completed || matches!(s.status_str.as_deref(), Some("success") | Some("error"))
        })
    }

    /// The job's result: the images of the output node `node`, else (none mapped, or it
    /// has none) those of every output node.
    pub fn results(&self, node: Option<&str>) -> Vec<OutputImage> {
        let listed = self.images(node);
        if listed.is_empty() && node.is_some() {
            tracing::warn!("the mapped output node has no images; taking every output node's");
            return self.images(None);
        }
        listed
    }

    /// The output images: of `node` when given, else of every node; `temp` previews skipped.
    pub fn images(&self, node: Option<&str>) -> Vec<OutputImage> {
        let mut out = Vec::new();
        for (id, o) in &self.outputs {
            if node.is_some_and(|n| n != id) {
                continue;
            }
            let imgs = o.get("images").and_then(Value::as_array);
            for img in imgs.into_iter().flatten() {
                if let Ok(i) = serde_json::from_value::<OutputImage>(img.clone())
                    && i.kind != "temp"
                {
                    out.push(i);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_messages_of_other_jobs_are_ignored() {
        let mine = r#"{"type": "progress", "data": {"value": 3, "max": 20, "prompt_id": "p1", "node": "3"}}"#;
        assert_eq!(
            parse_ws(mine, "p1"),
            WsEvent::Progress {
                node: Some("3".into()),
                value: 3,
                max: 20
            }
        );
        assert_eq!(parse_ws(mine, "p2"), WsEvent::Other);
        let done = r#"{"type": "executing", "data": {"node": null, "prompt_id": "p1"}}"#;
        assert_eq!(parse_ws(done, "p1"), WsEvent::Executing(None));
        assert_eq!(parse_ws("not json", "p1"), WsEvent::Other);
    }

    #[test]
    fn progress_without_a_prompt_id_is_left_for_the_caller_to_attribute() {
        let legacy = r#"{"type": "progress", "data": {"value": 3, "max": 20}}"#;
        assert_eq!(
            parse_ws(legacy, "p1"),
            WsEvent::UnattributedProgress {
                node: None,
                value: 3,
                max: 20
            }
        );
        let other = r#"{"type": "executing", "data": {"node": "3"}}"#;
        assert_eq!(parse_ws(other, "p1"), WsEvent::Other);
    }

    #[test]
    fn execution_errors_say_what_kind_of_failure_they_are() {
        let e = |t: Option<&str>, m: Option<&str>| ExecutionError {
            node_id: Some(Value::String("3".into())),
            node_type: None,
            exception_message: m.map(str::to_string),
            exception_type: t.map(str::to_string),
        };
        let oom = e(Some("torch.OutOfMemoryError"), Some("CUDA out of memory."));
        assert_eq!(oom.failure(), NodeFailure::OutOfMemory);
        let mps = e(Some("RuntimeError"), Some("MPS backend out of memory"));
        assert_eq!(mps.failure(), NodeFailure::OutOfMemory);
        let raised = e(Some("ValueError"), Some("image too small"));
        assert_eq!(raised.failure(), NodeFailure::Raised);
        assert_eq!(raised.message(), "ValueError: image too small");
        let unknown = e(None, None);
        assert_eq!(unknown.failure(), NodeFailure::Unknown);
        assert!(
            unknown.message().contains("without saying"),
            "{}",
            unknown.message()
        );
    }

    #[test]
    fn every_failing_node_is_listed_in_id_order() {
        let v: Value = serde_json::from_str(
            r#"{"10": {"errors": [{"message": "m10", "details": ""}], "class_type": "B"},
                "4": {"errors": [{"message": "a", "details": "x"}, {"message": "b", "details": ""}],
                      "dependent_outputs": ["9"], "class_type": "A"}}"#,
        )
        .unwrap();
        let f = node_faults(&v);
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].node.as_str(), f[0].class_type.as_str()), ("4", "A"));
        assert_eq!(f[0].messages, ["a: x", "b"]);
        assert_eq!(f[1].messages, ["m10"]);
        assert!(node_faults(&Value::Array(vec![])).is_empty());
    }
}
