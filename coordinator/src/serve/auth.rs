//! Who is calling: API tokens from the auth file, or a user named by a trusted proxy header;
//! the [`Caller`] extractor every protected handler takes, and the tenant rules.
//!
//! # Decisions
//!
//! - **Secure by default.** [`Auth::new`] refuses a configuration with neither tokens nor a
//!   trusted header: `weir serve` then does not start.
//! - **Tokens are compared in constant time** (`subtle`), against every configured token, so
//!   the time taken says nothing about how much of a guess matched.
//! - **Three kinds of caller.** An `admin` token sees every tenant and may use the admin-only
//!   endpoints (`/dlq`, `/stats`) and reassign any task. A token bound to a `tenant` sees and
//!   starts only that tenant's instances and tasks: another tenant's instance is "not found"
//!   (404, never 403, so ids of other tenants cannot be probed). A token with neither is a
//!   user of a single-tenant deployment: it sees every instance but is not an admin.
//! - **Trusted headers** (`--trusted-user-header`, `--trusted-tenant-header`) are for a
//!   proxy that authenticates people and sets them; such callers are never admins. When a
//!   tenant header is configured and a request lacks it, the request is refused (401)
//!   rather than treated as unbound: a proxy misconfiguration must not widen access. A
//!   bearer token, when sent, wins over the headers.
//! - **`?access_token=`** is accepted only by the event stream ([`StreamCaller`]), since a
//!   browser's EventSource cannot set headers; everywhere else a token in a URL (which ends
//!   up in logs) is ignored.

use std::path::Path;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderName};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::problem::Problem;
use super::AppState;

/// The auth file: `tokens: [{ token, user, tenant?, admin? }]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// The accepted tokens.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// One accepted token and who it stands for.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The secret the client sends as `Authorization: Bearer <token>`.
    pub token: String,
    /// The user it authenticates (who starts instances and completes tasks).
    pub user: String,
    /// The tenant it is bound to; none for an admin or a single-tenant deployment.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Whether it may see every tenant and use the admin-only endpoints.
    #[serde(default)]
    pub admin: bool,
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("TokenEntry")
            .field("user", &self.user)
            .field("tenant", &self.tenant)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl AuthFile {
    /// Reads and checks an auth file (YAML or JSON).
    pub fn load(path: &Path) -> Result<AuthFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("auth file {}: cannot read it: {e}", path.display()))?;
        AuthFile::parse(&text).map_err(|e| format!("auth file {}: {e}", path.display()))
    }

    /// Parses and checks auth file text.
    pub fn parse(text: &str) -> Result<AuthFile, String> {
        let file: AuthFile = serde_saphyr::from_str(text).map_err(|e| {
            format!(
                "{e} (write it as `tokens: [{{ token: \"...\", user: \"alice@example.com\", \
                 tenant: \"acme\" }}]`)"
            )
        })?;
        for (i, t) in file.tokens.iter().enumerate() {
            if t.token.trim().is_empty() {
                return Err(format!("tokens[{i}]: the token is empty"));
            }
            if t.user.trim().is_empty() {
                return Err(format!("tokens[{i}]: the user is empty"));
            }
            if t.tenant.as_deref().is_some_and(|x| x.trim().is_empty()) {
                return Err(format!(
                    "tokens[{i}]: the tenant is empty (leave it out instead)"
                ));
            }
            if t.admin && t.tenant.is_some() {
                return Err(format!(
                    "tokens[{i}] ({}): an admin token sees every tenant; remove `tenant` or `admin`",
                    t.user
                ));
            }
            if file.tokens[..i].iter().any(|o| o.token == t.token) {
                return Err(format!(
                    "tokens[{i}] ({}): the same token is listed twice",
                    t.user
                ));
            }
        }
        Ok(file)
    }
}

/// How callers authenticate.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens: Vec<TokenEntry>,
    user_header: Option<HeaderName>,
    tenant_header: Option<HeaderName>,
}

