//! Stages 2 and 4a overlapped: images are embedded in batches as their downloads finish,
//! while the prompt and queries are embedded (and the model loads) alongside.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::OptionFuture;
use iat2i_retrievers::HttpClient;
use image::DynamicImage;
use image_hasher::ImageHash;

use crate::config::FetchConfig;
use crate::embed::Embedder;
use crate::fetch::{Fetched, fetch_all};
use crate::prefilter::Prefiltered;
use crate::{Dropped, SelectError, Stage};

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
}

/// Download, decode and embed `items`, and embed `texts`, overlapping all of it.
pub(crate) async fn fetch_and_embed(
    http: HttpClient,
    items: Vec<Prefiltered>,
    fetch: FetchConfig,
    embedder: Arc<dyn Embedder>,
    texts: Vec<String>,
    batch: usize,
) -> Result<Collected, SelectError> {
    let started = std::time::Instant::now();
    let mut stream = Box::pin(fetch_all(http, items, fetch));
    let mut fetch_done = false;
    let mut fetch_ms = 0;
    let mut waiting: Vec<Waiting> = Vec::new();
    let mut queue: Vec<(usize, DynamicImage)> = Vec::new();
    let mut dropped = Vec::new();
    let mut embedding: Option<EmbedFuture> = None;
    let e = embedder.clone();
    let mut text: Option<TextFuture> = Some(Box::pin(async move { e.embed_texts(texts).await }));
    let mut text_vectors = None;
    loop {
        if embedding.is_none() && !queue.is_empty() {
            let take = queue.len().min(batch.max(1));
            let (slots, images): (Vec<usize>, Vec<DynamicImage>) = queue.drain(..take).unzip();
            let e = embedder.clone();
            embedding = Some(Box::pin(
                async move { (slots, e.embed_images(images).await) },
            ));
        }
        if fetch_done && embedding.is_none() && text.is_none() {
            break;
        }
        tokio::select! {
            next = stream.next(), if !fetch_done => match next {
                Some(Ok(mut fetched)) => {
                    let image = std::mem::replace(&mut fetched.image.embed_image, DynamicImage::new_rgb8(0, 0));
                    queue.push((waiting.len(), image));
                    waiting.push(Waiting { fetched, slot: None });
                }
                Some(Err((item, reason))) => dropped.push(Dropped {
                    candidate: item.candidate,
                    stage: Stage::Fetch,
                    reason,
                }),
                None => {
                    fetch_done = true;
                    fetch_ms = started.elapsed().as_millis() as u64;
                }
            },
            Some((slots, result)) = OptionFuture::from(embedding.as_mut()), if embedding.is_some() => {
                embedding = None;
                let vectors = result?;
                for (slot, v) in slots.into_iter().zip(vectors) {
                    if let Some(w) = waiting.get_mut(slot) {
                        w.slot = Some(v);
                    }
                }
            },
            Some(result) = OptionFuture::from(text.as_mut()), if text.is_some() => {
                text = None;
                text_vectors = Some(result?);
            },
            else => break,
        }
    }
    let survivors = finish(waiting, &mut dropped);
    Ok(Collected {
        survivors,
        dropped,
        texts: text_vectors.unwrap_or_default(),
        fetch_ms,
    })
}

fn finish(waiting: Vec<Waiting>, dropped: &mut Vec<Dropped>) -> Vec<Survivor> {
    let mut survivors = Vec::with_capacity(waiting.len());
    for w in waiting {
        let Fetched { index, item, image } = w.fetched;
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
