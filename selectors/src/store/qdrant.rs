//! [`QdrantStore`]: a Qdrant server or cluster through qdrant-client (gRPC).

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::{
    Condition as QCondition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    GetPointsBuilder, PointId, PointStruct, PointsIdsList, QueryPointsBuilder, Range,
    RetrievedPoint, ScoredPoint, ScrollPointsBuilder, SetPayloadPointsBuilder, UpdateMode,
    UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload as QPayload, Qdrant};
use uuid::Uuid;

use super::{
    CollectionSpec, Condition, FieldKind, Payload, StoreFilter, StoreHit, StorePoint, VectorStore,
    check_dims, store_err,
};
use crate::error::SelectError;

const NAME: &str = "qdrant";

/// A [`VectorStore`] on a Qdrant server, shared by every worker that points at it.
/// Collections are created when missing (cosine distance, the spec's size, payload indexes
/// on the filtered fields); point ids are deterministic, so concurrent writers of the same
/// image store it once.
pub struct QdrantStore {
    client: Qdrant,
    url: String,
    ready: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl QdrantStore {
    /// A store on the server at `url` (gRPC, usually port 6334), with an optional API key.
    /// Nothing is contacted until the first operation.
    pub fn new(url: &str, api_key: Option<String>) -> Result<Self, SelectError> {
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .skip_compatibility_check()
            .build()
            .map_err(|e| store_err(NAME, "building the client", e))?;
        Ok(QdrantStore {
            client,
            url: redact(url),
            ready: Mutex::new(HashSet::new()),
        })
    }

    /// A store configured by `QDRANT_URL` and `QDRANT_API_KEY`; `None` when `QDRANT_URL` is
    /// unset or empty.
    pub fn from_env() -> Result<Option<Self>, SelectError> {
        let Some(url) = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let key = std::env::var("QDRANT_API_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        Self::new(&url, key).map(Some)
    }

    /// The server's address, without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn is_ready(&self, name: &str) -> Result<bool, SelectError> {
        Ok(self.ready.lock().map_err(|_| poisoned())?.contains(name))
    }

    /// True when `name` exists (remembered once seen).
    async fn exists(&self, name: &str) -> Result<bool, SelectError> {
        if self.is_ready(name)? {
            return Ok(true);
        }
        let exists = self
            .client
            .collection_exists(name)
            .await
            .map_err(|e| store_err(NAME, &format!("checking {name} at {}", self.url), e))?;
        if exists {
            self.ready
                .lock()
                .map_err(|_| poisoned())?
                .insert(name.to_string());
        }
        Ok(exists)
    }
}

impl QdrantStore {
    /// Upsert or insert-only write of `points` (all of one dimension).
    async fn write_points(
        &self,
        collection: &str,
        points: Vec<StorePoint>,
        mode: UpdateMode,
    ) -> Result<(), SelectError> {
        if points.is_empty() {
            return Ok(());
        }
        check_dims(NAME, &points, None)?;
        let points = points
            .into_iter()
            .map(to_point)
            .collect::<Result<Vec<_>, _>>()?;
        let request = UpsertPointsBuilder::new(collection, points)
            .update_mode(mode)
            .wait(true);
        self.client
            .upsert_points(request)
            .await
            .map_err(|e| store_err(NAME, &format!("writing points into {collection}"), e))?;
        Ok(())
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

fn condition(c: &Condition) -> QCondition {
    match c {
        Condition::Keyword(k, s) => QCondition::matches(k.as_str(), s.clone()),
        Condition::AnyKeyword(k, set) => QCondition::matches(k.as_str(), set.clone()),
        Condition::Bool(k, b) => QCondition::matches(k.as_str(), *b),
        Condition::Range { key, gte, lt } => QCondition::range(
            key.as_str(),
            Range {
                gte: *gte,
                lt: *lt,
                ..Range::default()
            },
        ),
        Condition::Either(cs) => QCondition::from(Filter::should(cs.iter().map(condition))),
    }
}

fn filter(f: &StoreFilter) -> Option<Filter> {
    if f.must.is_empty() && f.must_not.is_empty() {
        return None;
    }
    let mut out = Filter::must(f.must.iter().map(condition));
    out.must_not = f.must_not.iter().map(condition).collect();
    Some(out)
}

fn to_point(p: StorePoint) -> Result<PointStruct, SelectError> {
    let payload = QPayload::try_from(serde_json::Value::Object(p.payload))
        .map_err(|e| store_err(NAME, "payload", e))?;
    Ok(PointStruct::new(p.id.to_string(), p.vector, payload))
}

fn uuid_of(id: Option<PointId>) -> Result<Uuid, SelectError> {
    match id.and_then(|i| i.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => {
            Uuid::parse_str(&s).map_err(|e| store_err(NAME, "point id", e))
        }
        Some(PointIdOptions::Num(n)) => Ok(Uuid::from_u64_pair(0, n)),
        None => Ok(Uuid::nil()),
    }
}

fn payload_of(p: std::collections::HashMap<String, qdrant_client::qdrant::Value>) -> Payload {
    p.into_iter().map(|(k, v)| (k, v.into_json())).collect()
}

fn to_hit(p: ScoredPoint) -> Result<StoreHit, SelectError> {
    Ok(StoreHit {
        id: uuid_of(p.id)?,
        score: p.score,
        payload: payload_of(p.payload),
    })
}

fn to_stored(p: RetrievedPoint) -> Result<StorePoint, SelectError> {
    #[allow(deprecated)]
    let vector = p
        .vectors
        .and_then(|v| v.get_vector())
        .and_then(|v| match v {
            qdrant_client::qdrant::vector_output::Vector::Dense(d) => Some(d.data),
            _ => None,
        })
        .unwrap_or_default();
    Ok(StorePoint {
        id: uuid_of(p.id)?,
        vector,
        payload: payload_of(p.payload),
    })
}

#[async_trait]
impl VectorStore for QdrantStore {
    fn name(&self) -> &str {
        NAME
    }

    async fn ready(&self) -> Result<(), SelectError> {
        self.collections().await.map(|_| ())
    }

    async fn ensure(&self, spec: &CollectionSpec) -> Result<(), SelectError> {
        let name = spec.name.as_str();
        if self.is_ready(name)? {
            return Ok(());
        }
        let exists = self
            .client
            .collection_exists(name)
            .await
            .map_err(|e| store_err(NAME, &format!("checking {name} at {}", self.url), e))?;
        if !exists {
            let create = CreateCollectionBuilder::new(name)
                .vectors_config(VectorParamsBuilder::new(spec.dim as u64, Distance::Cosine));
            if let Err(e) = self.client.create_collection(create).await {
                // Another worker may have created it meanwhile.
                let now = self.client.collection_exists(name).await.unwrap_or(false);
                if !now {
                    return Err(store_err(NAME, &format!("creating {name}"), e));
                }
            }
        }
        // Creating an index that exists is a no-op, so racing workers are fine.
        for (field, kind) in &spec.indexes {
            let ty = match kind {
                FieldKind::Keyword => FieldType::Keyword,
                FieldKind::Integer => FieldType::Integer,
                FieldKind::Bool => FieldType::Bool,
            };
            let index = CreateFieldIndexCollectionBuilder::new(name, field, ty).wait(true);
            self.client
                .create_field_index(index)
                .await
                .map_err(|e| store_err(NAME, &format!("indexing {field} in {name}"), e))?;
        }
        self.ready
            .lock()
            .map_err(|_| poisoned())?
            .insert(name.to_string());
        Ok(())
    }

    async fn upsert(&self, collection: &str, points: Vec<StorePoint>) -> Result<(), SelectError> {
        self.write_points(collection, points, UpdateMode::Upsert)
            .await
    }

    async fn insert(&self, collection: &str, points: Vec<StorePoint>) -> Result<(), SelectError> {
        self.write_points(collection, points, UpdateMode::InsertOnly)
            .await
    }

    async fn set_payload(
        &self,
        collection: &str,
        id: Uuid,
        key: Option<&str>,
        fields: Payload,
    ) -> Result<(), SelectError> {
        let payload = QPayload::try_from(serde_json::Value::Object(fields))
            .map_err(|e| store_err(NAME, "payload", e))?;
        let mut request = SetPayloadPointsBuilder::new(collection, payload)
            .points_selector(PointsIdsList {
                ids: vec![PointId::from(id.to_string())],
            })
            .wait(true);
        if let Some(key) = key {
            request = request.key(key);
        }
        self.client.set_payload(request).await.map_err(|e| {
            store_err(
                NAME,
                &format!("setting the payload of {id} in {collection}"),
                e,
            )
        })?;
        Ok(())
    }

    async fn search(
        &self,
        collection: &str,
        vector: &[f32],
        f: &StoreFilter,
        limit: usize,
    ) -> Result<Vec<StoreHit>, SelectError> {
        if !self.exists(collection).await? {
            return Ok(Vec::new());
        }
        let mut request = QueryPointsBuilder::new(collection)
            .query(vector.to_vec())
            .limit(limit as u64)
            .with_payload(true);
        if let Some(f) = filter(f) {
            request = request.filter(f);
        }
        let response = self
            .client
            .query(request)
            .await
            .map_err(|e| store_err(NAME, &format!("querying {collection}"), e))?;
        response.result.into_iter().map(to_hit).collect()
    }

    async fn retrieve(
        &self,
        collection: &str,
        ids: &[Uuid],
    ) -> Result<Vec<StorePoint>, SelectError> {
        if ids.is_empty() || !self.exists(collection).await? {
            return Ok(Vec::new());
        }
        let ids: Vec<PointId> = ids.iter().map(|u| PointId::from(u.to_string())).collect();
        let response = self
            .client
            .get_points(
                GetPointsBuilder::new(collection, ids)
                    .with_payload(true)
                    .with_vectors(true),
            )
            .await
            .map_err(|e| store_err(NAME, &format!("reading points of {collection}"), e))?;
        response.result.into_iter().map(to_stored).collect()
    }

    async fn scroll(
        &self,
        collection: &str,
        f: &StoreFilter,
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<StorePoint>, Option<Uuid>), SelectError> {
        if !self.exists(collection).await? {
            return Ok((Vec::new(), None));
        }
        let mut request = ScrollPointsBuilder::new(collection)
            .limit(limit.clamp(1, u32::MAX as usize) as u32)
            .with_payload(true)
            .with_vectors(false);
        if let Some(f) = filter(f) {
            request = request.filter(f);
        }
        if let Some(o) = offset {
            request = request.offset(PointId::from(o.to_string()));
        }
        let response = self
            .client
            .scroll(request)
            .await
            .map_err(|e| store_err(NAME, &format!("scrolling {collection}"), e))?;
        let next = match response.next_page_offset {
            Some(id) => Some(uuid_of(Some(id))?),
            None => None,
        };
        let points = response
            .result
            .into_iter()
            .map(to_stored)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((points, next))
    }

    async fn count(&self, collection: &str, f: &StoreFilter) -> Result<u64, SelectError> {
        if !self.exists(collection).await? {
            return Ok(0);
        }
        let mut request = CountPointsBuilder::new(collection).exact(true);
        if let Some(f) = filter(f) {
            request = request.filter(f);
        }
        let response = self
            .client
            .count(request)
            .await
            .map_err(|e| store_err(NAME, &format!("counting {collection}"), e))?;
        Ok(response.result.map_or(0, |r| r.count))
    }

    async fn delete(&self, collection: &str, f: &StoreFilter) -> Result<(), SelectError> {
        if !self.exists(collection).await? {
            return Ok(());
        }
        let f = filter(f).unwrap_or_default();
        self.client
            .delete_points(DeletePointsBuilder::new(collection).points(f).wait(true))
            .await
            .map_err(|e| store_err(NAME, &format!("deleting points from {collection}"), e))?;
        Ok(())
    }

    async fn collections(&self) -> Result<Vec<String>, SelectError> {
        let response = self
            .client
            .list_collections()
            .await
            .map_err(|e| store_err(NAME, &format!("listing collections at {}", self.url), e))?;
        let mut names: Vec<String> = response.collections.into_iter().map(|c| c.name).collect();
        names.sort();
        Ok(names)
    }
}
