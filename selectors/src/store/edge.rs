//! [`EdgeStore`]: qdrant-edge, in-process, on disk under a cache directory.
//!
//! qdrant-edge locks its files for the life of the process, so one directory serves one
//! process. The store takes its own lock on `<dir>/.lock` before opening anything: a second
//! process on the same directory gets [`SelectError::StoreLocked`] at once (never a
//! half-opened shard), and the selector carries on without the memory.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use async_trait::async_trait;
use qdrant_edge::{
    ConditionalInsertOperation, CountRequest, CreateIndex, Distance, EdgeConfigBuilder, EdgeShard,
    EdgeVectorParamsBuilder, FieldIndexOperations, Filter, JsonPath, NamedQuery,
    PayloadFieldSchema, PayloadOps, PayloadSchemaType, PointId, PointInsertOperations,
    PointOperations, PointStruct, QueryEnum, QueryRequest, Record, ScoredPoint, ScoringQuery,
    ScrollRequest, SetPayloadOp, UpdateMode, UpdateOperation, VectorInternal, VectorStructInternal,
    Vectors, WithPayloadInterface, WithVector,
};
use uuid::Uuid;

use super::{
    CollectionSpec, FieldKind, Payload, StoreFilter, StoreHit, StorePoint, VectorStore, check_dims,
    store_err,
};
use crate::error::SelectError;

const VECTOR: &str = "vector";
const NAME: &str = "qdrant-edge";

/// The lock on a store directory, held while any store on it is alive in this process.
#[derive(Debug)]
struct DirLock {
    _file: File,
}

type Registry<T> = Mutex<HashMap<PathBuf, Weak<T>>>;

/// Directory locks held by this process: two stores on one directory share one lock.
fn locks() -> &'static Registry<DirLock> {
    static OPEN: OnceLock<Registry<DirLock>> = OnceLock::new();
    OPEN.get_or_init(Registry::default)
}

/// Shards open in this process, by path: two stores on one directory share one shard.
fn shards() -> &'static Registry<EdgeShard> {
    static OPEN: OnceLock<Registry<EdgeShard>> = OnceLock::new();
    OPEN.get_or_init(Registry::default)
}

/// A [`VectorStore`] on qdrant-edge: one on-disk shard per collection under `dir`
/// (`<dir>/<collection>`), cosine distance, payload indexes as the collection asks.
///
/// Opening is lazy: nothing touches the disk until the first operation.
#[derive(Debug, Clone)]
pub struct EdgeStore {
    dir: PathBuf,
    lock: Arc<Mutex<Option<Arc<DirLock>>>>,
    open: Arc<Mutex<HashMap<String, Arc<EdgeShard>>>>,
}

impl EdgeStore {
    /// A store under `dir` (created when first needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EdgeStore {
            dir: dir.into(),
            lock: Arc::default(),
            open: Arc::default(),
        }
    }

    /// The directory the shards live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Take the directory's lock now (it is otherwise taken on first use): fails with
    /// [`SelectError::StoreLocked`] when another process holds it.
    pub fn open(&self) -> Result<(), SelectError> {
        let mut held = self.lock.lock().map_err(|_| poisoned())?;
        if held.is_some() {
            return Ok(());
        }
        let mut registry = locks().lock().map_err(|_| poisoned())?;
        if let Some(lock) = registry.get(&self.dir).and_then(Weak::upgrade) {
            *held = Some(lock);
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| store_err(NAME, &format!("creating {}", self.dir.display()), e))?;
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| store_err(NAME, &format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SelectError::StoreLocked {
                    path: self.dir.clone(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(store_err(NAME, &format!("locking {}", path.display()), e));
            }
        }
        let lock = Arc::new(DirLock { _file: file });
        registry.insert(self.dir.clone(), Arc::downgrade(&lock));
        *held = Some(lock);
        Ok(())
    }

    /// The shard of `collection`: opened, or created from `spec`; `None` when absent.
    async fn shard(
        &self,
        collection: &str,
        spec: Option<&CollectionSpec>,
    ) -> Result<Option<Arc<EdgeShard>>, SelectError> {
        let cached = self
            .open
            .lock()
            .map_err(|_| poisoned())?
            .get(collection)
            .cloned();
        if let Some(shard) = cached {
            return Ok(Some(shard));
        }
        let this = self.clone();
        let path = self.dir.join(collection);
        let spec = spec.cloned();
        let opened = tokio::task::spawn_blocking(move || {
            this.open()?;
            open_shard(&path, spec.as_ref())
        })
        .await
        .map_err(|e| store_err(NAME, "opening the shard crashed", e))??;
        if let Some(shard) = &opened {
            self.open
                .lock()
                .map_err(|_| poisoned())?
                .insert(collection.to_string(), shard.clone());
        }
        Ok(opened)
    }
}

