//! Step 8: give the temp table the live table's indexes (under [`temp_name`]s) and
//! constraints. Idempotent, and interruptible between index builds.
//!
//! Order: drop what the live table lacks, rename equivalents (the copy's primary key), build
//! the missing indexes — up to `parallelism` at once, each in its own session and
//! transaction — then attach primary-key / unique constraints to their indexes, add check and
//! foreign-key constraints, `ANALYZE`. Builds of different indexes run side by side (each
//! holds a SHARE lock, which does not conflict with another SHARE lock); everything that
//! needs an ACCESS EXCLUSIVE lock comes after them.

use super::shape::{check_supported, table_shape, ConstraintInfo, IndexInfo, TableShape};
use crate::error::{StepError, StepResult};
use crate::media::MediaType;
use crate::pg::error::PgResultExt;
use crate::pg::job::{
    cancelled, connect_job_session, run_statement, CancellationToken, JobProgress,
    SessionSafeguards,
};
use crate::pg::sql::quote_ident;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;
const TEMP_NAME_SUFFIX: &str = "_tmp";

/// The deterministic name a live index (or index-backed constraint) has on the temp table:
/// `<name>_tmp`, or, when that would pass 63 bytes, a truncated name plus a hash of the full
/// one so that two long names sharing a prefix stay distinct.
pub fn temp_name(live_name: &str) -> String {
    let simple = format!("{live_name}{TEMP_NAME_SUFFIX}");
    if simple.len() <= MAX_IDENTIFIER_BYTES {
        return simple;
    }
    let hash = format!("_{:08x}", fnv1a32(live_name.as_bytes()));
    let room = MAX_IDENTIFIER_BYTES - hash.len() - TEMP_NAME_SUFFIX.len();
    let mut cut = room.min(live_name.len());
    while !live_name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}{TEMP_NAME_SUFFIX}", &live_name[..cut])
}

/// FNV-1a: tiny and stable across Rust releases (std's hasher is not).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// What reapplying did to one index or constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReapplyAction {
    /// Already there from an earlier run.
    Present,
    /// An equivalent one (e.g. the copy's primary key) was renamed to the temp name.
    Renamed {
        from: String,
    },
    Created,
    /// Was there with a different definition (or invalid): dropped and created again.
    Replaced,
    /// Its index was built by an earlier, interrupted run; only the primary-key or unique
    /// constraint was added to it now.
    Attached,
}

