//! Waiting for a queued job: its websocket messages, then (or instead) `/history`.

use super::wire::{self, HistoryEntry, WsEvent};
use super::{ComfyUi, progress, ws};
use crate::generator::{GenerationRequest, Generator, GeneratorProgress, ImageError};

impl ComfyUi {
    /// Wait for the job through the websocket, then (or instead) by polling.
    pub(super) async fn wait(
        &self,
        channel: Option<ws::Progress>,
        prompt_id: &str,
        request: &GenerationRequest,
    ) -> Result<HistoryEntry, ImageError> {
        if let Some(mut ch) = channel {
            if self.follow(&mut ch, prompt_id, request).await? {
                if let Some(entry) = self.history(prompt_id).await?
                    && (entry.finished() || !entry.outputs.is_empty())
                {
                    return self.check(entry);
                }
            } else {
                tracing::warn!(prompt_id, "the ComfyUI websocket dropped; polling /history");
                request.report(progress("polling", None));
            }
        }
        loop {
            if let Some(entry) = self.history(prompt_id).await?
                && entry.finished()
            {
                return self.check(entry);
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    pub(super) fn check(&self, entry: HistoryEntry) -> Result<HistoryEntry, ImageError> {
        match entry.error() {
            Some(e) => Err(self.execution_error(&e)),
            None => Ok(entry),
        }
    }

    fn execution_error(&self, e: &wire::ExecutionError) -> ImageError {
        let node = e.node();
        ImageError::Node {
            endpoint: self.describe(),
            class_type: e
                .node_type
                .clone()
                .unwrap_or_else(|| self.workflow.class_of(&node)),
            node,
            message: e.message(),
            failure: e.failure(),
        }
    }

    /// Follow the websocket to the job's end: `Ok(true)` when it finished, `Ok(false)`
    /// when the socket closed first.
    ///
    /// The socket is this job's alone (its client id is new), so step progress without
    /// a prompt id (older ComfyUI builds) is this job's once it has started.
    async fn follow(
        &self,
        ch: &mut ws::Progress,
        prompt_id: &str,
        request: &GenerationRequest,
    ) -> Result<bool, ImageError> {
        let mut running = false;
        while let Some(text) = ch.next_text().await {
            let event = wire::parse_ws(&text, prompt_id);
            running |= matches!(
                event,
                WsEvent::Started
                    | WsEvent::Cached(_)
                    | WsEvent::Executing(Some(_))
                    | WsEvent::Progress { .. }
            );
            match event {
                WsEvent::Started => request.report(progress("started", None)),
                WsEvent::Cached(nodes) => {
                    request.report(progress("cached", Some(nodes.join(","))));
                }
                WsEvent::Executing(Some(node)) => {
                    request.report(progress("executing", Some(node)));
                }
                WsEvent::Executing(None) | WsEvent::Success => {
                    request.report(progress("done", None));
                    return Ok(true);
                }
                WsEvent::Progress { node, value, max } => {
                    request.report(steps(node, value, max));
                }
                WsEvent::UnattributedProgress { node, value, max } if running => {
                    request.report(steps(node, value, max));
                }
                WsEvent::Executed(node) => request.report(progress("executed", Some(node))),
                WsEvent::Error(e) => return Err(self.execution_error(&e)),
                WsEvent::Interrupted => {
                    return Err(ImageError::Api {
                        endpoint: self.describe(),
                        message: "the job was interrupted on the server".into(),
                    });
                }
                WsEvent::UnattributedProgress { .. } | WsEvent::Other => {}
            }
        }
        Ok(false)
    }

    /// One websocket text frame read as a job's wait does: the kind of event it is for the
    /// job `prompt_id` (`other` when it is not about it), or the error it reports. For the
    /// fuzz harness (`fuzz/`, `make fuzz`); not part of the API.
    #[doc(hidden)]
    pub fn fuzz_ws_frame(&self, text: &str, prompt_id: &str) -> Result<&'static str, ImageError> {
        Ok(match wire::parse_ws(text, prompt_id) {
            WsEvent::Error(e) => return Err(self.execution_error(&e)),
            WsEvent::Started => "started",
            WsEvent::Cached(_) => "cached",
            WsEvent::Executing(Some(_)) => "executing",
            WsEvent::Executing(None) => "executing done",
            WsEvent::Progress { .. } => "progress",
            WsEvent::UnattributedProgress { .. } => "unattributed progress",
            WsEvent::Executed(_) => "executed",
            WsEvent::Success => "success",
            WsEvent::Interrupted => "interrupted",
            WsEvent::Other => "other",
        })
    }
}

fn steps(node: Option<String>, value: u64, max: u64) -> GeneratorProgress {
    GeneratorProgress {
        stage: "progress".into(),
        node,
        value: Some(value),
        max: Some(max),
    }
}
