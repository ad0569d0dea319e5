//! [`TimeTriggers`]: the typed service API. Embedding applications call it directly; the http
//! crate is a thin translation onto it.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::declare::{
    check_unique_keys, BulkSelector, BulkSync, DeclareItem, DeclareSync, JobDeclaration,
    SyncOutcome,
};
use crate::engine::EngineSignal;
use crate::error::Error;
use crate::ids::{random_secret, ApiKeyId, ExecutionId, JobId, ProjectId};
use crate::key_cache::{ApiKeyCache, API_KEY_CACHE_TTL};
use crate::model::{ApiKey, AuthenticatedKey, Execution, Job, MonthQuota, Origin, Project};
use crate::request::{ScheduleRequest, When};
use crate::rules::cron::{parse_timezone, CronExpr};
use crate::rules::generator::next_fire;
use crate::store::{
    NewApiKey, NewProject, Store, TriggerDefinition, TriggerRef, TriggerSchedule, UpsertTrigger,
    Upserted,
};
use crate::time::{Clock, Timestamp};

/// The slug of the project created at first start.
pub const DEFAULT_PROJECT_SLUG: &str = "default";

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Allow targets on loopback, private and link-local addresses.
    pub allow_private_targets: bool,
    /// `monthQuota` of new projects.
    pub default_month_quota: MonthQuota,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            allow_private_targets: false,
            default_month_quota: MonthQuota::Unlimited,
        }
    }
}

/// A freshly created API key: the listing form and the secret, shown this once.
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The full secret.
    pub secret: String,
}

/// The scheduler's API. Cheap to clone.
#[derive(Clone)]
pub struct TimeTriggers {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    signal: Arc<EngineSignal>,
    config: ServiceConfig,
    keys: Arc<ApiKeyCache>,
}

impl fmt::Debug for TimeTriggers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeTriggers")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Turns a validated request into the definition a store persists: `now` resolves `When::Now`,
/// a past time with `run_missed: false` becomes a skipped record, and a cron expression
/// becomes a generator whose first occurrence is computed here.
pub(crate) fn definition_for(
    req: ScheduleRequest,
    now: Timestamp,
) -> Result<TriggerDefinition, Error> {
    let schedule = match req.when {
        When::Now => TriggerSchedule::Once {
            at: now,
            skip: false,
        },
        When::At(at) => TriggerSchedule::Once {
            at,
            skip: at < now && req.run_missed == Some(false),
        },
        When::Cron { expression } => {
            let timezone = req.timezone.clone().unwrap_or_else(|| "UTC".to_owned());
            let (cron, tz) = parse_cron(&expression, &timezone)?;
            let first_at = next_fire(&cron, tz, now).ok_or_else(|| {
                Error::BadRequest(format!(
                    "ttr-scheduled-at: {expression:?} never fires again"
                ))
            })?;
            TriggerSchedule::Cron {
                expression: expression.trim().to_owned(),
                timezone,
                run_missed: req.run_missed.unwrap_or(false),
                first_at,
                occurrence_id: JobId::generate(),
            }
        }
    };
    Ok(TriggerDefinition {
        request: req.request,
        title: req.title,
        tags: req.tags,
        options: req.options,
        schedule,
    })
}

/// Parses a cron expression and an IANA zone; errors name the offending part.
pub fn parse_cron(expression: &str, timezone: &str) -> Result<(CronExpr, chrono_tz::Tz), Error> {
    let cron = CronExpr::parse(expression)
        .map_err(|e| Error::BadRequest(format!("invalid cron expression: {e}")))?;
    let tz = parse_timezone(timezone)
        .map_err(|e| Error::BadRequest(format!("invalid time zone: {e}")))?;
    Ok((cron, tz))
}

/// The next `count` (1..=100) fire instants of `expression` in `timezone` after `from`.
pub fn cron_preview(
    expression: &str,
    timezone: &str,
    from: Timestamp,
    count: usize,
) -> Result<Vec<Timestamp>, Error> {
    if !(1..=100).contains(&count) {
        return Err(Error::BadRequest(format!(
            "count must be from 1 to 100 (got {count})"
        )));
    }
    let (cron, tz) = parse_cron(expression, timezone)?;
    Ok(cron
        .next_n(from.to_datetime(), tz, count)
        .into_iter()
        .map(Timestamp::from_datetime)
        .collect())
}

/// Hex SHA-256 of an API key secret, as stored. Keys are 160-bit random values, so a fast hash
/// is enough: there is nothing to brute-force.
pub fn hash_api_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The masked form of a key: its first 6 characters and `…`.
pub fn mask_api_key(secret: &str) -> String {
    let head: String = secret.chars().take(6).collect();
    format!("{head}…")
}

