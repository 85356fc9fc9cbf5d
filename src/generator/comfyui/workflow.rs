//! ComfyUI workflows in API format and the map of their inputs, following Open WebUI's
//! convention: `{param: {node_id, input_field}}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::generator::ImageError;

/// One input of one node: `{"node_id": "6", "input_field": "text"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInput {
    /// The node's id in the API-format workflow (a string key such as `"6"`).
    pub node_id: String,
    /// The input to set, such as `text`, `seed`, `width` or `image`.
    pub input_field: String,
}

/// One input or several (a parameter set in more than one node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeInputs {
    /// One node input.
    One(NodeInput),
    /// Several, all set to the same value (or, for images, filled in order).
    Many(Vec<NodeInput>),
}

impl NodeInputs {
    fn all(&self) -> Vec<&NodeInput> {
        match self {
            NodeInputs::One(n) => vec![n],
            NodeInputs::Many(v) => v.iter().collect(),
        }
    }
}

/// Where the request's parameters go in the workflow. Keys: `prompt`,
/// `negative_prompt`, `seed`, `width`, `height`, `batch_size`, `images` (the `LoadImage`
/// inputs, filled in order with the image to edit, then the references; `image` is
/// accepted too) and `output` (the node whose images are the result; every output node
/// when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowNodes {
    /// The positive prompt's text input(s).
    #[serde(default)]
    pub prompt: Option<NodeInputs>,
    /// The negative prompt's text input(s).
    #[serde(default)]
    pub negative_prompt: Option<NodeInputs>,
    /// The sampler seed(s).
    #[serde(default)]
    pub seed: Option<NodeInputs>,
    /// The latent width.
    #[serde(default)]
    pub width: Option<NodeInputs>,
    /// The latent height.
    #[serde(default)]
    pub height: Option<NodeInputs>,
    /// The latent batch size (images per job).
    #[serde(default)]
    pub batch_size: Option<NodeInputs>,
    /// The image inputs, filled in order: the image to edit first, then the references.
    #[serde(default, alias = "image")]
    pub images: Option<NodeInputs>,
    /// The node whose images are the result.
    #[serde(default)]
    pub output: Option<NodeOutput>,
}

/// The output node: `{"node_id": "9"}` or just `"9"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeOutput {
    /// `{"node_id": "9"}`.
    Node {
        /// The node id.
        node_id: String,
    },
    /// `"9"`.
    Id(String),
}

impl NodeOutput {
    /// The node id.
    pub fn id(&self) -> &str {
        match self {
            NodeOutput::Node { node_id } | NodeOutput::Id(node_id) => node_id,
        }
    }
}

/// A workflow in API format (`{"3": {"class_type": "KSampler", "inputs": {..}}, ..}`)
/// and the map of its inputs, checked against each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    graph: BTreeMap<String, Value>,
    nodes: WorkflowNodes,
}

/// What to set in a workflow for one job.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobInputs {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub seed: u64,
    pub size: Option<(u32, u32)>,
    pub batch_size: u32,
    /// Uploaded file names, the image to edit first.
    pub images: Vec<String>,
}

