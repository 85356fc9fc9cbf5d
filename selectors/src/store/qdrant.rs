//! [`QdrantStore`]: a Qdrant server or cluster through qdrant-client (gRPC).

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    Condition, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder,
    Distance, FieldType, Filter, PointStruct, QueryPointsBuilder, ScoredPoint, UpsertPointsBuilder,
    VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant};
use uuid::Uuid;

use super::{PointPayload, StoreHit, StorePoint, VectorStore, batch_dim, store_err};
use crate::error::SelectError;

const NAME: &str = "qdrant";

/// A [`VectorStore`] on a Qdrant server. Points go to the collection
/// `<collection>_<dim>`, created when missing with cosine distance and keyword indexes on
/// `run_id`, `engine` and `query`.
pub struct QdrantStore {
    client: Qdrant,
    url: String,
    collection: String,
    ready: Mutex<HashSet<usize>>,
}

impl std::fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantStore")
            .field("url", &self.url)
            .field("collection", &self.collection)
            .finish_non_exhaustive()
    }
}

impl QdrantStore {
    /// A store on the server at `url` (gRPC, usually port 6334), with an optional API key.
    /// Nothing is contacted until the first operation.
    pub fn new(url: &str, api_key: Option<String>, collection: &str) -> Result<Self, SelectError> {
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .skip_compatibility_check()
            .build()
            .map_err(|e| store_err(NAME, "building the client", e))?;
        Ok(QdrantStore {
            client,
            url: redact(url),
            collection: collection.to_string(),
            ready: Mutex::new(HashSet::new()),
        })
    }

    /// A store configured by `QDRANT_URL` and `QDRANT_API_KEY`; `None` when `QDRANT_URL` is unset.
    pub fn from_env(collection: &str) -> Result<Option<Self>, SelectError> {
        let Ok(url) = std::env::var("QDRANT_URL") else {
            return Ok(None);
        };
        let key = std::env::var("QDRANT_API_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        Self::new(&url, key, collection).map(Some)
    }

    fn name_for(&self, dim: usize) -> String {
        format!("{}_{dim}", self.collection)
    }

    async fn ensure(&self, dim: usize) -> Result<String, SelectError> {
        let name = self.name_for(dim);
        if self.ready.lock().map_err(|_| poisoned())?.contains(&dim) {
            return Ok(name);
        }
        let exists = self
            .client
            .collection_exists(&name)
            .await
            .map_err(|e| store_err(NAME, &format!("checking {name} at {}", self.url), e))?;
        if !exists {
            let create = CreateCollectionBuilder::new(&name)
                .vectors_config(VectorParamsBuilder::new(dim as u64, Distance::Cosine));
            if let Err(e) = self.client.create_collection(create).await {
                // Another process may have created it meanwhile.
                let now = self.client.collection_exists(&name).await.unwrap_or(false);
                if !now {
                    return Err(store_err(NAME, &format!("creating {name}"), e));
                }
            }
            for field in ["run_id", "engine", "query"] {
                let index =
                    CreateFieldIndexCollectionBuilder::new(&name, field, FieldType::Keyword)
                        .wait(true);
                self.client
                    .create_field_index(index)
                    .await
                    .map_err(|e| store_err(NAME, &format!("indexing {field} in {name}"), e))?;
            }
        }
        self.ready.lock().map_err(|_| poisoned())?.insert(dim);
        Ok(name)
    }
}

fn poisoned() -> SelectError {
    SelectError::Store(format!("{NAME}: lock poisoned by an earlier crash"))
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => iat2i_retrievers::http::redact(&u),
        Err(_) => "<invalid QDRANT_URL>".into(),
    }
}

fn run_filter(run_id: &str) -> Filter {
    Filter::must([Condition::matches("run_id", run_id.to_string())])
}

fn to_point(p: StorePoint) -> Result<PointStruct, SelectError> {
    let json = serde_json::to_value(&p.payload).map_err(|e| store_err(NAME, "payload", e))?;
    let payload = Payload::try_from(json).map_err(|e| store_err(NAME, "payload", e))?;
    Ok(PointStruct::new(p.id.to_string(), p.vector, payload))
}

fn to_hit(p: ScoredPoint) -> Result<StoreHit, SelectError> {
    let id = match p.id.and_then(|i| i.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => {
            Uuid::parse_str(&s).map_err(|e| store_err(NAME, "point id", e))?
        }
        Some(PointIdOptions::Num(n)) => Uuid::from_u64_pair(0, n),
        None => Uuid::nil(),
    };
    let map: serde_json::Map<String, serde_json::Value> = p
        .payload
        .into_iter()
        .map(|(k, v)| (k, v.into_json()))
        .collect();
    let payload: PointPayload = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| store_err(NAME, "reading a payload", e))?;
    Ok(StoreHit {
        id,
        score: p.score,
        payload,
    })
}

#[async_trait]
impl VectorStore for QdrantStore {
    fn name(&self) -> &str {
        NAME
    }

    async fn upsert(&self, points: Vec<StorePoint>) -> Result<(), SelectError> {
        let Some(dim) = batch_dim(NAME, &points)? else {
            return Ok(());
        };
        let name = self.ensure(dim).await?;
        let points = points
            .into_iter()
            .map(to_point)
            .collect::<Result<Vec<_>, _>>()?;
        self.client
            .upsert_points(UpsertPointsBuilder::new(&name, points).wait(true))
            .await
            .map_err(|e| store_err(NAME, &format!("upserting into {name}"), e))?;
        Ok(())
    }

    async fn search(
        &self,
        run_id: &str,
        vector: &[f32],
        limit: usize,
    ) -> Result<Vec<StoreHit>, SelectError> {
        let name = self.ensure(vector.len()).await?;
        let request = QueryPointsBuilder::new(&name)
            .query(vector.to_vec())
            .filter(run_filter(run_id))
            .limit(limit as u64)
            .with_payload(true);
        let response = self
            .client
            .query(request)
            .await
            .map_err(|e| store_err(NAME, &format!("querying {name}"), e))?;
        response.result.into_iter().map(to_hit).collect()
    }

    async fn delete_run(&self, run_id: &str, dim: usize) -> Result<(), SelectError> {
        let name = self.ensure(dim).await?;
        self.client
            .delete_points(
                DeletePointsBuilder::new(&name)
                    .points(run_filter(run_id))
                    .wait(true),
            )
            .await
            .map_err(|e| store_err(NAME, &format!("deleting run points from {name}"), e))?;
        Ok(())
    }
}
