//! Declarative sync (`/declare`) and batches (`/bulk`), API.md §2: the typed declarations, their
//! normalisation, and the pure diff that stores apply inside one transaction.

use std::collections::HashSet;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;

use crate::error::Error;
use crate::ids::{ExecutionId, JobId, ProjectId};
use crate::lifecycle::ItemState;
use crate::model::{DeliveryOptions, GeneratorStatus, HttpRequest, JobKind, JobStatus, Origin};
use crate::request::{ScheduleRequest, When};
use crate::store::{TriggerDefinition, TriggerSchedule, UpsertTrigger};
use crate::time::Timestamp;

/// One declared trigger, as `/declare` and `/bulk` take it (`JobDeclaration`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobDeclaration {
    /// The caller's key.
    #[serde(default)]
    pub custom_key: Option<String>,
    /// Display title.
    #[serde(default)]
    pub title: Option<String>,
    /// When (API.md §4; a cron expression makes a generator). Absent: now.
    #[serde(default)]
    pub scheduled_at: Option<String>,
    /// Target URL.
    pub url: String,
    /// HTTP method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// Headers to send (string values).
    #[serde(default)]
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    /// `{"_tag":"text","value"}`, `{"_tag":"base64","value"}`, any other JSON value (sent as
    /// JSON), or null.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// IANA zone for a cron expression (extension).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Attempts, 1..=10 (extension).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Timeout in seconds, 1..=300 (extension).
    #[serde(default)]
    pub timeout: Option<u32>,
}

/// A declaration normalised and validated, with the ids it would use if created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclareItem {
    /// The caller's key.
    pub custom_key: Option<String>,
    /// `scheduledAt` as declared (trimmed; `None` for absent or empty), compared as written so
    /// that relative times (`now | add 1h`) do not make every sync an update.
    pub spec: Option<String>,
    /// Zone of a cron expression (`None` for one-off jobs).
    pub timezone: Option<String>,
    /// The definition to create or update with.
    pub definition: TriggerDefinition,
    /// Id if created.
    pub new_job_id: JobId,
    /// Id of its planned execution if created.
    pub new_execution_id: ExecutionId,
}

impl DeclareItem {
    /// Job or generator.
    pub fn kind(&self) -> JobKind {
        self.definition.schedule.kind()
    }

    /// Whether it is a one-off whose time has passed with `runMissed: false`.
    pub fn is_skip(&self) -> bool {
        matches!(
            self.definition.schedule,
            TriggerSchedule::Once { skip: true, .. }
        )
    }

    /// When it fires if applied (`None` for a skipped record).
    pub fn due_at(&self) -> Option<Timestamp> {
        (!self.is_skip()).then(|| self.definition.schedule.fire_at())
    }

    /// The create-or-reschedule a store applies for it (`id` names the item it updates).
    pub fn upsert(
        &self,
        project_id: &ProjectId,
        id: Option<JobId>,
        origin: Origin,
        now: Timestamp,
    ) -> UpsertTrigger {
        UpsertTrigger {
            project_id: project_id.clone(),
            trigger_id: id,
            custom_key: self.custom_key.clone(),
            definition: self.definition.clone(),
            origin,
            new_job_id: self.new_job_id.clone(),
            new_execution_id: self.new_execution_id.clone(),
            now,
        }
    }

    /// Its result line once `operation` (added or updated) was applied: a past one-off not to
    /// run is reported `skipped` (and names no changed fields).
    pub fn applied(
        &self,
        operation: SyncOperation,
        id: JobId,
        changed: Option<Vec<&str>>,
    ) -> SyncResult {
        if self.is_skip() {
            self.result(SyncOperation::Skipped, id, None)
        } else {
            self.result(operation, id, changed)
        }
    }

    /// A result line about this item.
    pub fn result(
        &self,
        operation: SyncOperation,
        id: JobId,
        changed: Option<Vec<&str>>,
    ) -> SyncResult {
        SyncResult {
            operation,
            custom_key: self.custom_key.clone(),
            kind: self.kind(),
            id,
            changed_fields: changed.map(|c| c.into_iter().map(str::to_owned).collect()),
        }
    }
}