impl Workflow {
    /// SHA-256 (hex) of the graph and the node map: two workflows with the same digest
    /// make the same images from the same inputs.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let graph = serde_json::to_string(&self.graph).unwrap_or_default();
        let nodes = serde_json::to_string(&self.nodes).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(graph.as_bytes());
        h.update([0]);
        h.update(nodes.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Check `graph` (an API-format export: "Save (API)" in ComfyUI) against `nodes`:
    /// every mapped node must exist and have an `inputs` object, and a prompt must be
    /// mapped.
    pub fn new(graph: Value, nodes: WorkflowNodes) -> Result<Self, ImageError> {
        let Value::Object(map) = graph else {
            return Err(ImageError::Config(
                "the ComfyUI workflow is not a JSON object; export it with \"Save (API)\"".into(),
            ));
        };
        if map.contains_key("nodes") && map.contains_key("links") {
            return Err(ImageError::Config(
                "this is a UI-format ComfyUI workflow; export it in API format with \
                 \"Save (API)\" (enable dev mode options in older versions)"
                    .into(),
            ));
        }
        let graph: BTreeMap<String, Value> = map.into_iter().collect();
        let wf = Workflow { graph, nodes };
        if wf.nodes.prompt.is_none() {
            return Err(ImageError::Config(
                "the workflow node map has no \"prompt\" entry ({\"prompt\": {\"node_id\": .., \
                 \"input_field\": \"text\"}})"
                    .into(),
            ));
        }
        for (param, input) in wf.mapped() {
            let node = wf.graph.get(&input.node_id).ok_or_else(|| {
                ImageError::Config(format!(
                    "the node map sets {param} on node {:?}, which is not in the workflow",
                    input.node_id
                ))
            })?;
            if !node.get("inputs").is_some_and(Value::is_object) {
                return Err(ImageError::Config(format!(
                    "workflow node {:?} (for {param}) has no inputs object",
                    input.node_id
                )));
            }
        }
        if let Some(out) = &wf.nodes.output
            && !wf.graph.contains_key(out.id())
        {
            return Err(ImageError::Config(format!(
                "the output node {:?} is not in the workflow",
                out.id()
            )));
        }
        Ok(wf)
    }

    /// Parse a workflow and a node map from JSON text.
    pub fn from_json(workflow: &str, nodes: &str) -> Result<Self, ImageError> {
        let graph: Value = serde_json::from_str(workflow)
            .map_err(|e| ImageError::Config(format!("the workflow is not JSON: {e}")))?;
        let nodes: WorkflowNodes = serde_json::from_str(nodes)
            .map_err(|e| ImageError::Config(format!("the workflow node map is not valid: {e}")))?;
        Workflow::new(graph, nodes)
    }

    /// Every mapped node input, with the parameter it carries.
    pub(crate) fn mapped(&self) -> Vec<(&'static str, &NodeInput)> {
        let n = &self.nodes;
        let params: [(&'static str, &Option<NodeInputs>); 7] = [
            ("prompt", &n.prompt),
            ("negative_prompt", &n.negative_prompt),
            ("seed", &n.seed),
            ("width", &n.width),
            ("height", &n.height),
            ("batch_size", &n.batch_size),
            ("images", &n.images),
        ];
        params
            .into_iter()
            .flat_map(|(p, v)| {
                v.iter()
                    .flat_map(move |i| i.all().into_iter().map(move |x| (p, x)))
            })
            .collect()
    }

    /// How many image inputs the workflow maps.
    pub fn image_slots(&self) -> usize {
        self.nodes.images.as_ref().map_or(0, |i| i.all().len())
    }

    /// Whether a negative prompt has somewhere to go.
    pub fn takes_negative_prompt(&self) -> bool {
        self.nodes.negative_prompt.is_some()
    }

    /// Whether the batch size is mapped.
    pub fn takes_batch_size(&self) -> bool {
        self.nodes.batch_size.is_some()
    }

    /// Whether width and height are mapped.
    pub fn takes_size(&self) -> bool {
        self.nodes.width.is_some() && self.nodes.height.is_some()
    }

    /// The output node, when mapped.
    pub fn output_node(&self) -> Option<&str> {
        self.nodes.output.as_ref().map(NodeOutput::id)
    }

    /// The graph with `inputs` set in the mapped nodes.
    pub(crate) fn apply(&self, job: &JobInputs) -> Result<Value, ImageError> {
        let mut graph = self.graph.clone();
        let mut set = |inputs: &Option<NodeInputs>, value: Value| {
            for i in inputs.iter().flat_map(NodeInputs::all) {
                if let Some(obj) = graph
                    .get_mut(&i.node_id)
                    .and_then(|n| n.get_mut("inputs"))
                    .and_then(Value::as_object_mut)
                {
                    obj.insert(i.input_field.clone(), value.clone());
                }
            }
        };
        set(&self.nodes.prompt, json!(job.prompt));
        if let Some(neg) = &job.negative_prompt {
            set(&self.nodes.negative_prompt, json!(neg));
        }
        set(&self.nodes.seed, json!(job.seed));
        if let Some((w, h)) = job.size {
            set(&self.nodes.width, json!(w));
            set(&self.nodes.height, json!(h));
        }
        set(&self.nodes.batch_size, json!(job.batch_size.max(1)));
        let slots: Vec<&NodeInput> = self.nodes.images.iter().flat_map(NodeInputs::all).collect();
        if job.images.len() < slots.len() {
            return Err(ImageError::Config(format!(
                "the workflow has {} image inputs but the request has {} image(s); use a \
                 workflow without image inputs for text-only requests (ComfyUi::with_text_workflow)",
                slots.len(),
                job.images.len()
            )));
        }
        for (slot, name) in slots.iter().zip(&job.images) {
            if let Some(obj) = graph
                .get_mut(&slot.node_id)
                .and_then(|n| n.get_mut("inputs"))
                .and_then(Value::as_object_mut)
            {
                obj.insert(slot.input_field.clone(), json!(name));
            }
        }
        Ok(Value::Object(graph.into_iter().collect()))
    }

    /// Every node of the graph: its id and `class_type` (`?` when it has none).
    pub(crate) fn node_classes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.graph.iter().map(|(id, node)| {
            let class = node.get("class_type").and_then(Value::as_str);
            (id.as_str(), class.unwrap_or("?"))
        })
    }

    /// The class of node `id`, for error messages.
    pub fn class_of(&self, id: &str) -> String {
        self.graph
            .get(id)
            .and_then(|n| n.get("class_type"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf() -> Workflow {
        Workflow::from_json(
            r#"{"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["4", 1]}},
                "3": {"class_type": "KSampler", "inputs": {"seed": 1}},
                "10": {"class_type": "LoadImage", "inputs": {"image": "a.png"}}}"#,
            r#"{"prompt": {"node_id": "6", "input_field": "text"},
                "seed": [{"node_id": "3", "input_field": "seed"}],
                "image": {"node_id": "10", "input_field": "image"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn mapped_inputs_are_set_and_links_kept() {
        let job = JobInputs {
            prompt: "a cat".into(),
            seed: 42,
            images: vec!["up.png".into()],
            ..JobInputs::default()
        };
        let g = wf().apply(&job).unwrap();
        assert_eq!(g["6"]["inputs"]["text"], "a cat");
        assert_eq!(g["6"]["inputs"]["clip"], json!(["4", 1]));
        assert_eq!(g["3"]["inputs"]["seed"], 42);
        assert_eq!(g["10"]["inputs"]["image"], "up.png");
    }

    #[test]
    fn bad_maps_and_ui_exports_are_refused_with_a_reason() {
        let e = Workflow::from_json(
            r#"{"6": {"class_type": "CLIPTextEncode", "inputs": {}}}"#,
            r#"{"prompt": {"node_id": "7", "input_field": "text"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("node \"7\""), "{e}");
        let e = Workflow::from_json(r#"{"nodes": [], "links": []}"#, r#"{}"#).unwrap_err();
        assert!(e.to_string().contains("API format"), "{e}");
        let job = JobInputs::default();
        assert!(
            wf().apply(&job)
                .unwrap_err()
                .to_string()
                .contains("1 image inputs")
        );
    }
}
