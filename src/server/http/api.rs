//! The admin REST API (design.md, HTTP API).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};

use super::error::{ApiError, JsonBody, path_param};
use super::views::{
    AgentDetail, AgentView, BlockedView, ClientView, RolloutView, RolloutsView, SignatureDetail, SignatureVersionView,
    StatsView, VersionsView,
};
use super::{AppState, SessionLimits};
use crate::protocol::{AgentId, Channel, ClientId, ErrorCode, Platform, SiteId, Version};
use crate::server::core::{
    ChannelTarget, Core, CoreError, ManualUpdate, Promotion, Rollback, SERVER_AGENT_ID, SignatureFilter,
};
use crate::server::store::{ClientRow, RolloutRow, SignatureId, SignatureRow, SiteRow};

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs a core operation that touches the downloads folder off the async
/// threads (in a simulation, a blocking task also holds the paused clock).
async fn blocking<T: Send + 'static>(
    state: AppState,
    op: impl FnOnce(&mut Core) -> Result<T, CoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || op(&mut state.core()))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::from)
}

/// `GET /api/agents`: the server's pseudo-agent (id 0, `pseudo: true`),
/// then every agent row.
pub async fn list_agents(State(state): State<AppState>) -> ApiResult<Vec<AgentView>> {
    let core = state.core();
    let rows = std::iter::once(core.server_agent()).chain(core.agents());
    Ok(Json(rows.map(|a| AgentView::new(&core, a)).collect()))
}

fn agent_view(core: &Core, id: AgentId) -> Result<AgentView, ApiError> {
    let row = core
        .agent(id)
        .ok_or_else(|| ApiError::not_found(format!("agent {id} not found")))?;
    Ok(AgentView::new(core, row))
}

/// `GET /api/agents/{id}`
pub async fn get_agent(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<AgentDetail> {
    let id: AgentId = path_param("agent id", &id)?;
    let mut core = state.core();
    if id == SERVER_AGENT_ID {
        let agent = AgentView::new(&core, core.server_agent());
        return Ok(Json(AgentDetail {
            agent,
            updates: Vec::new(),
            site_moves: Vec::new(),
        }));
    }
    let agent = agent_view(&core, id)?;
    let updates = core.updates_of(id)?;
    let site_moves = core.site_moves_of(id)?;
    Ok(Json(AgentDetail {
        agent,
        updates,
        site_moves,
    }))
}

/// Body of `POST /api/agents/{id}/update`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// The version to send; the agent's channel's latest when absent.
    version: Option<Version>,
}

/// `POST /api/agents/{id}/update` (U5)
pub async fn update_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateRequest>,
) -> Result<(StatusCode, Json<ManualUpdate>), ApiError> {
    let id: AgentId = path_param("agent id", &id)?;
    let done = state.core().manual_update(id, body.version)?;
    Ok((StatusCode::ACCEPTED, Json(done)))
}

/// Body of the three `PUT …/channel` routes: `channel` must be present;
/// `null` clears it (inherit).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRequest {
    #[serde(default, deserialize_with = "present")]
    channel: Option<Option<Channel>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Channel>>, D::Error> {
    Option::<Channel>::deserialize(d).map(Some)
}

fn set_channel(state: &AppState, target: ChannelTarget, body: ChannelRequest) -> Result<(), ApiError> {
    let channel = body.channel.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidBody,
            "missing field `channel` (\"beta\", \"stable\" or null)",
        )
    })?;
    Ok(state.core().set_channel(target, channel)?)
}

/// `PUT /api/agents/{id}/channel`
pub async fn agent_channel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChannelRequest>,
) -> ApiResult<AgentView> {
    let id: AgentId = path_param("agent id", &id)?;
    set_channel(&state, ChannelTarget::Agent(id), body)?;
    Ok(Json(agent_view(&state.core(), id)?))
}

/// `PUT /api/sites/{id}/channel`
pub async fn site_channel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChannelRequest>,
) -> ApiResult<SiteRow> {
    let id: SiteId = path_param("site id", &id)?;
    set_channel(&state, ChannelTarget::Site(id), body)?;
    let core = state.core();
    Ok(Json(
        core.site(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("site {id} not found")))?,
    ))
}

/// `PUT /api/clients/{id}/channel`
pub async fn client_channel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChannelRequest>,
) -> ApiResult<ClientRow> {
    let id: ClientId = path_param("client id", &id)?;
    set_channel(&state, ChannelTarget::Client(id), body)?;
    let core = state.core();
    let row = core.clients().find(|c| c.id == id).cloned();
    Ok(Json(row.ok_or_else(|| {
        ApiError::not_found(format!("client {id} not found"))
    })?))
}

/// `GET /api/clients`
pub async fn list_clients(State(state): State<AppState>) -> ApiResult<Vec<ClientView>> {
    let core = state.core();
    let views = core
        .clients()
        .map(|c| ClientView {
            id: c.id,
            name: c.name.clone(),
            channel: c.channel,
            created_at: c.created_at,
            sites: core.sites().filter(|s| s.client_id == c.id).cloned().collect(),
        })
        .collect();
    Ok(Json(views))
}

/// Body of `POST /api/clients` and `POST /api/clients/{id}/sites`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNamed {
    name: String,
    #[serde(default)]
    channel: Option<Channel>,
}