impl ReapplyAction {
    /// Built now: `Replaced` when one of the name was dropped first, else `Created`.
    fn built(replaced: bool) -> Self {
        if replaced {
            ReapplyAction::Replaced
        } else {
            ReapplyAction::Created
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReappliedItem {
    pub live_name: String,
    pub temp_name: String,
    pub action: ReapplyAction,
}

/// The `reapply_constraints` step's (and the worker's `reapply` job's) output.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReapplyReport {
    /// In the live table's index order (by name), whatever order they were built in.
    pub indexes: Vec<ReappliedItem>,
    pub constraints: Vec<ReappliedItem>,
    /// Indexes / constraints on the temp table the live table does not have.
    pub dropped: Vec<String>,
    /// False when the deadline passed first: run again to continue (every step is idempotent).
    pub done: bool,
    /// Planner statistics were collected for the temp table.
    pub analyzed: bool,
}

/// Index builds a worker runs at once unless the task says otherwise.
pub const DEFAULT_REAPPLY_PARALLELISM: usize = 4;
/// How often a job waiting for another session's index build looks again.
const OTHER_BUILDS_POLL: Duration = Duration::from_secs(2);

/// How step 8 runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapplyOptions {
    /// Index builds at once, each on its own session (PostgreSQL builds one index per
    /// backend; builds of different indexes of one table do not block each other). 1 = one
    /// after another on the caller's connection.
    pub parallelism: usize,
    /// No new build starts after this (a Lambda's time budget); `None`: run to the end.
    pub deadline: Option<Instant>,
    /// When another session is building an index on the temp table: `false` returns at once
    /// with `done: false` (the Lambda path: an earlier call's build that outlived its Lambda,
    /// let it commit), `true` waits until it is gone (the worker: a killed worker's backend
    /// ends within its connection check interval).
    pub wait_for_other_builds: bool,
}

impl Default for ReapplyOptions {
    fn default() -> Self {
        ReapplyOptions {
            parallelism: 1,
            deadline: None,
            wait_for_other_builds: false,
        }
    }
}

/// Creates the live table's indexes and constraints on the temp table (step 8), one statement
/// after another on `client`.
pub async fn reapply_constraints(
    client: &Client,
    media: MediaType,
) -> Result<ReapplyReport, StepError> {
    reapply_constraints_until(client, media, None).await
}

/// Like [`reapply_constraints`], but stops starting new index builds after `deadline`
/// (report `done: false`), so a step with a time limit can loop.
pub async fn reapply_constraints_until(
    client: &Client,
    media: MediaType,
    deadline: Option<Instant>,
) -> Result<ReapplyReport, StepError> {
    let options = ReapplyOptions {
        deadline,
        ..ReapplyOptions::default()
    };
    reapply(
        client,
        Sessions::Caller,
        media,
        &options,
        &JobProgress::default(),
        &CancellationToken::new(),
    )
    .await
}

/// Step 8 as the worker runs it: no deadline; up to `options.parallelism` index builds at once,
/// each on its own job session on `url` (so each dies with the worker, see
/// [`SessionSafeguards`]); statements recorded in `progress`; everything running is cancelled
/// on the server when `cancel` fires.
pub async fn reapply_constraints_on(
    url: &str,
    safeguards: &SessionSafeguards,
    media: MediaType,
    options: &ReapplyOptions,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> Result<ReapplyReport, StepError> {
    let main = connect_job_session(url, safeguards).await?;
    reapply(
        &main,
        Sessions::Open { url, safeguards },
        media,
        options,
        progress,
        cancel,
    )
    .await
}

/// Where index builds run.
#[derive(Clone, Copy)]
enum Sessions<'a> {
    /// On the caller's connection only.
    Caller,
    /// On the main connection plus job sessions opened on `url`.
    Open {
        url: &'a str,
        safeguards: &'a SessionSafeguards,
    },
}

async fn reapply(
    main: &Client,
    sessions: Sessions<'_>,
    media: MediaType,
    options: &ReapplyOptions,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> Result<ReapplyReport, StepError> {
    let live_table = media.table();
    let temp_table = media.temp_table();
    let live = table_shape(main, live_table).await?.ok_or_else(|| {
        StepError::invalid_state(format!("live table {live_table} does not exist"))
    })?;
    check_supported(&live, live_table)?;
    let mut report = ReapplyReport::default();
    if !other_builds_gone(main, temp_table, options, progress, cancel).await? {
        return Ok(report);
    }
    let temp = table_shape(main, temp_table).await?.ok_or_else(|| {
        StepError::invalid_state(format!(
            "temp table {temp_table} does not exist: run the copy step (or a refresh without skip_copy) first"
        ))
    })?;
    let target = Target {
        client: main,
        live_table,
        temp_table,
        temp_sql: quote_ident(temp_table),
        progress,
        cancel,
    };
    let plan = Plan::new(&live, &temp);
    progress.plan(plan.statements());

    let mut items: Vec<(usize, ReappliedItem)> = Vec::new();
    target.drop_unmatched(&plan, &mut report).await?;
    target.rename_matched(&plan, &mut items).await?;
    let lanes = open_lanes(main, sessions, options.parallelism, plan.builds.len()).await?;
    let lane_refs: Vec<&Client> = lanes.iter().map(|l| l.client()).collect();
    let (built, finished) = target
        .build_indexes(&plan, &report.dropped, &lane_refs, options.deadline)
        .await;
    drop(lane_refs);
    drop(lanes);
    items.extend(built?);
    if !finished {
        report.indexes = in_live_order(items);
        return Ok(report);
    }
    // Index-backed constraints need an ACCESS EXCLUSIVE lock: added once no build holds the
    // table, each an instant catalog change.
    target.attach_constraints(&plan, &mut items).await?;
    report.indexes = in_live_order(items);
    target.add_constraints(&plan, &mut report).await?;
    target.drop_extra_constraints(&plan, &mut report).await?;
    // A freshly loaded table has no planner statistics until autovacuum gets to it; the
    // API's first queries after promotion would be planned blind. Statistics follow the
    // table through the rename.
    target
        .exec(
            &format!("collecting planner statistics for {temp_table}"),
            &format!("ANALYZE {}", target.temp_sql),
        )
        .await?;
    report.analyzed = true;
    report.done = true;
    Ok(report)
}

fn in_live_order(mut items: Vec<(usize, ReappliedItem)>) -> Vec<ReappliedItem> {
    items.sort_by_key(|(position, _)| *position);
    items.into_iter().map(|(_, item)| item).collect()
}

/// Whether no other session is building an index on the temp table (any more). A build
/// left by an earlier Lambda call commits when done and must not be raced for its name; the
/// worker waits for it, the Lambda path returns at once.
async fn other_builds_gone(
    client: &Client,
    temp_table: &str,
    options: &ReapplyOptions,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> StepResult<bool> {
    loop {
        let builds = index_builds_in_progress(client, temp_table).await?;
        if builds == 0 {
            progress.waiting(None);
            return Ok(true);
        }
        if !options.wait_for_other_builds {
            tracing::info!(
                builds,
                table = temp_table,
                "an index build on the temp table is still running; call again later"
            );
            return Ok(false);
        }
        let what = format!("{builds} index build(s) of another session on {temp_table} to end");
        progress.waiting(Some(format!("waiting for {what}")));
        tokio::select! {
            _ = tokio::time::sleep(OTHER_BUILDS_POLL) => {}
            _ = cancel.cancelled() => return Err(cancelled(&format!("waiting for {what}"))),
        }
    }
}

/// A session index builds run on: the main connection or one opened for the job.
enum Lane<'a> {
    Main(&'a Client),
    Own(Client),
}

impl Lane<'_> {
    fn client(&self) -> &Client {
        match self {
            Lane::Main(client) => client,
            Lane::Own(client) => client,
        }
    }
}

/// The main connection, plus job sessions up to `parallelism` (never more than there are
/// builds). Dropped when the builds are done, which closes the extra sessions.
async fn open_lanes<'a>(
    main: &'a Client,
    sessions: Sessions<'_>,
    parallelism: usize,
    builds: usize,
) -> StepResult<Vec<Lane<'a>>> {
    let mut lanes = vec![Lane::Main(main)];
    if let Sessions::Open { url, safeguards } = sessions {
        let wanted = parallelism.clamp(1, builds.max(1));
        for _ in 1..wanted {
            lanes.push(Lane::Own(connect_job_session(url, safeguards).await?));
        }
    }
    Ok(lanes)
}

