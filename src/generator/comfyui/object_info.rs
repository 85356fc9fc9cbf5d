//! The server's node classes and their inputs (`GET /object_info`), checked against a
//! workflow before it is queued, so that a missing custom node or a node map naming an
//! input the node does not have is a clear error instead of a refused or failed job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use iat2i_retrievers::{HttpError, Trust};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::ComfyUi;
use super::wire::NodeFault;
use super::workflow::Workflow;
use crate::generator::{ImageError, NodeFailure};

/// What `/object_info` says the server has: each node class and, when the server
/// described them, the names of its `required` and `optional` inputs.
#[derive(Debug, Default)]
pub(crate) struct ObjectInfo {
    classes: HashMap<String, Option<BTreeSet<String>>>,
}

/// One class's entry: `{"input": {"required": {name: spec}, "optional": {..}, "hidden":
/// {..}}, "input_order": .., "output": .., "name": .., ..}`. Custom nodes put odd things
/// there; an entry that is not this shape still says the class exists.
#[derive(Deserialize)]
#[serde(untagged)]
enum Entry {
    Described { input: Inputs },
    Other(IgnoredAny),
}

#[derive(Deserialize)]
struct Inputs {
    #[serde(default)]
    required: Names,
    #[serde(default)]
    optional: Names,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Names {
    Map(BTreeMap<String, IgnoredAny>),
    #[default]
    None,
    Other(IgnoredAny),
}

impl Names {
    fn into_names(self) -> impl Iterator<Item = String> {
        match self {
            Names::Map(m) => Some(m.into_keys()),
            Names::None | Names::Other(_) => None,
        }
        .into_iter()
        .flatten()
    }
}

impl ObjectInfo {
    /// Parse `/object_info`'s answer (an object keyed by class name).
    pub fn parse(body: &[u8]) -> Result<ObjectInfo, serde_json::Error> {
        let raw: HashMap<String, Entry> = serde_json::from_slice(body)?;
        let classes = raw
            .into_iter()
            .map(|(class, entry)| {
                let inputs = match entry {
                    Entry::Described { input } => Some(
                        input
                            .required
                            .into_names()
                            .chain(input.optional.into_names())
                            .collect(),
                    ),
                    Entry::Other(_) => None,
                };
                (class, inputs)
            })
            .collect();
        Ok(ObjectInfo { classes })
    }

    /// Every node of `workflow` whose class the server lacks, and every mapped input a
    /// node's class does not have.
    pub fn faults(&self, workflow: &Workflow) -> Vec<NodeFault> {
        let mut faults: BTreeMap<&str, NodeFault> = BTreeMap::new();
        for (id, class) in workflow.node_classes() {
            if !self.classes.contains_key(class) {
                faults.insert(
                    id,
                    NodeFault {
                        node: id.to_string(),
                        class_type: class.to_string(),
                        messages: vec![format!(
                            "the server has no node class {class:?} (a custom node that is not \
                             installed?): install it, e.g. with ComfyUI-Manager, and restart \
                             ComfyUI, or use a workflow without it"
                        )],
                    },
                );
            }
        }
        for (param, input) in workflow.mapped() {
            let class = workflow.class_of(&input.node_id);
            let Some(Some(names)) = self.classes.get(&class) else {
                continue;
            };
            if names.contains(&input.input_field) {
                continue;
            }
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            let message = format!(
                "{class} has no input {:?} (the node map sets {param} there); its inputs are: \
                 {}. Fix the node map",
                input.input_field,
                known.join(", ")
            );
            faults
                .entry(input.node_id.as_str())
                .or_insert_with(|| NodeFault {
                    node: input.node_id.clone(),
                    class_type: class.clone(),
                    messages: Vec::new(),
                })
                .messages
                .push(message);
        }
        let mut faults: Vec<NodeFault> = faults.into_values().collect();
        faults.sort_by_key(|f| (f.node.parse::<u64>().unwrap_or(u64::MAX), f.node.clone()));
        faults
    }
}

/// `/object_info` of one server, fetched once: `None` when the server does not offer it.
pub(crate) type ObjectInfoCache = Arc<tokio::sync::OnceCell<Option<Arc<ObjectInfo>>>>;

impl ComfyUi {
    /// Check `workflow` against the server's node classes before anything is uploaded or
    /// queued. A server without `/object_info` is not checked (logged); one that could not
    /// be asked now is asked again on the next call.
    pub(super) async fn check_nodes(&self, workflow: &Workflow) -> Result<(), ImageError> {
        let info = self
            .object_info
            .get_or_try_init(|| self.fetch_object_info())
            .await;
        let info = match info {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "could not read /object_info; the workflow's nodes are not checked this time");
                return Ok(());
            }
        };
        match self.nodes_failed(info.faults(workflow), NodeFailure::Invalid) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// An `/object_info` answer checked against the client's workflow as before its
    /// first job: `Ok(false)` when it is not the shape ComfyUI sends (the workflow is
    /// then not checked), `Ok(true)` when the workflow passes, else the error naming the
    /// failing nodes. For the fuzz harness (`fuzz/`, `make fuzz`); not part of the API.
    #[doc(hidden)]
    pub fn fuzz_object_info(&self, body: &[u8]) -> Result<bool, ImageError> {
        let Ok(info) = ObjectInfo::parse(body) else {
            return Ok(false);
        };
        match self.nodes_failed(info.faults(&self.workflow), NodeFailure::Invalid) {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }

    async fn fetch_object_info(&self) -> Result<Option<Arc<ObjectInfo>>, ImageError> {
        let url = self.url("object_info")?;
        let sent = self
            .http
            .execute(Trust::Trusted, |c| self.auth(c.get(url.clone())))
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(HttpError::Status { status, .. }) if status.is_client_error() => {
                tracing::warn!(%status, "the ComfyUI server has no /object_info; its nodes are not checked before queueing");
                return Ok(None);
            }
            Err(e) => return Err(self.http_error(e)),
        };
        match ObjectInfo::parse(&resp.body) {
            Ok(info) => Ok(Some(Arc::new(info))),
            Err(e) => {
                tracing::warn!(error = %e, "/object_info is not the shape ComfyUI sends; its nodes are not checked before queueing");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_entries_still_name_their_class() {
        let info = ObjectInfo::parse(
            br#"{"A": {"input": {"required": {"x": ["INT", {}]}, "optional": {"y": ["STRING"]},
                        "hidden": {"prompt": "PROMPT"}}},
                 "B": {"input": {"required": null}},
                 "C": "garbled"}"#,
        )
        .unwrap();
        let names = |c: &str| {
            info.classes[c]
                .clone()
                .map(|s| s.into_iter().collect::<Vec<_>>())
        };
        assert_eq!(names("A"), Some(vec!["x".to_string(), "y".to_string()]));
        assert_eq!(names("B"), Some(vec![]));
        assert_eq!(names("C"), None);
    }
}