impl Auth {
    /// The accepted tokens and trusted headers; refuses a configuration that lets nobody
    /// in or everybody in.
    pub fn new(
        tokens: Vec<TokenEntry>,
        user_header: Option<&str>,
        tenant_header: Option<&str>,
    ) -> Result<Auth, String> {
        let parse = |flag: &str, name: &str| {
            HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| format!("{flag} {name:?} is not a valid header name"))
        };
        let user_header = user_header
            .map(|h| parse("--trusted-user-header", h))
            .transpose()?;
        let tenant_header = tenant_header
            .map(|h| parse("--trusted-tenant-header", h))
            .transpose()?;
        if tenant_header.is_some() && user_header.is_none() {
            return Err(
                "--trusted-tenant-header needs --trusted-user-header (the proxy names the user)"
                    .into(),
            );
        }
        if tokens.is_empty() && user_header.is_none() {
            return Err(
                "no way to authenticate callers: give --auth-file FILE (or WEIR_AUTH_FILE) with \
                 tokens, or --trusted-user-header NAME behind a proxy that sets it; weir serve \
                 never runs open"
                    .into(),
            );
        }
        Ok(Auth {
            tokens,
            user_header,
            tenant_header,
        })
    }

    /// The caller a bearer token stands for, compared in constant time with every token.
    fn by_token(&self, token: &str) -> Option<Caller> {
        let mut found: Option<&TokenEntry> = None;
        for entry in &self.tokens {
            if bool::from(entry.token.as_bytes().ct_eq(token.as_bytes())) {
                found = Some(entry);
            }
        }
        found.map(|e| Caller {
            user: e.user.clone(),
            tenant: e.tenant.clone(),
            admin: e.admin,
        })
    }

    /// Authenticates a request; `query_token` is `?access_token=` where it is accepted.
    fn authenticate(&self, parts: &Parts, query_token: Option<&str>) -> Result<Caller, Problem> {
        let bearer = match parts.headers.get(header::AUTHORIZATION) {
            Some(value) => {
                let text = value.to_str().unwrap_or_default();
                match text.split_once(' ') {
                    Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                        Some(token.trim())
                    }
                    _ => {
                        return Err(Problem::unauthorized(
                            "the Authorization header must be `Bearer <token>`",
                        ))
                    }
                }
            }
            None => query_token,
        };
        if let Some(token) = bearer {
            return self
                .by_token(token)
                .ok_or_else(|| Problem::unauthorized("unknown token: check the auth file"));
        }
        if let Some(user_header) = &self.user_header {
            let read = |name: &HeaderName| {
                parts
                    .headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            if let Some(user) = read(user_header) {
                let tenant = match &self.tenant_header {
                    Some(h) => Some(read(h).ok_or_else(|| {
                        Problem::unauthorized(format!("the proxy did not set the {h} header"))
                    })?),
                    None => None,
                };
                return Ok(Caller {
                    user,
                    tenant,
                    admin: false,
                });
            }
        }
        Err(Problem::unauthorized(
            "authenticate with the header `Authorization: Bearer <token>`",
        ))
    }
}

/// The authenticated caller (`GET /api/v1/me`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Caller {
    /// The user.
    pub user: String,
    /// The tenant the caller is bound to, if any.
    pub tenant: Option<String>,
    /// Whether the caller sees every tenant and may use admin-only endpoints.
    pub admin: bool,
}

impl Caller {
    /// Whether the caller may see an instance or task of `tenant`.
    pub fn sees(&self, tenant: Option<&str>) -> bool {
        match &self.tenant {
            None => true,
            Some(own) => tenant == Some(own.as_str()),
        }
    }

    /// A 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.admin {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "{} is not an admin: this endpoint needs an admin token",
                self.user
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        state.auth.authenticate(parts, None)
    }
}

/// A caller of the event stream, which may also send its token as `?access_token=`.
#[derive(Debug, Clone)]
pub struct StreamCaller(pub Caller);

impl FromRequestParts<AppState> for StreamCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == "access_token")
                .map(|(_, v)| percent_decode(v))
        });
        state
            .auth
            .authenticate(parts, token.as_deref())
            .map(StreamCaller)
    }
}

/// Decodes `%XX` escapes and `+` of a query value (tokens are usually plain ASCII).
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_file_parses_and_is_checked() {
        let f = AuthFile::parse(
            "tokens:\n  - { token: a, user: ops, admin: true }\n  - { token: b, user: al, tenant: acme }\n",
        )
        .unwrap();
        assert_eq!(f.tokens.len(), 2);
        assert!(
            AuthFile::parse("tokens: [{ token: a, user: x, tenant: t, admin: true }]").is_err()
        );
        assert!(AuthFile::parse("tokens: [{ token: a, user: x }, { token: a, user: y }]").is_err());
        assert!(AuthFile::parse("tokens: [{ token: '', user: x }]").is_err());
        assert!(AuthFile::parse("tokens: [{ token: a, user: x, role: y }]").is_err());
        assert!(!format!("{:?}", f.tokens[0]).contains("token: \"a\""));
    }

    #[test]
    fn nobody_configured_refuses_to_start() {
        assert!(Auth::new(Vec::new(), None, None).is_err());
        assert!(Auth::new(Vec::new(), None, Some("X-Tenant")).is_err());
        assert!(Auth::new(Vec::new(), Some("X-User"), None).is_ok());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Bb+c%zz%4"), "a+b c%zz%4");
    }
}