/// How one live index is carried to the temp table.
enum Match<'t> {
    /// The temp table has it under the temp name.
    Present,
    /// An equivalent index (the copy's primary key) under another name.
    Rename(&'t IndexInfo),
    /// Built by an earlier run under the temp name, without its primary-key / unique
    /// constraint yet.
    Attach,
    Build,
}

/// One index to build: its position among the live indexes, the live index, its temp name.
struct Build<'l> {
    position: usize,
    live: &'l IndexInfo,
    name: String,
}

/// Everything step 8 will do, worked out before the first statement so the job can report
/// how many statements it runs.
struct Plan<'a> {
    live_indexes: Vec<&'a IndexInfo>,
    matches: Vec<Match<'a>>,
    /// Temp indexes no live index claims (different definition, invalid, extra).
    unmatched: Vec<&'a IndexInfo>,
    builds: Vec<Build<'a>>,
    /// Live constraints (check, foreign key) to add, and whether one of that name is
    /// replaced.
    constraints: Vec<(&'a ConstraintInfo, Option<bool>)>,
    /// Temp constraints the live table lacks.
    extra_constraints: Vec<&'a ConstraintInfo>,
}

impl<'a> Plan<'a> {
    fn new(live: &'a TableShape, temp: &'a TableShape) -> Self {
        let live_indexes: Vec<&IndexInfo> = live.indexes.iter().filter(|i| i.valid).collect();
        let matches = match_indexes(&live_indexes, temp);
        let claimed: BTreeSet<String> = live_indexes
            .iter()
            .zip(&matches)
            .filter_map(|(li, m)| match m {
                Match::Present | Match::Attach => Some(temp_name(&li.name)),
                Match::Rename(t) => Some(t.name.clone()),
                Match::Build => None,
            })
            .collect();
        let unmatched = temp
            .indexes
            .iter()
            .filter(|t| !claimed.contains(&t.name))
            .collect();
        let builds = live_indexes
            .iter()
            .zip(&matches)
            .enumerate()
            .filter(|(_, (_, m))| matches!(m, Match::Build))
            .map(|(position, (li, _))| Build {
                position,
                live: li,
                name: temp_name(&li.name),
            })
            .collect();
        let constraints = live
            .constraints
            .iter()
            .map(|lc| match temp.constraint(&lc.name) {
                Some(tc)
                    if tc.constraint_type == lc.constraint_type
                        && tc.definition == lc.definition =>
                {
                    (lc, None)
                }
                existing => (lc, Some(existing.is_some())),
            })
            .collect();
        let extra_constraints = temp
            .constraints
            .iter()
            .filter(|tc| live.constraint(&tc.name).is_none())
            .collect();
        Plan {
            live_indexes,
            matches,
            unmatched,
            builds,
            constraints,
            extra_constraints,
        }
    }

