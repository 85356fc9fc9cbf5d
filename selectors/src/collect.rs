//! Stages 2 and 4a overlapped: images are embedded in batches as their downloads finish,
//! while the prompt and queries are embedded (and the model loads) alongside.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use std::panic::AssertUnwindSafe;

use futures::future::OptionFuture;
use futures::{FutureExt, StreamExt};
use iat2i_retrievers::HttpClient;
use image::DynamicImage;
use image_hasher::ImageHash;

use crate::embed::Embedder;
use crate::error::SelectError;
use crate::fetch::{FetchContext, Fetched, fetch_all};
use crate::prefilter::Prefiltered;
use crate::stage::{Dropped, Stage};

/// A candidate that was downloaded, decoded and embedded.
pub(crate) struct Survivor {
    pub order: usize,
    pub item: Prefiltered,
    pub bytes: Bytes,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub hash: ImageHash,
    pub vector: Vec<f32>,
    /// True when `bytes` are the original image rather than the thumbnail.
    pub original: bool,
}

/// What fetching and embedding produced.
pub(crate) struct Collected {
    pub survivors: Vec<Survivor>,
    pub dropped: Vec<Dropped>,
    pub texts: Vec<Vec<f32>>,
    /// Milliseconds until the last download and decode finished.
    pub fetch_ms: u64,
}

type EmbedFuture =
    Pin<Box<dyn Future<Output = (Vec<usize>, Result<Vec<Vec<f32>>, SelectError>)> + Send>>;
type TextFuture = Pin<Box<dyn Future<Output = Result<Vec<Vec<f32>>, SelectError>> + Send>>;

struct Waiting {
    fetched: Fetched,
    slot: Option<Vec<f32>>,
    /// Why its embedding batch failed, when it did.
    failed: Option<String>,
}

/// Decoded images waiting for (or in) an embedding batch are capped at this many batches, so
/// memory does not grow with the number of candidates when embedding is the bottleneck.
const QUEUED_BATCHES: usize = 4;

#[derive(Default)]
struct State {
    waiting: Vec<Waiting>,
    queue: Vec<(usize, DynamicImage)>,
    dropped: Vec<Dropped>,
}

impl State {
    fn arrived(&mut self, next: Option<Result<Fetched, (Prefiltered, String)>>) -> bool {
        match next {
            Some(Ok(mut fetched)) => {
                let blank = DynamicImage::new_rgb8(0, 0);
                let image = std::mem::replace(&mut fetched.image.embed_image, blank);
                self.queue.push((self.waiting.len(), image));
                self.waiting.push(Waiting {
                    fetched,
                    slot: None,
                    failed: None,
                });
                true
            }
            Some(Err((item, reason))) => {
                self.dropped.push(Dropped {
                    candidate: item.candidate,
                    stage: Stage::Fetch,
                    reason,
                });
                true
            }
            None => false,
        }
    }

    fn next_batch(&mut self, embedder: &Arc<dyn Embedder>, batch: usize) -> EmbedFuture {
        let take = self.queue.len().min(batch);
        let (slots, images): (Vec<usize>, Vec<DynamicImage>) = self.queue.drain(..take).unzip();
        let e = embedder.clone();
        Box::pin(async move {
            let result = AssertUnwindSafe(e.embed_images(images))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(panicked(panic.as_ref())));
            (slots, result)
        })
    }

    /// A failed batch drops only its own candidates.
    fn batch_failed(&mut self, slots: Vec<usize>, error: &SelectError) {
        tracing::warn!(%error, images = slots.len(), "an embedding batch failed; its candidates are dropped");
        for slot in slots {
            if let Some(w) = self.waiting.get_mut(slot) {
                w.failed = Some(format!("its embedding batch failed: {error}"));
            }
        }
    }

    fn embedded(&mut self, slots: Vec<usize>, vectors: Vec<Vec<f32>>) {
        for (slot, v) in slots.into_iter().zip(vectors) {
            if let Some(w) = self.waiting.get_mut(slot) {
                w.slot = Some(v);
            }
        }
    }
}

/// Download, decode and embed `items`, and embed `texts`, overlapping all of it: images are
/// embedded in batches as they arrive, while the next downloads proceed.
pub(crate) async fn fetch_and_embed(
    http: HttpClient,
    items: Vec<Prefiltered>,
    fetch: FetchContext,
    embedder: Arc<dyn Embedder>,
    texts: Vec<String>,
    batch: usize,
) -> Result<Collected, SelectError> {
    let started = std::time::Instant::now();
    let batch = batch.max(1);
    let mut stream = Box::pin(fetch_all(http, items, fetch));
    let (mut fetch_done, mut fetch_ms) = (false, 0);
    let mut state = State::default();
    let mut embedding: Option<EmbedFuture> = None;
    let e = embedder.clone();
    let mut text: Option<TextFuture> = Some(Box::pin(async move {
        AssertUnwindSafe(e.embed_texts(texts))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panicked(panic.as_ref())))
    }));
    let mut text_vectors = None;
    loop {
        if embedding.is_none() && !state.queue.is_empty() {
            embedding = Some(state.next_batch(&embedder, batch));
        }
        if fetch_done && embedding.is_none() && text.is_none() {
            break;
        }
        let room = state.queue.len() < QUEUED_BATCHES * batch;
        tokio::select! {
            next = stream.next(), if !fetch_done && room => {
                if !state.arrived(next) {
                    fetch_done = true;
                    fetch_ms = started.elapsed().as_millis() as u64;
                }
            },
            Some((slots, result)) = OptionFuture::from(embedding.as_mut()), if embedding.is_some() => {
                embedding = None;
                match result {
                    Ok(vectors) => state.embedded(slots, vectors),
                    Err(e) => state.batch_failed(slots, &e),
                }
            },
            Some(result) = OptionFuture::from(text.as_mut()), if text.is_some() => {
                text = None;
                text_vectors = Some(result?);
            },
            else => break,
        }
    }
    let mut dropped = state.dropped;
    let survivors = finish(state.waiting, &mut dropped);
    Ok(Collected {
        survivors,
        dropped,
        texts: text_vectors.unwrap_or_default(),
        fetch_ms,
    })
}

/// The error for an embedding call that panicked (caught, so one bad call cannot take the
/// selection, or the process, down).
fn panicked(panic: &(dyn std::any::Any + Send)) -> SelectError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    SelectError::Embedding(format!("the embedder panicked: {what}"))
}

fn finish(waiting: Vec<Waiting>, dropped: &mut Vec<Dropped>) -> Vec<Survivor> {
    let mut survivors = Vec::with_capacity(waiting.len());
    for w in waiting {
        let Fetched {
            index,
            item,
            image,
            original,
        } = w.fetched;
        if let Some(reason) = w.failed {
            dropped.push(Dropped {
                candidate: item.candidate,
                stage: Stage::Rank,
                reason,
            });
            continue;
        }
        match w.slot {
            Some(vector) if !vector.is_empty() && vector.iter().all(|x| x.is_finite()) => survivors
                .push(Survivor {
                    order: index,
                    item,
                    bytes: image.bytes,
                    mime: image.mime,
                    width: image.width,
                    height: image.height,
                    hash: image.hash,
                    vector,
                    original,
                }),
            _ => dropped.push(Dropped {
                candidate: item.candidate,
                stage: Stage::Rank,
                reason: "the embedder returned no usable vector for this image".into(),
            }),
        }
    }
    survivors.sort_by_key(|s| s.order);
    survivors
}