impl EdgeStore {
    /// Upsert `points`, or with `insert_only` insert those whose ids are new.
    async fn write_points(
        &self,
        collection: &str,
        points: Vec<StorePoint>,
        insert_only: bool,
    ) -> Result<(), SelectError> {
        if points.is_empty() {
            return Ok(());
        }
        let what = if insert_only { "insert" } else { "upsert" };
        let Some(shard) = self.shard(collection, None).await? else {
            return Err(store_err(NAME, what, format!("no collection {collection}")));
        };
        let dim = shard.config().vectors.get(VECTOR).map(|v| v.size);
        check_dims(NAME, &points, dim)?;
        let points = PointInsertOperations::PointsList(points.into_iter().map(to_point).collect());
        let op = if insert_only {
            PointOperations::UpsertPointsConditional(ConditionalInsertOperation {
                points_op: points,
                condition: Filter::default(),
                update_mode: Some(UpdateMode::InsertOnly),
            })
        } else {
            PointOperations::UpsertPoints(points)
        };
        blocking(move || {
            shard
                .update(UpdateOperation::PointOperation(op))
                .map_err(|e| store_err(NAME, what, e))
        })
        .await
    }
}

fn poisoned() -> SelectError {
    SelectError::Store(format!("{NAME}: lock poisoned by an earlier crash"))
}

fn open_shard(
    path: &Path,
    spec: Option<&CollectionSpec>,
) -> Result<Option<Arc<EdgeShard>>, SelectError> {
    let mut open = shards().lock().map_err(|_| poisoned())?;
    if let Some(shard) = open.get(path).and_then(Weak::upgrade) {
        return Ok(Some(shard));
    }
    let exists = path.join("edge_config.json").is_file();
    let shard = if exists {
        EdgeShard::load(path, None)
            .map_err(|e| store_err(NAME, &format!("loading {}", path.display()), e))?
    } else if let Some(spec) = spec {
        create_shard(path, spec)?
    } else {
        return Ok(None);
    };
    let shard = Arc::new(shard);
    open.insert(path.to_path_buf(), Arc::downgrade(&shard));
    Ok(Some(shard))
}

fn create_shard(path: &Path, spec: &CollectionSpec) -> Result<EdgeShard, SelectError> {
    std::fs::create_dir_all(path)
        .map_err(|e| store_err(NAME, &format!("creating {}", path.display()), e))?;
    let config = EdgeConfigBuilder::new()
        .vector(
            VECTOR,
            EdgeVectorParamsBuilder::new(spec.dim, Distance::Cosine).build(),
        )
        .build();
    let shard = EdgeShard::new(path, config)
        .map_err(|e| store_err(NAME, &format!("creating {}", path.display()), e))?;
    for (field, kind) in &spec.indexes {
        let schema = match kind {
            FieldKind::Keyword => PayloadSchemaType::Keyword,
            FieldKind::Integer => PayloadSchemaType::Integer,
            FieldKind::Bool => PayloadSchemaType::Bool,
        };
        let index = CreateIndex {
            field_name: JsonPath::try_from(field.as_str())
                .map_err(|_| store_err(NAME, "payload path", field))?,
            field_schema: Some(PayloadFieldSchema::FieldType(schema)),
        };
        shard
            .update(UpdateOperation::FieldIndexOperation(
                FieldIndexOperations::CreateIndex(index),
            ))
            .map_err(|e| store_err(NAME, &format!("indexing {field}"), e))?;
    }
    Ok(shard)
}

fn filter(f: &StoreFilter) -> Result<Option<Filter>, SelectError> {
    if f.must.is_empty() && f.must_not.is_empty() {
        return Ok(None);
    }
    serde_json::from_value(f.to_qdrant_json())
        .map(Some)
        .map_err(|e| store_err(NAME, "filter", e))
}

fn to_point(p: StorePoint) -> qdrant_edge::PointStructPersisted {
    let vectors = Vectors::new_named([(VECTOR, p.vector)]);
    PointStruct::new(
        PointId::Uuid(p.id),
        vectors,
        serde_json::Value::Object(p.payload),
    )
    .into()
}

fn uuid_of(id: PointId) -> Uuid {
    match id {
        PointId::Uuid(u) => u,
        PointId::NumId(n) => Uuid::from_u64_pair(0, n),
    }
}

fn to_hit(p: ScoredPoint) -> StoreHit {
    StoreHit {
        id: uuid_of(p.id),
        score: p.score,
        payload: p.payload.map(|pl| pl.0).unwrap_or_default(),
    }
}

fn to_stored(r: Record) -> StorePoint {
    let vector = match r.vector {
        Some(VectorStructInternal::Named(mut named)) => match named.remove(VECTOR) {
            Some(VectorInternal::Dense(v)) => v,
            _ => Vec::new(),
        },
        Some(VectorStructInternal::Single(v)) => v,
        _ => Vec::new(),
    };
    StorePoint {
        id: uuid_of(r.id),
        vector,
        payload: r.payload.map(|pl| pl.0).unwrap_or_default(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SelectError> + Send + 'static,
) -> Result<T, SelectError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| store_err(NAME, "operation crashed", e))?
}

fn payload_only() -> WithPayloadInterface {
    WithPayloadInterface::Bool(true)
}