    /// Statements the plan runs, `ANALYZE` included.
    fn statements(&self) -> usize {
        let renames = self
            .matches
            .iter()
            .filter(|m| matches!(m, Match::Rename(_)))
            .count();
        let attaches = self
            .live_indexes
            .iter()
            .zip(&self.matches)
            .filter(|(li, m)| {
                index_constraint(li).is_some() && matches!(m, Match::Attach | Match::Build)
            })
            .count();
        let constraints: usize = self
            .constraints
            .iter()
            .map(|(_, add)| match add {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            })
            .sum();
        self.unmatched.len()
            + renames
            + self.builds.len()
            + attaches
            + constraints
            + self.extra_constraints.len()
            + 1
    }
}

/// `PRIMARY KEY` or `UNIQUE` for an index that backs such a constraint.
fn index_constraint(index: &IndexInfo) -> Option<&'static str> {
    match index.constraint_type.as_deref() {
        Some("p") => Some("PRIMARY KEY"),
        Some("u") => Some("UNIQUE"),
        _ => None,
    }
}

/// Matches each live index to a temp index: by temp name first (a valid index with the
/// signature, or the same unique index still without its constraint), then any equivalent
/// one (the copy step's primary key) no other live index will claim by name. An invalid
/// index (a build killed under `CREATE INDEX CONCURRENTLY`, say) never matches: it is dropped
/// and built again.
fn match_indexes<'t>(live_indexes: &[&IndexInfo], temp: &'t TableShape) -> Vec<Match<'t>> {
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let mut matches = Vec::new();
    for li in live_indexes {
        let wanted = temp_name(&li.name);
        let by_name = temp.index(&wanted).filter(|t| t.valid);
        let found = match by_name {
            Some(t) if t.signature() == li.signature() => Match::Present,
            Some(t)
                if index_constraint(li).is_some()
                    && t.constraint_type.is_none()
                    && t.unique
                    && t.body == li.body =>
            {
                Match::Attach
            }
            _ => temp
                .indexes
                .iter()
                .find(|t| {
                    t.valid
                        && !claimed.contains(t.name.as_str())
                        && t.signature() == li.signature()
                        && !live_indexes
                            .iter()
                            .any(|other| temp_name(&other.name) == t.name)
                })
                .map_or(Match::Build, Match::Rename),
        };
        match &found {
            Match::Present | Match::Attach => {
                claimed.insert(temp.index(&wanted).map_or("", |t| t.name.as_str()));
            }
            Match::Rename(t) => {
                claimed.insert(&t.name);
            }
            Match::Build => {}
        }
        matches.push(found);
    }
    matches
}