impl JobDeclaration {
    /// Validates and normalises; errors are prefixed with `field` (e.g. `jobs[2]`).
    pub fn normalize(
        self,
        field: &str,
        now: Timestamp,
        run_missed: Option<bool>,
        allow_private_targets: bool,
    ) -> Result<DeclareItem, Error> {
        let named = |e: Error| match e {
            Error::BadRequest(m) => Error::BadRequest(format!("{field}: {m}")),
            other => other,
        };
        let mut req =
            ScheduleRequest::new(self.method.unwrap_or_else(|| "GET".to_owned()), self.url);
        let mut has_content_type = false;
        for (name, value) in self.headers.unwrap_or_default() {
            let serde_json::Value::String(value) = value else {
                return Err(Error::BadRequest(format!(
                    "{field}.headers.{name}: header values must be strings"
                )));
            };
            has_content_type |= name.eq_ignore_ascii_case("content-type");
            req = req.header(name, value);
        }
        let (body, json) =
            decode_body(self.body).map_err(|m| Error::BadRequest(format!("{field}.body: {m}")))?;
        if json && !has_content_type {
            req = req.header("content-type", "application/json");
        }
        req.request.body = body;
        req.custom_key = self.custom_key;
        req.title = self.title;
        req.tags = self.tags.unwrap_or_default();
        req.timezone = self.timezone.filter(|t| !t.trim().is_empty());
        req.run_missed = run_missed;
        if let Some(n) = self.max_attempts {
            req.options.max_attempts = n;
        }
        if let Some(secs) = self.timeout {
            req.options.timeout = std::time::Duration::from_secs(u64::from(secs));
        }
        let spec = self
            .scheduled_at
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        req.when = match &spec {
            None => When::Now,
            Some(raw) => crate::request::parse_when(raw, now).map_err(named)?,
        };
        req.validate(allow_private_targets).map_err(named)?;
        // Only a cron expression's zone matters for comparisons.
        let timezone = match req.when {
            When::Cron { .. } => Some(req.timezone.clone().unwrap_or_else(|| "UTC".into())),
            _ => None,
        };
        let new_job_id = JobId::generate();
        let new_execution_id = ExecutionId::generate();
        let definition = crate::service::definition_for(req.clone(), now).map_err(named)?;
        Ok(DeclareItem {
            custom_key: req.custom_key,
            spec,
            timezone,
            definition,
            new_job_id,
            new_execution_id,
        })
    }
}

/// The body forms of a declaration: bytes, and whether they are JSON.
fn decode_body(body: Option<serde_json::Value>) -> Result<(Bytes, bool), String> {
    use serde_json::Value;
    let Some(body) = body else {
        return Ok((Bytes::new(), false));
    };
    if let Value::Object(map) = &body {
        if let (Some(Value::String(tag)), Some(value)) = (map.get("_tag"), map.get("value")) {
            if map.len() == 2 {
                let Value::String(value) = value else {
                    return Err(format!("{tag} body value must be a string"));
                };
                match tag.as_str() {
                    "text" => return Ok((Bytes::from(value.clone().into_bytes()), false)),
                    "base64" => {
                        return base64::engine::general_purpose::STANDARD
                            .decode(value.trim())
                            .map(|b| (Bytes::from(b), false))
                            .map_err(|e| format!("invalid base64: {e}"))
                    }
                    _ => {}
                }
            }
        }
    }
    match body {
        Value::Null => Ok((Bytes::new(), false)),
        other => serde_json::to_vec(&other)
            .map(|b| (Bytes::from(b), true))
            .map_err(|e| e.to_string()),
    }
}

/// An existing item as a store reads it for a sync: enough to compare and to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedItem {
    /// Its id.
    pub id: JobId,
    /// Its state.
    pub state: ItemState,
    /// Its key.
    pub custom_key: Option<String>,
    /// `scheduledAt` as declared (or the cron expression of a generator).
    pub spec: Option<String>,
    /// Zone of a generator.
    pub timezone: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Request.
    pub request: HttpRequest,
    /// Tags.
    pub tags: Vec<String>,
    /// Options.
    pub options: DeliveryOptions,
    /// Whether `/declare` created it.
    pub declared: bool,
}

impl ManagedItem {
    fn is_live(&self) -> bool {
        match self.state {
            ItemState::Job(s) => s.is_live(),
            ItemState::Generator(s) => s == GeneratorStatus::Active,
        }
    }

