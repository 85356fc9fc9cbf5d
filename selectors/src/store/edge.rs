//! [`EdgeStore`]: qdrant-edge, in-process, on disk under a cache directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use async_trait::async_trait;
use qdrant_edge::{
    Condition, CreateIndex, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder,
    FieldCondition, FieldIndexOperations, Filter, JsonPath, Match, NamedQuery, PayloadFieldSchema,
    PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStruct, QueryEnum,
    QueryRequest, ScoredPoint, ScoringQuery, UpdateOperation, VectorInternal, Vectors,
    WithPayloadInterface, WithVector,
};
use uuid::Uuid;

use super::{PointPayload, StoreHit, StorePoint, VectorStore, batch_dim, store_err};
use crate::error::SelectError;

const VECTOR: &str = "clip";
const NAME: &str = "qdrant-edge";

/// Shards open in this process, by path: two stores on one directory share one shard.
fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<EdgeShard>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<EdgeShard>>>> = OnceLock::new();
    OPEN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A [`VectorStore`] on qdrant-edge: one on-disk shard per vector dimension under `dir`
/// (`<dir>/clip-<dim>`), cosine distance, a keyword index on `run_id`.
///
/// Opening is lazy: nothing touches the disk until the first upsert or search.
#[derive(Debug, Clone)]
pub struct EdgeStore {
    dir: PathBuf,
    shards: Arc<Mutex<HashMap<usize, Arc<EdgeShard>>>>,
}

impl EdgeStore {
    /// A store under `dir` (created when first needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EdgeStore {
            dir: dir.into(),
            shards: Arc::default(),
        }
    }

    /// The directory the shards live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shard for `dim`, opened or (when `create`) created; `None` when absent.
    async fn shard(&self, dim: usize, create: bool) -> Result<Option<Arc<EdgeShard>>, SelectError> {
        let cached = self
            .shards
            .lock()
            .map_err(|_| poisoned())?
            .get(&dim)
            .cloned();
        if let Some(shard) = cached {
            return Ok(Some(shard));
        }
        let path = self.dir.join(format!("clip-{dim}"));
        let opened = tokio::task::spawn_blocking(move || open_shard(&path, dim, create))
            .await
            .map_err(|e| store_err(NAME, "opening the shard crashed", e))??;
        if let Some(shard) = &opened {
            self.shards
                .lock()
                .map_err(|_| poisoned())?
                .insert(dim, shard.clone());
        }
        Ok(opened)
    }
}

fn poisoned() -> SelectError {
    SelectError::Store(format!("{NAME}: lock poisoned by an earlier crash"))
}

fn open_shard(
    path: &Path,
    dim: usize,
    create: bool,
) -> Result<Option<Arc<EdgeShard>>, SelectError> {
    let mut open = registry().lock().map_err(|_| poisoned())?;
    if let Some(shard) = open.get(path).and_then(Weak::upgrade) {
        return Ok(Some(shard));
    }
    let exists = path.join("edge_config.json").is_file();
    let shard = if exists {
        EdgeShard::load(path, None)
            .map_err(|e| store_err(NAME, &format!("loading {}", path.display()), e))?
    } else if create {
        std::fs::create_dir_all(path)
            .map_err(|e| store_err(NAME, &format!("creating {}", path.display()), e))?;
        let config = EdgeConfigBuilder::new()
            .vector(
                VECTOR,
                EdgeVectorParamsBuilder::new(dim, Distance::Cosine).build(),
            )
            .build();
        let shard = EdgeShard::new(path, config)
            .map_err(|e| store_err(NAME, &format!("creating {}", path.display()), e))?;
        let index = CreateIndex {
            field_name: run_id_path()?,
            field_schema: Some(PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword)),
        };
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(index),
            ))
            .map_err(|e| store_err(NAME, "indexing run_id", e))?;
        shard
    } else {
        return Ok(None);
    };
    let shard = Arc::new(shard);
    open.insert(path.to_path_buf(), Arc::downgrade(&shard));
    Ok(Some(shard))
}

fn run_id_path() -> Result<JsonPath, SelectError> {
    JsonPath::try_from("run_id").map_err(|_| store_err(NAME, "payload path", "run_id"))
}

fn run_filter(run_id: &str) -> Result<Filter, SelectError> {
    Ok(Filter::new_must(Condition::Field(
        FieldCondition::new_match(run_id_path()?, Match::from(run_id.to_string())),
    )))
}

fn to_point(p: StorePoint) -> Result<qdrant_edge::PointStructPersisted, SelectError> {
    let payload = match serde_json::to_value(&p.payload) {
        Ok(serde_json::Value::Object(map)) => serde_json::Value::Object(map),
        Ok(_) => return Err(store_err(NAME, "payload", "not a JSON object")),
        Err(e) => return Err(store_err(NAME, "payload", e)),
    };
    let vectors = Vectors::new_named([(VECTOR, p.vector)]);
    Ok(PointStruct::new(PointId::Uuid(p.id), vectors, payload).into())
}

fn to_hit(p: ScoredPoint) -> Result<StoreHit, SelectError> {
    let id = match p.id {
        PointId::Uuid(u) => u,
        PointId::NumId(n) => Uuid::from_u64_pair(0, n),
    };
    let map = p.payload.map(|pl| pl.0).unwrap_or_default();
    let payload: PointPayload = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| store_err(NAME, "reading a payload", e))?;
    Ok(StoreHit {
        id,
        score: p.score,
        payload,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SelectError> + Send + 'static,
) -> Result<T, SelectError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| store_err(NAME, "operation crashed", e))?
}

#[async_trait]
impl VectorStore for EdgeStore {
    fn name(&self) -> &str {
        NAME
    }

    async fn upsert(&self, points: Vec<StorePoint>) -> Result<(), SelectError> {
        let Some(dim) = batch_dim(NAME, &points)? else {
            return Ok(());
        };
        let Some(shard) = self.shard(dim, true).await? else {
            return Err(store_err(NAME, "upsert", "shard could not be created"));
        };
        let points = points
            .into_iter()
            .map(to_point)
            .collect::<Result<Vec<_>, _>>()?;
        blocking(move || {
            let op = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
            shard
                .update(UpdateOperation::PointOperation(op))
                .map_err(|e| store_err(NAME, "upsert", e))
        })
        .await
    }

    async fn search(
        &self,
        run_id: &str,
        vector: &[f32],
        limit: usize,
    ) -> Result<Vec<StoreHit>, SelectError> {
        let Some(shard) = self.shard(vector.len(), false).await? else {
            return Ok(Vec::new());
        };
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                VectorInternal::Dense(vector.to_vec()),
                VECTOR,
            )))),
            filter: Some(run_filter(run_id)?),
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = blocking(move || {
            shard
                .query(request)
                .map_err(|e| store_err(NAME, "query", e))
        })
        .await?;
        points.into_iter().map(to_hit).collect()
    }

    async fn delete_run(&self, run_id: &str, dim: usize) -> Result<(), SelectError> {
        let Some(shard) = self.shard(dim, false).await? else {
            return Ok(());
        };
        let filter = run_filter(run_id)?;
        blocking(move || {
            let op = PointOperations::DeletePointsByFilter(filter);
            shard
                .update(UpdateOperation::PointOperation(op))
                .map_err(|e| store_err(NAME, "delete", e))
        })
        .await
    }
}