/// `POST /api/clients` → `{id, …}`
pub async fn create_client(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewNamed>,
) -> Result<(StatusCode, Json<ClientRow>), ApiError> {
    let row = state.core().create_client(&body.name, body.channel)?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// `POST /api/clients/{id}/sites` → `{id, site_key, …}`
pub async fn create_site(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewNamed>,
) -> Result<(StatusCode, Json<SiteRow>), ApiError> {
    let id: ClientId = path_param("client id", &id)?;
    let row = state.core().create_site(id, &body.name, body.channel)?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// `GET /api/updates/versions`: the scan, with skipped files and reasons.
pub async fn versions(State(state): State<AppState>) -> ApiResult<VersionsView> {
    Ok(Json(VersionsView::new(&state.core())))
}

/// `POST /api/updates/rescan`
pub async fn rescan(State(state): State<AppState>) -> ApiResult<VersionsView> {
    super::rescan_off_lock(&state, false).await.map_err(|e| {
        state.self_log().error(&format!("rescan failed: {e}"));
        ApiError::new(ErrorCode::Internal, "rescan failed; logged on the server")
    })?;
    Ok(Json(VersionsView::new(&state.core())))
}

/// `GET /api/updates/rollouts`
pub async fn rollouts(State(state): State<AppState>) -> ApiResult<RolloutsView> {
    let mut core = state.core();
    let rows: Vec<RolloutRow> = core.rollouts().cloned().collect();
    let mut rollouts = Vec::with_capacity(rows.len());
    for row in rows {
        let gate = core.gate_check(row.version, Some(&row.platform))?;
        rollouts.push(RolloutView { row, gate });
    }
    Ok(Json(RolloutsView {
        gate: core.config().gate,
        rollouts,
        blocked: core
            .blocked()
            .iter()
            .map(|(&version, &blocked_at)| BlockedView { version, blocked_at })
            .collect(),
    }))
}

/// Body of `POST /api/updates/rollouts/{version}/promote`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    os: Option<String>,
    arch: Option<String>,
    #[serde(default)]
    force: bool,
}

/// `POST /api/updates/rollouts/{version}/promote` (U9)
pub async fn promote(
    State(state): State<AppState>,
    Path(version): Path<String>,
    JsonBody(body): JsonBody<PromoteRequest>,
) -> ApiResult<Promotion> {
    let version: Version = path_param("version", &version)?;
    let scope = match (body.os, body.arch) {
        (None, None) => None,
        (Some(os), Some(arch)) => {
            Some(Platform::new(&os, &arch).map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.to_string()))?)
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                "give both `os` and `arch`, or neither",
            ));
        }
    };
    let force = body.force;
    Ok(Json(
        blocking(state, move |core| core.promote(version, scope.as_ref(), force)).await?,
    ))
}

/// `POST /api/updates/rollouts/{version}/rollback` (U10)
pub async fn rollback(State(state): State<AppState>, Path(version): Path<String>) -> ApiResult<Rollback> {
    let version: Version = path_param("version", &version)?;
    Ok(Json(blocking(state, move |core| core.rollback(version)).await?))
}

/// `GET /api/stats`
pub async fn stats(
    State(state): State<AppState>,
    limits: Option<axum::Extension<SessionLimits>>,
) -> ApiResult<StatsView> {
    let connections = state.gauges().view(SessionLimits::of(limits).max_sessions);
    let core = state.core();
    Ok(Json(StatsView {
        now: core.now(),
        agent_rows: core.agents().count(),
        online: core.agents().filter(|a| core.is_online(a.id)).count(),
        pending_updates: core.pending().count(),
        counters: core.counters(),
        open_files: rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft),
        connections,
        push_overflows: core.push_overflows(),
        log_events_dropped: core.log_events_dropped() + state.self_log().dropped(),
    }))
}

/// The query of `GET /api/logs/signatures`: every filter is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureQuery {
    version: Option<String>,
    level: Option<String>,
    since: Option<String>,
    new_in: Option<String>,
}

/// Parses a query parameter, answering 400 `invalid_query` with what was
/// expected.
fn query_param<T: std::str::FromStr>(name: &str, raw: Option<String>) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    raw.map(|raw| {
        raw.parse()
            .map_err(|e: T::Err| ApiError::new(ErrorCode::InvalidQuery, format!("query parameter `{name}`: {e}")))
    })
    .transpose()
}

impl SignatureQuery {
    /// The filter it asks for.
    fn filter(self) -> Result<SignatureFilter, ApiError> {
        if self.level.as_deref().is_some_and(|l| l.trim().is_empty()) {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "query parameter `level`: empty (give a level such as error, or leave it out)",
            ));
        }
        Ok(SignatureFilter {
            version: query_param("version", self.version)?,
            level: self.level,
            since: query_param("since", self.since)?,
            new_in: query_param("new_in", self.new_in)?,
        })
    }
}

/// `GET /api/logs/signatures?version=&level=&since=&new_in=` (U13)
pub async fn log_signatures(
    State(state): State<AppState>,
    query: Result<Query<SignatureQuery>, QueryRejection>,
) -> ApiResult<Vec<SignatureRow>> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
    let filter = query.filter()?;
    Ok(Json(state.core().log_signatures(&filter)?))
}

/// `GET /api/logs/signatures/{id}` (U13): the signature and its versions.
pub async fn log_signature(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<SignatureDetail> {
    let id: SignatureId = path_param("signature id", &id)?;
    let mut core = state.core();
    let signature = core
        .log_signature(id)
        .ok_or_else(|| ApiError::not_found(format!("log signature {id} not found")))?;
    let versions = core
        .signature_versions(id)?
        .into_iter()
        .map(|row| {
            let hours = core.machine_hours_on(row.version);
            SignatureVersionView::new(row, hours)
        })
        .collect();
    Ok(Json(SignatureDetail { signature, versions }))
}
