//! The joiner's side of the join API: fetch the CA bundle, ask to be added
//! as an etcd member. Every request goes over TLS pinned to the token's CA
//! ([`super::pinned_tls`]); transient failures (no answer, 503 while etcd
//! settles, 429, a gateway's 502 or 504) are retried with capped jittered
//! backoff until the join deadline; final ones (401, a certificate the
//! pinned verification refuses, any other refusal, a 500) end the join at
//! once with the server's message.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::Instant;

use super::bundle::{BundleError, CaBundle, MAX_BUNDLE_BYTES};
use super::pinned_tls::{PinRefusal, PinnedCaVerifier, Refusals};
use super::token::JoinToken;
use super::wire::{ErrorAnswer, MemberAnswer, MemberRequest};
use crate::error_class::ErrorClass;
use crate::retry::Backoff;
use crate::terminal;

/// One request may take this long, connection and answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Retry delays: small, because etcd accepts the next member at a moment
/// nobody can predict (FACTS.md), and several joiners are racing for it.
const RETRY_INITIAL: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_millis(400);
/// Longest server message repeated in an error.
const MAX_MESSAGE_CHARS: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum JoinApiError {
    #[error(
        "the join API at {api} refused the join token {id} (401): it is unknown, revoked or expired; create a new one with `plinth token create` on a controller"
    )]
    Unauthorized { api: String, id: String },
    #[error("the join API at {api} {refusal}")]
    Certificate { api: String, refusal: PinRefusal },
    #[error("the join API at {api} refused {what} ({status}): {message}")]
    Refused {
        api: String,
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("no controller answered at {api} within {waited_s} s ({what}): {last}")]
    Unreachable {
        api: String,
        what: &'static str,
        waited_s: u64,
        last: String,
    },
    #[error(
        "the join API at {api} answered {what} with something that is not an answer: {message}"
    )]
    BadAnswer {
        api: String,
        what: &'static str,
        message: String,
    },
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl JoinApiError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unauthorized { .. } | Self::Certificate { .. } => ErrorClass::Invalid,
            Self::Refused { status, .. } => refusal_class(*status),
            Self::Unreachable { .. } => ErrorClass::Unreachable,
            Self::BadAnswer { .. } => ErrorClass::Internal,
            Self::Bundle(error) => error.class(),
        }
    }
}

/// The class of a final refusal, from its status: the server's mapping
/// (PLAN.md decision 2) read backwards, so the joiner exits with the code
/// the failure has on the server.
fn refusal_class(status: u16) -> ErrorClass {
    match status {
        403 => ErrorClass::Denied,
        500..=599 => ErrorClass::Internal,
        _ => ErrorClass::Invalid,
    }
}

/// Statuses worth asking again: etcd settling (503), too many requests, a
/// gateway that could not reach the controller yet.
fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// One attempt's outcome: retry or stop.
enum Attempt<T> {
    Done(T),
    Retry(String),
    Fail(JoinApiError),
}

/// A client of one controller's join API.
pub struct JoinClient {
    http: reqwest::Client,
    token: JoinToken,
    refusals: Refusals,
}

impl JoinClient {
    pub fn new(token: &JoinToken) -> Self {
        let (tls, refusals) = PinnedCaVerifier::client_config(&token.ca_sha256);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("a rustls client config is accepted");
        Self {
            http,
            token: token.clone(),
            refusals,
        }
    }

    /// `GET /v1/ca`, retried until `deadline`.
    pub async fn fetch_ca_bundle(&self, deadline: Instant) -> Result<CaBundle, JoinApiError> {
        let url = format!("{}/v1/ca", self.token.api_url());
        let body = self
            .retrying("the CA bundle", deadline, || self.http.get(&url))
            .await?;
        Ok(CaBundle::from_answer(
            &self.token.api,
            &body,
            &self.token.ca_sha256,
        )?)
    }

    /// `POST /v1/etcd/members`, retried until `deadline`.
    pub async fn add_member(
        &self,
        request: &MemberRequest,
        deadline: Instant,
    ) -> Result<MemberAnswer, JoinApiError> {
        let url = format!("{}/v1/etcd/members", self.token.api_url());
        let body = self
            .retrying("the member add", deadline, || {
                self.http.post(&url).json(request)
            })
            .await?;
        serde_json::from_slice(&body).map_err(|e| JoinApiError::BadAnswer {
            api: self.token.api.clone(),
            what: "the member add",
            message: terminal::clipped(&e.to_string(), MAX_MESSAGE_CHARS),
        })
    }

    async fn retrying(
        &self,
        what: &'static str,
        deadline: Instant,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, JoinApiError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(RETRY_INITIAL, RETRY_CAP, deadline);
        loop {
            let last = match self.attempt(what, request()).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(reason) => reason,
            };
            tracing::debug!(api = %self.token.api, what, reason = %last, "retrying");
            if !backoff.wait().await {
                return Err(JoinApiError::Unreachable {
                    api: self.token.api.clone(),
                    what,
                    waited_s: started.elapsed().as_secs(),
                    last,
                });
            }
        }
    }

    async fn attempt(
        &self,
        what: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Attempt<Vec<u8>> {
        let api = &self.token.api;
        let response = match request
            .bearer_auth(self.token.credential.bearer())
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                return match self.refusals.take() {
                    Some(refusal) => Attempt::Fail(JoinApiError::Certificate {
                        api: api.clone(),
                        refusal,
                    }),
                    None => Attempt::Retry(terminal::error_line(&error)),
                };
            }
        };
        let status = response.status();
        let body = match read_bounded(response).await {
            Ok(body) => body,
            Err(reason) => return Attempt::Retry(reason),
        };
        if status.is_success() {
            return Attempt::Done(body);
        }
        let message = serde_json::from_slice::<ErrorAnswer>(&body)
            .map(|answer| terminal::clipped(&answer.error, MAX_MESSAGE_CHARS))
            .unwrap_or_else(|_| "(no message)".to_owned());
        match status {
            StatusCode::UNAUTHORIZED => Attempt::Fail(JoinApiError::Unauthorized {
                api: api.clone(),
                id: self.token.credential.id().to_string(),
            }),
            s if is_transient(s) => Attempt::Retry(format!("{s}: {message}")),
            s => Attempt::Fail(JoinApiError::Refused {
                api: api.clone(),
                what,
                status: s.as_u16(),
                message,
            }),
        }
    }
}

/// The body, at most [`MAX_BUNDLE_BYTES`].
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| terminal::error_line(&e))?
    {
        if body.len() + chunk.len() > MAX_BUNDLE_BYTES {
            return Err(format!(
                "the answer is larger than {MAX_BUNDLE_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