    /// A finished job that a matching declaration leaves alone (it is never fired again).
    fn is_done(&self) -> bool {
        matches!(
            self.state,
            ItemState::Job(JobStatus::Completed | JobStatus::Skipped)
        )
    }
}

/// The fields in which `item` differs from `existing` (API.md §2's names, plus our
/// extensions `maxAttempts` and `timeout`).
pub fn changed_fields(item: &DeclareItem, existing: &ManagedItem) -> Vec<&'static str> {
    let mut out = Vec::new();
    let def = &item.definition;
    if def.title != existing.title {
        out.push("title");
    }
    let kind_differs = item.kind() != existing.state.kind();
    if kind_differs || item.spec != existing.spec || item.timezone != existing.timezone {
        out.push("scheduledAt");
    }
    if def.request.url != existing.request.url {
        out.push("url");
    }
    if def.request.method != existing.request.method {
        out.push("method");
    }
    let mut a = def.request.headers.clone();
    let mut b = existing.request.headers.clone();
    a.sort();
    b.sort();
    if a != b {
        out.push("headers");
    }
    if def.request.body != existing.request.body {
        out.push("body");
    }
    if def.tags != existing.tags {
        out.push("tags");
    }
    if def.options.max_attempts != existing.options.max_attempts {
        out.push("maxAttempts");
    }
    if def.options.timeout != existing.options.timeout {
        out.push("timeout");
    }
    out
}

/// What a sync does with one declaration or one existing item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStep {
    /// Create `items[index]` (as a `skipped` record if it is a past one-off not to run).
    Add {
        /// Index into the declarations.
        index: usize,
    },
    /// Update `id` in place with `items[index]`.
    Update {
        /// Index into the declarations.
        index: usize,
        /// The item.
        id: JobId,
        /// What it is now.
        existing: JobKind,
        /// What differs.
        changed: Vec<&'static str>,
    },
    /// Leave `id` alone: it already matches.
    Unchanged {
        /// Index into the declarations.
        index: usize,
        /// The item.
        id: JobId,
    },
    /// Not applied: the matching item left `registered` (or is not the caller's to change).
    Skip {
        /// Index into the declarations.
        index: usize,
        /// The item that blocks it.
        id: JobId,
    },
    /// Cancel `id`.
    Cancel {
        /// The item.
        id: JobId,
        /// Its kind.
        kind: JobKind,
        /// Its key.
        custom_key: Option<String>,
    },
}

/// Rejects two declarations with the same key.
pub fn check_unique_keys(items: &[DeclareItem], field: &str) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(key) = &item.custom_key {
            if !seen.insert(key.as_str()) {
                return Err(Error::BadRequest(format!(
                    "{field}[{i}]: duplicate customKey {key:?} in one request"
                )));
            }
        }
    }
    Ok(())
}

/// The `/declare` diff. `existing` holds every live item of the project holding one of the
/// declared keys (whatever created it), every live item `/declare` created, and the
/// `/declare`-created jobs that completed or were skipped (so that an unchanged declaration of
/// a finished job is `unchanged`, never fired again).
pub fn plan_declare(items: &[DeclareItem], existing: &[ManagedItem]) -> Vec<SyncStep> {
    let mut matched: HashSet<&JobId> = HashSet::new();
    let mut steps = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let candidate = match &item.custom_key {
            Some(key) => existing
                .iter()
                .filter(|m| m.custom_key.as_deref() == Some(key.as_str()))
                .find(|m| m.is_live())
                .or_else(|| {
                    existing.iter().find(|m| {
                        m.declared
                            && m.custom_key.as_deref() == Some(key.as_str())
                            && m.is_done()
                            && changed_fields(item, m).is_empty()
                    })
                }),
            None => existing.iter().find(|m| {
                m.declared
                    && m.custom_key.is_none()
                    && !matched.contains(&m.id)
                    && (m.is_live() || m.is_done())
                    && changed_fields(item, m).is_empty()
            }),
        };
        let step = match candidate {
            None => SyncStep::Add { index },
            Some(m) => {
                matched.insert(&m.id);
                let changed = changed_fields(item, m);
                if !m.declared {
                    SyncStep::Skip {
                        index,
                        id: m.id.clone(),
                    }
                } else if changed.is_empty() {
                    SyncStep::Unchanged {
                        index,
                        id: m.id.clone(),
                    }
                } else if m.state.is_pending() {
                    SyncStep::Update {
                        index,
                        id: m.id.clone(),
                        existing: m.state.kind(),
                        changed,
                    }
                } else {
                    SyncStep::Skip {
                        index,
                        id: m.id.clone(),
                    }
                }
            }
        };
        steps.push(step);
    }
    for m in existing {
        if m.declared && m.state.is_pending() && !matched.contains(&m.id) {
            steps.push(SyncStep::Cancel {
                id: m.id.clone(),
                kind: m.state.kind(),
                custom_key: m.custom_key.clone(),
            });
        }
    }
    steps
}

