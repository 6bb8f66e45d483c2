//! The join API: HTTPS with the `plinth-api` certificate.
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /livez` | none | 200 while the process serves |
//! | `GET /v1/ca` | bearer token | the cluster's CA bundle |
//! | `POST /v1/etcd/members` | bearer token | add the caller as an etcd learner |
//!
//! Anything else is 404. A missing, malformed, unknown, revoked, expired or
//! wrong token is 401 with no body, whatever the reason (the log says
//! which). Other refusals answer `{"error": "<one line>"}` with the status
//! of their error class (PLAN.md decision 2: invalid 400, denied 403,
//! busy or unreachable 503, a plugin failure or an internal error 500);
//! etcd's refusals answer 503 only when they are transient, 409 when etcd
//! refused the change for good and 422 when a value it holds cannot be read,
//! so that a joiner, which asks again on 503 alone, gives up at once with
//! the message. Limits: TLS 1.2+, 4 KiB request bodies, 5 s to send the
//! headers, 10 s per request, 64 connections at once.
//!
//! [`routes`] builds the router and [`serve`] serves any router, so that
//! more routes (issue 12's `/readyz`) are merged in by the caller.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::TimeoutLayer;

use super::etcd_client::{Etcd, EtcdError, Member};
use super::tokens::{Role, TokenStore};
use crate::config::valid_member_name;
use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::join::bundle::CaBundle;
use crate::join::token::Credential;
use crate::join::wire::{ErrorAnswer, MemberAnswer, MemberRequest, valid_peer_url};
use crate::journal::{Entry, JournalQueue, Verdict};
use crate::phase::Phase;
use crate::terminal;

const BODY_LIMIT: usize = 4 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 64;
/// Longest text of a caller's or etcd's repeated in an answer.
const MAX_ECHO_CHARS: usize = 200;

/// Who the journal says added a member.
const JOURNAL_NAME: &str = "builtin:join-api";

/// A certificate chain or key is a few KiB.
const MAX_PEM_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot read the join API's certificate {path}: {message}")]
    Certificate {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(
        "cannot listen on {address} for the join API: {source}; is another controller using it?"
    )]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

impl ApiError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Certificate { .. } => ErrorClass::Invalid,
            Self::Bind { .. } => ErrorClass::Busy,
        }
    }
}

/// What the join API's handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub tokens: TokenStore,
    /// The cluster's etcd when Plinth runs it; `None` with external etcd,
    /// where a joiner becomes no member.
    pub etcd: Option<Etcd>,
    pub bundle: Arc<CaBundle>,
    /// `--initial-cluster-token` of this cluster.
    pub cluster_token: String,
    /// Woken when a learner was added, so the promoter looks at once.
    pub learner_added: Arc<Notify>,
    /// Every member this API adds is journaled.
    pub journal: JournalQueue,
}

/// The join API's routes (and `/livez`), with their limits.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/v1/ca", get(ca_bundle))
        .route("/v1/etcd/members", post(add_member))
        .with_state(state)
        .merge(Router::new().route("/livez", get(|| async { "ok" })))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
}

/// The TLS side: the `plinth-api` leaf, then its CA, so that a joiner finds
/// the CA its token pins in the chain.
pub fn tls_acceptor(data_dir: &DataDirView) -> Result<TlsAcceptor, ApiError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    // Never through a link, never more than a PEM file can be.
    let read = |name: &str| {
        let rel = Path::new(DataDirView::PKI).join(name);
        let path = data_dir.path(&rel);
        match data_dir.read(&rel, MAX_PEM_BYTES) {
            Ok(Some(bytes)) => Ok((path, bytes)),
            Ok(None) => Err(ApiError::Certificate {
                path,
                message: "it does not exist".to_owned(),
            }),
            Err(error) => Err(ApiError::Certificate {
                path,
                message: terminal::error_line(&error),
            }),
        }
    };
    let read_certs = |name: &str| {
        let (path, pem) = read(name)?;
        CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::Certificate {
                path,
                message: e.to_string(),
            })
    };
    let mut chain = read_certs("plinth-api.crt")?;
    chain.extend(read_certs("ca.crt")?);
    let (key_path, key_pem) = read("plinth-api.key")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| ApiError::Certificate {
        path: key_path.clone(),
        message: e.to_string(),
    })?;
    let mut config =
        rustls::ServerConfig::builder_with_provider(crate::join::pinned_tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| ApiError::Certificate {
                path: key_path,
                message: e.to_string(),
            })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub async fn bind(address: SocketAddr) -> Result<TcpListener, ApiError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ApiError::Bind { address, source })
}

/// Serve `router` over TLS until `cancel`; then stop accepting, let the
/// requests in flight finish (at most the request timeout), and return.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: Router,
    cancel: CancellationToken,
) {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            () = cancel.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "join API: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A small answer leaves as two TLS records; with Nagle on, the
        // second waits for the client's delayed ACK (40 ms on Linux).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "join API: cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let router = router.clone();
        let cancel = cancel.clone();
        connections.spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "join API: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024);
            let connection = builder.serve_connection(
                TokioIo::new(tls),
                TowerToHyperService::new(router.into_service()),
            );
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = cancel.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT, connection).await;
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// An answer with a status and a one-line JSON error.
fn error_answer(status: StatusCode, message: String) -> Response {
    (status, Json(ErrorAnswer { error: message })).into_response()
}

fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::Invalid => StatusCode::BAD_REQUEST,
        ErrorClass::Denied => StatusCode::FORBIDDEN,
        ErrorClass::Busy | ErrorClass::Unreachable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::PluginFailed | ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn etcd_answer(error: &EtcdError) -> Response {
    let status = match error {
        EtcdError::Call {
            transient: true, ..
        } => StatusCode::SERVICE_UNAVAILABLE,
        EtcdError::Call {
            transient: false, ..
        } => StatusCode::CONFLICT,
        EtcdError::BadValue { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        EtcdError::Credentials { .. } => status_of(error.class()),
    };
    error_answer(status, error.to_string())
}

/// 401 with no detail.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
    )
        .into_response()
}

/// Check the bearer token; `Err` is the answer to send instead.
async fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<Credential, Response> {
    let credential = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|value| Credential::parse(value).ok());
    let Some(credential) = credential else {
        tracing::info!("join API: request without a well-formed bearer token refused");
        return Err(unauthorized());
    };
    match state
        .tokens
        .verify(&credential, Role::Controller, OffsetDateTime::now_utc())
        .await
    {
        Ok(Ok(_)) => Ok(credential),
        Ok(Err(refusal)) => {
            tracing::info!(token = %credential.id(), reason = refusal.as_str(), "join API: token refused");
            Err(unauthorized())
        }
        Err(error) => Err(etcd_answer(&error)),
    }
}

async fn ca_bundle(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let credential = match authorize(&state, &headers).await {
        Ok(credential) => credential,
        Err(answer) => return answer,
    };
    tracing::info!(token = %credential.id(), "join API: CA bundle handed out");
    Json(state.bundle.as_ref().clone()).into_response()
}

async fn add_member(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let credential = match authorize(&state, &headers).await {
        Ok(credential) => credential,
        Err(answer) => return answer,
    };
    let request: MemberRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return error_answer(
                StatusCode::BAD_REQUEST,
                format!(
                    "the body is not {{\"name\", \"peerURL\"}}: {}",
                    terminal::clipped(&error.to_string(), MAX_ECHO_CHARS)
                ),
            );
        }
    };
    if !valid_member_name(&request.name) {
        return error_answer(
            StatusCode::BAD_REQUEST,
            "`name` must be 1-63 letters, digits, `-`, `.` or `_`".to_owned(),
        );
    }
    if !valid_peer_url(&request.peer_url) {
        return error_answer(
            StatusCode::BAD_REQUEST,
            "`peerURL` must be https://<ip>:<port>".to_owned(),
        );
    }
    let Some(etcd) = &state.etcd else {
        return error_answer(
            StatusCode::CONFLICT,
            "this cluster's etcd is external: a joining controller adds no member".to_owned(),
        );
    };
    match add_learner(etcd, &request).await {
        Ok(Ok((member_id, members, existing))) => {
            tracing::info!(
                token = %credential.id(),
                member = %request.name,
                peer_url = %request.peer_url,
                id = %format_args!("{member_id:016x}"),
                existing,
                "join API: learner added"
            );
            state.learner_added.notify_one();
            if !existing {
                state.journal.record(
                    Entry::new(Phase::Serve, JOURNAL_NAME, Verdict::Event).detail(
                        serde_json::json!({
                            "event": "learner-added",
                            "member": request.name,
                            "peerURL": request.peer_url,
                            "memberId": format!("{member_id:016x}"),
                            "token": credential.id().as_str(),
                        }),
                    ),
                );
            }
            Json(MemberAnswer {
                member_id,
                initial_cluster: initial_cluster(&members, member_id, &request.name),
                cluster_token: state.cluster_token.clone(),
                existing,
            })
            .into_response()
        }
        Ok(Err(conflict)) => error_answer(StatusCode::CONFLICT, conflict),
        Err(error) => {
            tracing::debug!(member = %request.name, %error, "join API: member add not possible yet");
            etcd_answer(&error)
        }
    }
}

/// Add `request` as a learner, or find the member an earlier add made.
/// `Ok(Err(reason))` is a conflict: the name belongs to another member.
async fn add_learner(
    etcd: &Etcd,
    request: &MemberRequest,
) -> Result<Result<(u64, Vec<Member>, bool), String>, EtcdError> {
    let members = etcd.members().await?;
    if let Some(answer) = existing_member(&members, request) {
        return Ok(answer.map(|id| (id, members, true)));
    }
    match etcd.add_learner(&request.peer_url).await {
        Ok((id, members)) => Ok(Ok((id, members, false))),
        // A concurrent add of the same peer URL won the race.
        Err(error) if error.says("Peer URLs already exists") => {
            let members = etcd.members().await?;
            match existing_member(&members, request) {
                Some(answer) => Ok(answer.map(|id| (id, members, true))),
                None => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

/// The member `request` already is, if any, or a conflict.
///
/// Only a member that has never started is handed out again (a joiner
/// killed between the add and its record asks again). A member that has
/// run is not: a caller asking for it has no data (one with data does not
/// ask), and an etcd started empty under a voter's id has lost the log and
/// the votes raft counts on. etcd's rule is remove, then add.
fn existing_member(members: &[Member], request: &MemberRequest) -> Option<Result<u64, String>> {
    if let Some(member) = members
        .iter()
        .find(|m| m.peer_urls.contains(&request.peer_url))
    {
        let name = terminal::clipped(&member.name, MAX_ECHO_CHARS);
        return Some(if !member.started() {
            Ok(member.id)
        } else if member.name != request.name {
            Err(format!(
                "peer URL {} belongs to member `{name}`, not `{}`",
                request.peer_url, request.name
            ))
        } else {
            Err(format!(
                "member `{name}` at {} has already run: remove it first (`plinth etcd leave` on it, or `etcdctl member remove {:x}`), then join with an empty data dir",
                request.peer_url, member.id
            ))
        });
    }
    members
        .iter()
        .find(|m| m.name == request.name)
        .map(|member| {
            Err(format!(
                "member name `{}` is taken by the member at {}; give this controller another spec.storage.etcd.name",
                request.name,
                member.peer_urls.join(",")
            ))
        })
}

/// `--initial-cluster` for the member `id` named `name`.
pub fn initial_cluster(members: &[Member], id: u64, name: &str) -> String {
    let mut entries: Vec<String> = Vec::new();
    for member in members {
        let member_name = if member.id == id {
            name.to_owned()
        } else if member.started() {
            member.name.clone()
        } else {
            // A member added but not started has no name yet; etcd matches
            // initial-cluster entries by peer URL, so any unique name works.
            format!("unstarted-{:016x}", member.id)
        };
        for url in &member.peer_urls {
            entries.push(format!("{member_name}={url}"));
        }
    }
    entries.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, id: u64, peer_url: &str) -> Member {
        Member {
            name: name.to_owned(),
            id,
            peer_urls: vec![peer_url.to_owned()],
            client_urls: Vec::new(),
            learner: name.is_empty(),
        }
    }

    fn request(name: &str, peer_url: &str) -> MemberRequest {
        MemberRequest {
            name: name.to_owned(),
            peer_url: peer_url.to_owned(),
        }
    }

    #[test]
    fn the_api_certificate_is_never_read_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        std::fs::create_dir(&pki).unwrap();
        std::fs::write(dir.path().join("planted.crt"), "not ours").unwrap();
        std::os::unix::fs::symlink(dir.path().join("planted.crt"), pki.join("plinth-api.crt"))
            .unwrap();
        let Err(error) = tls_acceptor(&DataDirView::new(dir.path())) else {
            panic!("a linked certificate was read");
        };
        assert!(
            matches!(&error, ApiError::Certificate { path, .. } if path.ends_with("pki/plinth-api.crt")),
            "{error}"
        );
    }

    #[test]
    fn only_a_member_that_never_started_is_handed_out_again() {
        let url = "https://127.0.0.2:2380";
        let members = [
            member("c1", 1, "https://127.0.0.1:2380"),
            member("", 2, url),
        ];
        assert_eq!(existing_member(&members, &request("c2", url)), Some(Ok(2)));

        let members = [
            member("c1", 1, "https://127.0.0.1:2380"),
            member("c2", 2, url),
        ];
        let refused = existing_member(&members, &request("c2", url)).unwrap();
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("has already run")),
            "{refused:?}"
        );
        let refused = existing_member(&members, &request("c9", url)).unwrap();
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("belongs to member `c2`")),
            "{refused:?}"
        );
        assert_eq!(
            existing_member(&members, &request("c3", "https://127.0.0.3:2380")),
            None
        );
    }
}
