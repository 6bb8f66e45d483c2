//! Join tokens kept in etcd, so that every controller's join API accepts
//! what `plinth token create` made on any of them.
//!
//! Each token is one key, `/plinth/tokens/<id>`, holding its role, the
//! sha256 of its secret, and when it was made and expires. The secret itself
//! is printed once, by `create`, and stored nowhere. Revoking deletes the
//! key: a revoked token and one that never existed are refused alike.

use constant_time_eq::constant_time_eq;
use time::OffsetDateTime;

use super::etcd_client::{Etcd, EtcdError};
use crate::join::token::{Credential, TokenId};
use crate::sha256::Sha256;

const PREFIX: &str = "/plinth/tokens/";

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Join as a controller: receive the cluster CAs and become an etcd member.
    Controller,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
        }
    }
}

/// A token as stored, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredToken {
    pub id: TokenId,
    pub role: Role,
    /// Never shown: `list` prints the rest.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_sha256: Option<Sha256>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    /// `None`: never expires (`--ttl 0`).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires: Option<OffsetDateTime>,
}

impl StoredToken {
    pub fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|expires| expires <= now)
    }

    /// The same token without the hash of its secret, for listing.
    pub fn public(&self) -> Self {
        Self {
            secret_sha256: None,
            ..self.clone()
        }
    }
}

/// Why a presented credential was not accepted. The join API answers 401
/// for every one of them alike; only the server's log tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    WrongSecret,
    Expired,
    WrongRole,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown or revoked token",
            Refusal::WrongSecret => "wrong secret",
            Refusal::Expired => "expired token",
            Refusal::WrongRole => "token of another role",
        }
    }
}

/// The token store of one cluster.
#[derive(Clone)]
pub struct TokenStore {
    etcd: Etcd,
}

impl TokenStore {
    pub fn new(etcd: Etcd) -> Self {
        Self { etcd }
    }

    /// Make a token for `role` valid for `ttl` (none: forever) and store it.
    pub async fn create(
        &self,
        role: Role,
        ttl: Option<time::Duration>,
        now: OffsetDateTime,
    ) -> Result<(Credential, StoredToken), EtcdError> {
        let credential = Credential::generate();
        let stored = StoredToken {
            id: credential.id().clone(),
            role,
            secret_sha256: Some(credential.secret_sha256()),
            created: now,
            expires: ttl.map(|ttl| now + ttl),
        };
        let value = serde_json::to_vec(&stored).expect("a token serialises");
        self.etcd.put(&key(&stored.id), value).await?;
        Ok((credential, stored))
    }

    /// Every token, oldest first, without secrets' hashes.
    pub async fn list(&self) -> Result<Vec<StoredToken>, EtcdError> {
        let mut tokens = Vec::new();
        for (key, value) in self.etcd.list(PREFIX).await? {
            let token: StoredToken = serde_json::from_slice(&value)
                .map_err(|e| self.etcd.bad_value(&key, e.to_string()))?;
            tokens.push(token.public());
        }
        tokens.sort_by_key(|t| t.created);
        Ok(tokens)
    }

    /// Delete a token; `false` when there was none with that id.
    pub async fn revoke(&self, id: &TokenId) -> Result<bool, EtcdError> {
        self.etcd.delete(&key(id)).await
    }

    /// Check a presented credential for `role`, comparing the secret's hash
    /// in constant time.
    pub async fn verify(
        &self,
        credential: &Credential,
        role: Role,
        now: OffsetDateTime,
    ) -> Result<Result<StoredToken, Refusal>, EtcdError> {
        let key = key(credential.id());
        let Some(value) = self.etcd.get(&key).await? else {
            return Ok(Err(Refusal::Unknown));
        };
        let stored: StoredToken =
            serde_json::from_slice(&value).map_err(|e| self.etcd.bad_value(&key, e.to_string()))?;
        let presented = credential.secret_sha256();
        Ok(
            if !stored
                .secret_sha256
                .is_some_and(|stored| constant_time_eq(presented.as_bytes(), stored.as_bytes()))
            {
                Err(Refusal::WrongSecret)
            } else if stored.expired(now) {
                Err(Refusal::Expired)
            } else if stored.role != role {
                Err(Refusal::WrongRole)
            } else {
                Ok(stored)
            },
        )
    }
}

fn key(id: &TokenId) -> String {
    format!("{PREFIX}{id}")
}