#[async_trait]
impl VectorStore for EdgeStore {
    fn name(&self) -> &str {
        NAME
    }

    async fn ready(&self) -> Result<(), SelectError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.open())
            .await
            .map_err(|e| store_err(NAME, "taking the directory lock crashed", e))?
    }

    async fn ensure(&self, spec: &CollectionSpec) -> Result<(), SelectError> {
        self.shard(&spec.name, Some(spec)).await.map(|_| ())
    }

    async fn upsert(&self, collection: &str, points: Vec<StorePoint>) -> Result<(), SelectError> {
        self.write_points(collection, points, false).await
    }

    async fn insert(&self, collection: &str, points: Vec<StorePoint>) -> Result<(), SelectError> {
        self.write_points(collection, points, true).await
    }

    async fn set_payload(
        &self,
        collection: &str,
        id: Uuid,
        key: Option<&str>,
        fields: Payload,
    ) -> Result<(), SelectError> {
        let Some(shard) = self.shard(collection, None).await? else {
            return Err(store_err(
                NAME,
                "set payload",
                format!("no collection {collection}"),
            ));
        };
        let key = key
            .map(|k| JsonPath::try_from(k).map_err(|_| store_err(NAME, "payload path", k)))
            .transpose()?;
        let op = PayloadOps::SetPayload(SetPayloadOp {
            payload: qdrant_edge::Payload(fields),
            points: Some(vec![PointId::Uuid(id)]),
            filter: None,
            key,
        });
        blocking(move || {
            shard
                .update(UpdateOperation::PayloadOperation(op))
                .map_err(|e| store_err(NAME, &format!("setting the payload of {id}"), e))
        })
        .await
    }

    async fn search(
        &self,
        collection: &str,
        vector: &[f32],
        f: &StoreFilter,
        limit: usize,
    ) -> Result<Vec<StoreHit>, SelectError> {
        let Some(shard) = self.shard(collection, None).await? else {
            return Ok(Vec::new());
        };
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                VectorInternal::Dense(vector.to_vec()),
                VECTOR,
            )))),
            filter: filter(f)?,
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: payload_only(),
        };
        let points = blocking(move || {
            shard
                .query(request)
                .map_err(|e| store_err(NAME, "query", e))
        })
        .await?;
        Ok(points.into_iter().map(to_hit).collect())
    }

    async fn retrieve(
        &self,
        collection: &str,
        ids: &[Uuid],
    ) -> Result<Vec<StorePoint>, SelectError> {
        let Some(shard) = self.shard(collection, None).await? else {
            return Ok(Vec::new());
        };
        let ids: Vec<PointId> = ids.iter().map(|u| PointId::Uuid(*u)).collect();
        let records = blocking(move || {
            shard
                .retrieve(&ids, Some(payload_only()), Some(WithVector::Bool(true)))
                .map_err(|e| store_err(NAME, "retrieve", e))
        })
        .await?;
        Ok(records.into_iter().map(to_stored).collect())
    }

    async fn scroll(
        &self,
        collection: &str,
        f: &StoreFilter,
        offset: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<StorePoint>, Option<Uuid>), SelectError> {
        let Some(shard) = self.shard(collection, None).await? else {
            return Ok((Vec::new(), None));
        };
        let request = ScrollRequest {
            offset: offset.map(PointId::Uuid),
            limit: Some(limit.max(1)),
            filter: filter(f)?,
            with_payload: Some(payload_only()),
            with_vector: WithVector::Bool(false),
            order_by: None,
        };
        let (records, next) = blocking(move || {
            shard
                .scroll(request)
                .map_err(|e| store_err(NAME, "scroll", e))
        })
        .await?;
        Ok((
            records.into_iter().map(to_stored).collect(),
            next.map(uuid_of),
        ))
    }

    async fn count(&self, collection: &str, f: &StoreFilter) -> Result<u64, SelectError> {
        let Some(shard) = self.shard(collection, None).await? else {
            return Ok(0);
        };
        let request = CountRequest {
            filter: filter(f)?,
            exact: true,
        };
        blocking(move || {
            shard
                .count(request)
                .map(|n| n as u64)
                .map_err(|e| store_err(NAME, "count", e))
        })
        .await
    }

    async fn delete(&self, collection: &str, f: &StoreFilter) -> Result<(), SelectError> {
        let Some(shard) = self.shard(collection, None).await? else {
            return Ok(());
        };
        let op = match filter(f)? {
            Some(filter) => PointOperations::DeletePointsByFilter(filter),
            None => {
                let (all, _) = self.scroll(collection, f, None, usize::MAX / 2).await?;
                PointOperations::DeletePoints {
                    ids: all.into_iter().map(|p| PointId::Uuid(p.id)).collect(),
                }
            }
        };
        blocking(move || {
            shard
                .update(UpdateOperation::PointOperation(op))
                .map_err(|e| store_err(NAME, "delete", e))
        })
        .await
    }

    async fn collections(&self) -> Result<Vec<String>, SelectError> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join("edge_config.json").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }
}