/// The `/bulk` upserts, after its cancels: create-or-reschedule by key. `holders` are the live
/// items holding the declared keys (after the cancels).
pub fn plan_bulk_upserts(items: &[DeclareItem], holders: &[ManagedItem]) -> Vec<SyncStep> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let holder = item.custom_key.as_deref().and_then(|key| {
                holders
                    .iter()
                    .find(|m| m.custom_key.as_deref() == Some(key) && m.is_live())
            });
            match holder {
                None => SyncStep::Add { index },
                Some(m) if !m.state.is_pending() => SyncStep::Skip {
                    index,
                    id: m.id.clone(),
                },
                Some(m) => {
                    let changed = changed_fields(item, m);
                    if changed.is_empty() {
                        SyncStep::Unchanged {
                            index,
                            id: m.id.clone(),
                        }
                    } else {
                        SyncStep::Update {
                            index,
                            id: m.id.clone(),
                            existing: m.state.kind(),
                            changed,
                        }
                    }
                }
            }
        })
        .collect()
}

/// A `/bulk` cancel selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkSelector {
    /// A bare string: a custom key if one matches, else an id.
    Bare(String),
    /// By custom key.
    CustomKey(String),
    /// By id.
    Id(JobId),
    /// Every registered job and active generator carrying the tag.
    Tag(String),
}

/// A `/declare` call for a store.
#[derive(Debug, Clone)]
pub struct DeclareSync {
    /// The caller's project.
    pub project_id: ProjectId,
    /// The declarations, in request order.
    pub items: Vec<DeclareItem>,
    /// The current time.
    pub now: Timestamp,
}

/// A `/bulk` call for a store.
#[derive(Debug, Clone)]
pub struct BulkSync {
    /// The caller's project.
    pub project_id: ProjectId,
    /// Cancels, applied first.
    pub cancels: Vec<BulkSelector>,
    /// Upserts, applied after the cancels.
    pub upserts: Vec<DeclareItem>,
    /// The current time.
    pub now: Timestamp,
}

/// The operation names of a sync result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
pub enum SyncOperation {
    /// Nothing to do.
    Unchanged,
    /// Created.
    Added,
    /// Not applied.
    Skipped,
    /// Updated in place.
    Updated,
    /// Cancelled.
    Cancelled,
}

impl SyncOperation {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOperation::Unchanged => "unchanged",
            SyncOperation::Added => "added",
            SyncOperation::Skipped => "skipped",
            SyncOperation::Updated => "updated",
            SyncOperation::Cancelled => "cancelled",
        }
    }
}

/// One line of a sync result (`DeclareOperationResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// What happened.
    pub operation: SyncOperation,
    /// The item's key.
    pub custom_key: Option<String>,
    /// Job or generator.
    pub kind: JobKind,
    /// The item's id.
    pub id: JobId,
    /// For `updated`: what differed.
    pub changed_fields: Option<Vec<String>>,
}

/// The result of a sync: its lines in request order, cancellations appended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncOutcome {
    /// The lines.
    pub operations: Vec<SyncResult>,
}

impl SyncOutcome {
    /// How many lines have this operation.
    pub fn count(&self, op: SyncOperation) -> usize {
        self.operations.iter().filter(|o| o.operation == op).count()
    }
}

/// Billable units of a plan: one per item added or updated (skipped records are free).
pub fn billable(steps: &[SyncStep], items: &[DeclareItem]) -> u64 {
    steps
        .iter()
        .filter(|s| match s {
            SyncStep::Add { index } => items.get(*index).is_some_and(|i| !i.is_skip()),
            SyncStep::Update { .. } => true,
            _ => false,
        })
        .count() as u64
}