/// The builds still to start and what the lanes report back, shared by the lanes.
struct BuildQueue<'p, 'l> {
    queue: Mutex<VecDeque<&'p Build<'l>>>,
    built: Mutex<Vec<(usize, ReappliedItem)>>,
    failure: Mutex<Option<StepError>>,
    stop: AtomicBool,
    /// Names dropped before the builds: a build of one of them is a replacement.
    dropped: &'p [String],
    deadline: Option<Instant>,
}

/// The temp table being given the live table's shape.
struct Target<'a> {
    client: &'a Client,
    live_table: &'a str,
    temp_table: &'a str,
    temp_sql: String,
    progress: &'a JobProgress,
    cancel: &'a CancellationToken,
}

impl Target<'_> {
    async fn exec(&self, what: &str, sql: &str) -> StepResult<u64> {
        run_statement(self.client, what, sql, self.progress, self.cancel).await
    }

    async fn drop_constraint(&self, name: &str, what: &str) -> StepResult<()> {
        let sql = format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            self.temp_sql,
            quote_ident(name)
        );
        self.exec(what, &sql).await.map(drop)
    }

    /// Drops the temp indexes no live index matched.
    async fn drop_unmatched(&self, plan: &Plan<'_>, report: &mut ReapplyReport) -> StepResult<()> {
        for t in &plan.unmatched {
            let what = format!(
                "dropping index {} on {}, which {} does not have{}",
                t.name,
                self.temp_table,
                self.live_table,
                if t.valid { "" } else { " (invalid)" }
            );
            match &t.constraint_type {
                Some(_) => self.drop_constraint(&t.name, &what).await?,
                None => {
                    self.exec(&what, &format!("DROP INDEX {}", quote_ident(&t.name)))
                        .await?;
                }
            }
            report.dropped.push(t.name.clone());
        }
        Ok(())
    }

    /// Renames equivalent indexes to their temp names and records those already present.
    async fn rename_matched(
        &self,
        plan: &Plan<'_>,
        items: &mut Vec<(usize, ReappliedItem)>,
    ) -> StepResult<()> {
        for (position, (li, found)) in plan.live_indexes.iter().zip(&plan.matches).enumerate() {
            let wanted = temp_name(&li.name);
            let action = match found {
                Match::Present => ReapplyAction::Present,
                Match::Rename(t) => {
                    let sql = format!(
                        "ALTER INDEX {} RENAME TO {}",
                        quote_ident(&t.name),
                        quote_ident(&wanted)
                    );
                    self.exec(&format!("renaming index {} to {wanted}", t.name), &sql)
                        .await?;
                    ReapplyAction::Renamed {
                        from: t.name.clone(),
                    }
                }
                // Recorded when their constraint is added / they are built.
                Match::Attach | Match::Build => continue,
            };
            items.push((
                position,
                ReappliedItem {
                    live_name: li.name.clone(),
                    temp_name: wanted,
                    action,
                },
            ));
        }
        Ok(())
    }

    /// Builds the missing indexes, up to one per lane at a time. Returns what was built and
    /// whether every build ran (false: the deadline passed first). After a failure no new
    /// build starts; those running finish (they commit on their own, a rerun keeps them) and
    /// the first error is returned.
    async fn build_indexes(
        &self,
        plan: &Plan<'_>,
        dropped: &[String],
        lanes: &[&Client],
        deadline: Option<Instant>,
    ) -> (StepResult<Vec<(usize, ReappliedItem)>>, bool) {
        let shared = BuildQueue {
            queue: Mutex::new(plan.builds.iter().collect()),
            built: Mutex::default(),
            failure: Mutex::default(),
            stop: AtomicBool::new(false),
            dropped,
            deadline,
        };
        futures::future::join_all(lanes.iter().map(|client| self.build_lane(client, &shared)))
            .await;
        let all_started = guard(&shared.queue).is_empty();
        let built = std::mem::take(&mut *guard(&shared.built));
        let failure = guard(&shared.failure).take();
        match failure {
            Some(e) => (Err(e), false),
            None if self.cancel.is_cancelled() && !all_started => (
                Err(cancelled(&format!(
                    "building indexes on {}",
                    self.temp_table
                ))),
                false,
            ),
            None => (Ok(built), all_started),
        }
    }

    /// One session's share of the builds: takes the next build until none is left, the
    /// deadline passed, the job was cancelled or a build failed.
    async fn build_lane(&self, client: &Client, shared: &BuildQueue<'_, '_>) {
        loop {
            if shared.stop.load(Ordering::Relaxed) || self.cancel.is_cancelled() {
                return;
            }
            if shared.deadline.is_some_and(|d| Instant::now() >= d) {
                return;
            }
            let Some(build) = guard(&shared.queue).pop_front() else {
                return;
            };
            match self.build_one(client, build).await {
                Ok(()) => {
                    let action = ReapplyAction::built(shared.dropped.contains(&build.name));
                    guard(&shared.built).push((
                        build.position,
                        ReappliedItem {
                            live_name: build.live.name.clone(),
                            temp_name: build.name.clone(),
                            action,
                        },
                    ));
                }
                Err(e) => {
                    shared.stop.store(true, Ordering::Relaxed);
                    guard(&shared.failure).get_or_insert(e);
                    return;
                }
            }
        }
    }

    /// One index, under its temp name, in its own transaction (a build killed midway leaves
    /// nothing behind). An index backing a constraint is built as a unique index; the
    /// constraint is attached later.
    async fn build_one(&self, client: &Client, build: &Build<'_>) -> StepResult<()> {
        let (live, name) = (build.live, &build.name);
        ensure_name_free(client, name, self.temp_table).await?;
        let sql = format!(
            "CREATE {}INDEX {} ON {} USING {}",
            if live.unique || index_constraint(live).is_some() {
                "UNIQUE "
            } else {
                ""
            },
            quote_ident(name),
            self.temp_sql,
            live.body
        );
        let what = format!(
            "building {name} on {} (like {})",
            self.temp_table, live.name
        );
        run_statement(client, &what, &sql, self.progress, self.cancel).await?;
        Ok(())
    }

    /// Adds the primary-key and unique constraints to the unique indexes built for them.
    async fn attach_constraints(
        &self,
        plan: &Plan<'_>,
        items: &mut Vec<(usize, ReappliedItem)>,
    ) -> StepResult<()> {
        for (position, (li, found)) in plan.live_indexes.iter().zip(&plan.matches).enumerate() {
            if !matches!(found, Match::Attach | Match::Build) {
                continue;
            }
            let Some(kind) = index_constraint(li) else {
                continue;
            };
            let name = temp_name(&li.name);
            let deferral = match (li.deferrable, li.deferred) {
                (true, true) => " DEFERRABLE INITIALLY DEFERRED",
                (true, false) => " DEFERRABLE",
                _ => "",
            };
            let name_sql = quote_ident(&name);
            let sql = format!(
                "ALTER TABLE {} ADD CONSTRAINT {name_sql} {kind} USING INDEX {name_sql}{deferral}",
                self.temp_sql
            );
            self.exec(
                &format!(
                    "adding {kind} {name} to {} (like {})",
                    self.temp_table, li.name
                ),
                &sql,
            )
            .await?;
            if matches!(found, Match::Attach) {
                items.push((
                    position,
                    ReappliedItem {
                        live_name: li.name.clone(),
                        temp_name: name,
                        action: ReapplyAction::Attached,
                    },
                ));
            }
        }
        Ok(())
    }

    /// Adds the live table's check and foreign-key constraints under their own names,
    /// replacing any with another definition.
    async fn add_constraints(&self, plan: &Plan<'_>, report: &mut ReapplyReport) -> StepResult<()> {
        let temp_table = self.temp_table;
        for (lc, add) in &plan.constraints {
            let action = match add {
                None => ReapplyAction::Present,
                Some(replace) => {
                    if *replace {
                        let what =
                            format!("dropping outdated constraint {} on {temp_table}", lc.name);
                        self.drop_constraint(&lc.name, &what).await?;
                    }
                    let sql = format!(
                        "ALTER TABLE {} ADD CONSTRAINT {} {}",
                        self.temp_sql,
                        quote_ident(&lc.name),
                        lc.definition
                    );
                    self.exec(
                        &format!("adding constraint {} to {temp_table}", lc.name),
                        &sql,
                    )
                    .await?;
                    ReapplyAction::built(*replace)
                }
            };
            report.constraints.push(ReappliedItem {
                live_name: lc.name.clone(),
                temp_name: lc.name.clone(),
                action,
            });
        }
        Ok(())
    }

    /// Drops the temp table's constraints the live table does not have.
    async fn drop_extra_constraints(
        &self,
        plan: &Plan<'_>,
        report: &mut ReapplyReport,
    ) -> StepResult<()> {
        for tc in &plan.extra_constraints {
            let what = format!(
                "dropping constraint {} on {}, which {} does not have",
                tc.name, self.temp_table, self.live_table
            );
            self.drop_constraint(&tc.name, &what).await?;
            report.dropped.push(tc.name.clone());
        }
        Ok(())
    }
}

fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data behind these locks; never held across an await.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Index builds running on `table` in other sessions (visible to the same role).
async fn index_builds_in_progress(client: &Client, table: &str) -> Result<i64, StepError> {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_progress_create_index
              WHERE relid = to_regclass($1) AND pid <> pg_backend_pid()",
            &[&quote_ident(table)],
        )
        .await
        .map(|row| row.get(0))
        .with_context(|| format!("checking for index builds on {table}"))
}

/// A temp name already used by a relation elsewhere (not on the temp table) is a clash an
/// operator must resolve; report it instead of failing inside CREATE INDEX.
async fn ensure_name_free(client: &Client, name: &str, temp_table: &str) -> Result<(), StepError> {
    let row = client
        .query_opt(
            "SELECT c.relkind::text, coalesce(t.relname::text, '')
               FROM pg_class c
               LEFT JOIN pg_index x ON x.indexrelid = c.oid
               LEFT JOIN pg_class t ON t.oid = x.indrelid
              WHERE c.oid = to_regclass($1)",
            &[&quote_ident(name)],
        )
        .await
        .with_context(|| format!("looking up relation {name}"))?;
    match row {
        None => Ok(()),
        Some(row) => {
            let owner: String = row.get(1);
            Err(StepError::invalid_state(format!(
                "cannot build {name} on {temp_table}: a relation of that name already exists{}",
                if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (an index on {owner})")
                }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn temp_names_fit_and_are_deterministic() {
        assert_eq!(temp_name("image_pkey"), "image_pkey_tmp");
        let long_a = format!("{}a", "x".repeat(62));
        let long_b = format!("{}b", "x".repeat(62));
        assert!(temp_name(&long_a).len() <= 63);
        assert_ne!(temp_name(&long_a), temp_name(&long_b));
        assert_eq!(temp_name(&long_a), temp_name(&long_a));
    }

    proptest! {
        #[test]
        fn temp_names_never_exceed_the_identifier_limit(name in "\\PC{1,63}") {
            prop_assume!(name.len() <= 63);
            let t = temp_name(&name);
            prop_assert!(t.len() <= 63);
            prop_assert!(t.ends_with("_tmp"));
            prop_assert_ne!(t, name);
        }
    }
}