impl TimeTriggers {
    /// Builds the service over a store. `signal` is the engine's ([`crate::Engine::signal`]),
    /// so that a job due before the engine's next wake-up wakes it at once.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        signal: Arc<EngineSignal>,
        config: ServiceConfig,
    ) -> Self {
        TimeTriggers {
            store,
            clock,
            signal,
            config,
            keys: Arc::new(ApiKeyCache::new(API_KEY_CACHE_TTL)),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The engine's wake-up signal.
    pub(crate) fn signal(&self) -> &Arc<EngineSignal> {
        &self.signal
    }

    /// Succeeds once the store is reachable.
    pub async fn health(&self) -> Result<(), Error> {
        Ok(self.store.ping().await?)
    }

    /// Resolves an API key to its project; 401 if unknown or deleted. Keys are remembered
    /// for [`crate::API_KEY_CACHE_TTL`]: a key deleted through this service is refused at once,
    /// one deleted through another instance sharing the store within that time.
    pub async fn authenticate(&self, api_key: &str) -> Result<AuthenticatedKey, Error> {
        if api_key.is_empty() || api_key.len() > 256 {
            return Err(Error::Unauthorized("invalid API key".into()));
        }
        let hash = hash_api_key(api_key);
        if let Some(key) = self.keys.get(&hash) {
            return Ok(key);
        }
        let key = self
            .store
            .find_api_key(&hash)
            .await?
            .ok_or_else(|| Error::Unauthorized("invalid API key".into()))?;
        self.keys.insert(hash, key.clone());
        Ok(key)
    }

    /// Deletes an API key; it is refused from the next call on.
    pub(crate) async fn delete_api_key(
        &self,
        project_id: &ProjectId,
        id: &ApiKeyId,
    ) -> Result<(), crate::store::StoreError> {
        // Forget it before and after: a concurrent authenticate may re-read it in between.
        self.keys.forget(id);
        let deleted = self.store.delete_api_key(project_id, id).await;
        self.keys.forget(id);
        deleted
    }

    /// Creates or reschedules a trigger (the table of API.md §2).
    pub async fn schedule(
        &self,
        project_id: &ProjectId,
        mut req: ScheduleRequest,
    ) -> Result<Upserted, Error> {
        req.validate(self.config.allow_private_targets)?;
        let now = self.clock.now();
        let trigger_id = req.trigger_id.take();
        let custom_key = req.custom_key.clone();
        let definition = definition_for(req, now)?;
        let schedule = definition.schedule.clone();
        let what = match (&trigger_id, &custom_key) {
            (Some(id), _) => format!("trigger {:?}", id.as_str()),
            (None, Some(key)) => format!("custom key {key:?}"),
            (None, None) => "trigger".to_owned(),
        };
        let upsert = UpsertTrigger {
            project_id: project_id.clone(),
            trigger_id,
            custom_key,
            definition,
            origin: Origin::Schedule,
            new_job_id: JobId::generate(),
            new_execution_id: ExecutionId::generate(),
            now,
        };
        let done = self
            .store
            .upsert_trigger(upsert)
            .await?
            .map_err(|r| Error::from_refusal(r, &what))?;
        match schedule {
            TriggerSchedule::Once { skip: true, .. } => {}
            other => self.signal.due_at(other.fire_at()),
        }
        Ok(done)
    }

    /// `/declare`: makes the items created by `/declare` in the project exactly `declarations`
    /// (API.md §2). `run_missed` applies to every item (one-off default true, generator
    /// default false).
    pub async fn declare(
        &self,
        project_id: &ProjectId,
        declarations: Vec<JobDeclaration>,
        run_missed: Option<bool>,
    ) -> Result<SyncOutcome, Error> {
        let now = self.clock.now();
        let items = self.normalize_all(declarations, "jobs", now, run_missed)?;
        let wake = Self::fire_times(&items);
        let sync = DeclareSync {
            project_id: project_id.clone(),
            items,
            now,
        };
        let done = self
            .store
            .declare(sync)
            .await?
            .map_err(|r| Error::from_refusal(r, "declaration"))?;
        self.wake_for(wake);
        Ok(done)
    }

    /// `/bulk`: cancels, then create-or-reschedule by key, in one transaction.
    pub async fn bulk(
        &self,
        project_id: &ProjectId,
        cancels: Vec<BulkSelector>,
        upserts: Vec<JobDeclaration>,
        run_missed: Option<bool>,
    ) -> Result<SyncOutcome, Error> {
        let now = self.clock.now();
        let upserts = self.normalize_all(upserts, "upserts", now, run_missed)?;
        for (i, c) in cancels.iter().enumerate() {
            let empty = match c {
                BulkSelector::Bare(s) | BulkSelector::CustomKey(s) | BulkSelector::Tag(s) => {
                    s.trim().is_empty()
                }
                BulkSelector::Id(id) => id.as_str().trim().is_empty(),
            };
            if empty {
                return Err(Error::BadRequest(format!("cancels[{i}]: empty selector")));
            }
        }
        let wake = Self::fire_times(&upserts);
        let sync = BulkSync {
            project_id: project_id.clone(),
            cancels,
            upserts,
            now,
        };
        let done = self
            .store
            .bulk(sync)
            .await?
            .map_err(|r| Error::from_refusal(r, "bulk item"))?;
        self.wake_for(wake);
        self.signal.generators_changed();
        Ok(done)
    }

    fn normalize_all(
        &self,
        declarations: Vec<JobDeclaration>,
        field: &str,
        now: Timestamp,
        run_missed: Option<bool>,
    ) -> Result<Vec<DeclareItem>, Error> {
        let items = declarations
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                d.normalize(
                    &format!("{field}[{i}]"),
                    now,
                    run_missed,
                    self.config.allow_private_targets,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_unique_keys(&items, field)?;
        Ok(items)
    }

    fn fire_times(items: &[DeclareItem]) -> Option<Timestamp> {
        items.iter().filter_map(DeclareItem::due_at).min()
    }

    fn wake_for(&self, earliest: Option<Timestamp>) {
        if let Some(t) = earliest {
            self.signal.due_at(t);
        }
    }

    /// Cancels a `registered` job or an active generator.
    pub async fn cancel(&self, project_id: &ProjectId, target: TriggerRef) -> Result<JobId, Error> {
        let what = match &target {
            TriggerRef::Id(id) => format!("trigger {:?}", id.as_str()),
            TriggerRef::CustomKey(k) => format!("custom key {k:?}"),
        };
        let now = self.clock.now();
        let id = self
            .store
            .cancel_trigger(project_id, &target, now)
            .await?
            .map_err(|r| Error::from_refusal(r, &what))?;
        // Cancelling one occurrence of a series leaves the generator without a pending
        // occurrence: let the engine plan the next one.
        self.signal.generators_changed();
        Ok(id)
    }

    /// The next `count` (1..=100) fire instants of a cron expression in `timezone`, strictly
    /// after `from`, exactly as a generator fires them (`GET /cron/next`).
    pub fn cron_next(
        &self,
        expression: &str,
        timezone: &str,
        from: Timestamp,
        count: usize,
    ) -> Result<Vec<Timestamp>, Error> {
        cron_preview(expression, timezone, from, count)
    }

    /// A job of the project.
    pub async fn get_job(&self, project_id: &ProjectId, id: &JobId) -> Result<Job, Error> {
        self.store
            .get_job(project_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {:?} not found", id.as_str())))
    }

    /// A job's executions, newest first.
    pub async fn list_job_executions(
        &self,
        project_id: &ProjectId,
        id: &JobId,
    ) -> Result<Vec<Execution>, Error> {
        self.store
            .list_job_executions(project_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {:?} not found", id.as_str())))
    }

    /// Creates a project with the default quota.
    pub async fn create_project(&self, slug: &str) -> Result<Project, Error> {
        crate::dashboard::validate_project_slug(slug)?;
        let project = NewProject {
            id: ProjectId::generate(),
            slug: slug.to_owned(),
            month_quota: self.config.default_month_quota,
            now: self.clock.now(),
        };
        Ok(self.store.create_project(project).await?)
    }

    /// Creates an API key for a project; the secret is returned this once.
    pub async fn create_api_key(
        &self,
        project_id: &ProjectId,
        name: &str,
    ) -> Result<CreatedApiKey, Error> {
        let secret = format!("ttr_{}", random_secret(20));
        let key = self.store_api_key(project_id, name, &secret).await?;
        Ok(CreatedApiKey { key, secret })
    }

    async fn store_api_key(
        &self,
        project_id: &ProjectId,
        name: &str,
        secret: &str,
    ) -> Result<ApiKey, Error> {
        let new = NewApiKey {
            id: ApiKeyId::generate(),
            project_id: project_id.clone(),
            name: name.to_owned(),
            key_hash: hash_api_key(secret),
            masked: mask_api_key(secret),
            now: self.clock.now(),
        };
        Ok(self.store.create_api_key(new).await?)
    }

    /// Makes sure the `default` project exists. With `bootstrap_key`, makes sure it holds that
    /// key (idempotent). Without one, creates a key only when it creates the project, and
    /// returns that key's secret so the caller can show it once.
    pub async fn bootstrap(&self, bootstrap_key: Option<&str>) -> Result<Option<String>, Error> {
        let (project, created) = match self.store.get_project_by_slug(DEFAULT_PROJECT_SLUG).await? {
            Some(p) => (p, false),
            None => match self.create_project(DEFAULT_PROJECT_SLUG).await {
                Ok(p) => (p, true),
                // Another instance created it at the same moment.
                Err(Error::Conflict(_)) => {
                    let p = self
                        .store
                        .get_project_by_slug(DEFAULT_PROJECT_SLUG)
                        .await?
                        .ok_or_else(|| Error::Unavailable("default project vanished".into()))?;
                    (p, false)
                }
                Err(e) => return Err(e),
            },
        };
        match bootstrap_key {
            Some(secret) => {
                if secret.trim().is_empty() {
                    return Err(Error::BadRequest("the bootstrap API key is empty".into()));
                }
                if self
                    .store
                    .find_api_key(&hash_api_key(secret))
                    .await?
                    .is_none()
                {
                    match self.store_api_key(&project.id, "bootstrap", secret).await {
                        Ok(_) | Err(Error::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(None)
            }
            None if created => Ok(Some(
                self.create_api_key(&project.id, "default").await?.secret,
            )),
            None => Ok(None),
        }
    }

    /// The current time on the service's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
