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
//! - **Only the proxy may set them.** The headers are read only from a peer (the TCP
//!   connection's address, never `X-Forwarded-For`) inside a `--trusted-proxy CIDR` range;
//!   from any other peer a request carrying them is refused (401). Without
//!   `--trusted-proxy`, the header flags are accepted only with a loopback `--listen`, and
//!   then only loopback peers are trusted (a proxy on the same host); a non-loopback
//!   `--listen` with the header flags and no `--trusted-proxy` does not start.
//! - **`?access_token=`** is accepted only by the event stream ([`StreamCaller`]), since a
//!   browser's EventSource cannot set headers; everywhere else a token in a URL (which ends
//!   up in logs) is ignored.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderName};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::problem::Problem;
use super::AppState;

/// The auth file: `tokens: [{ token, user, tenant?, admin?, groups? }]`.
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
    /// The groups the user is a member of (for human tasks with `candidate_groups`).
    #[serde(default)]
    pub groups: Vec<String>,
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

/// A range of addresses, `10.0.0.0/8` or `::1/128` (a bare address is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or `ADDR`.
    pub(super) fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let bad = |why: &str| {
            format!("--trusted-proxy {text:?}: {why} (write it like 10.0.0.0/8, 192.168.1.5 or fd00::/8)")
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad(&format!("the prefix length must be 0 to {max}")))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 peer counts as IPv4).
    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (net, ip, bits) = match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                (u128::from(u32::from(net)), u128::from(u32::from(ip)), 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => (u128::from(net), u128::from(ip), 128),
            _ => return false,
        };
        // A prefix of 0 matches everything (and a shift by the full width would overflow).
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (net >> shift) == (ip >> shift)
    }
}

/// How callers authenticate.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens: Vec<TokenEntry>,
    user_header: Option<HeaderName>,
    tenant_header: Option<HeaderName>,
    /// The header naming the user's groups (comma-separated), if trusted.
    groups_header: Option<HeaderName>,
    /// The peers whose trusted headers are read.
    proxies: Vec<Cidr>,
}

impl Auth {
    /// The accepted tokens and trusted headers, the proxies allowed to set those headers,
    /// and the address the server listens on; refuses a configuration that lets nobody in
    /// or everybody in (see the module doc).
    pub fn new(
        tokens: Vec<TokenEntry>,
        user_header: Option<&str>,
        tenant_header: Option<&str>,
        trusted_proxies: &[String],
        listen: SocketAddr,
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
        let mut proxies = trusted_proxies
            .iter()
            .flat_map(|p| p.split(','))
            .filter(|p| !p.trim().is_empty())
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if user_header.is_none() && !proxies.is_empty() {
            return Err(
                "--trusted-proxy only matters with --trusted-user-header (the header the proxy \
                 sets)"
                    .into(),
            );
        }
        if user_header.is_some() && proxies.is_empty() {
            if !listen.ip().is_loopback() {
                return Err(format!(
                    "--trusted-user-header with --listen {listen}: anyone who can reach that \
                     address could set the header and be any user; give --trusted-proxy CIDR \
                     (the proxy's address) or listen on a loopback address"
                ));
            }
            // Listening on loopback only: the proxy is on this host.
            proxies = vec![
                Cidr {
                    addr: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    prefix: 8,
                },
                Cidr {
                    addr: IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ];
        }
        Ok(Auth {
            tokens,
            user_header,
            tenant_header,
            groups_header: None,
            proxies,
        })
    }

    /// Also trusts `header` (set by the same proxy as the user header, and read only from a
    /// trusted proxy) as the user's groups, comma-separated. Refused without
    /// `--trusted-user-header`.
    pub fn with_groups_header(mut self, header: Option<&str>) -> Result<Auth, String> {
        let Some(name) = header else {
            return Ok(self);
        };
        if self.user_header.is_none() {
            return Err(
                "--trusted-groups-header needs --trusted-user-header (the proxy names the user)"
                    .into(),
            );
        }
        self.groups_header =
            Some(HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                format!("--trusted-groups-header {name:?} is not a valid header name")
            })?);
        Ok(self)
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
            groups: e.groups.clone(),
        })
    }

    /// Authenticates a request; `query_token` is `?access_token=` where it is accepted.
    fn authenticate(&self, parts: &Parts, query_token: Option<&str>) -> Result<Caller, Problem> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
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
                if !peer.is_some_and(|ip| self.proxies.iter().any(|c| c.contains(ip))) {
                    tracing::warn!(?peer, header = %user_header, "trusted header from a peer that is not a trusted proxy");
                    return Err(Problem::unauthorized(format!(
                        "the {user_header} header is only accepted from a trusted proxy \
                         (--trusted-proxy): authenticate with `Authorization: Bearer <token>`"
                    )));
                }
                let tenant = match &self.tenant_header {
                    Some(h) => Some(read(h).ok_or_else(|| {
                        Problem::unauthorized(format!("the proxy did not set the {h} header"))
                    })?),
                    None => None,
                };
                let groups = self
                    .groups_header
                    .as_ref()
                    .and_then(read)
                    .map(|list| {
                        list.split(',')
                            .map(str::trim)
                            .filter(|g| !g.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok(Caller {
                    user,
                    tenant,
                    admin: false,
                    groups,
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
    /// The groups the caller is a member of (for human tasks with `candidate_groups`).
    pub groups: Vec<String>,
}

impl Caller {
    /// The caller as the engine sees them on a task: user, admin, groups.
    pub fn actor(&self) -> weir::model::Actor {
        weir::model::Actor {
            user: self.user.clone(),
            admin: self.admin,
            groups: self.groups.clone(),
        }
    }

    /// Whether the caller may see an instance or task of `tenant`.
    pub fn sees(&self, tenant: Option<&str>) -> bool {
        match &self.tenant {
            None => true,
            Some(own) => tenant == Some(own.as_str()),
        }
    }

    /// The tenant the caller acts in (`action` says what it does, for the error, e.g.
    /// "start instances"): its own when it is tenant-bound (naming another is a 403 on the
    /// field `tenant`), else the one asked for (none: instances without a tenant), checked
    /// (a 400 on `tenant`).
    pub fn acting_tenant(
        &self,
        asked: Option<String>,
        action: &str,
    ) -> Result<Option<String>, Problem> {
        let tenant = match (&self.tenant, asked) {
            (Some(own), Some(asked)) if *own != asked => {
                return Err(Problem::forbidden(format!(
                    "{} may only {action} of tenant {own:?}, not {asked:?}",
                    self.user
                ))
                .with_field("tenant"))
            }
            (Some(own), _) => Some(own.clone()),
            (None, asked) => asked,
        };
        if let Some(t) = &tenant {
            weir::api::check_tenant(t).map_err(|m| Problem::invalid_field("tenant", m))?;
        }
        Ok(tenant)
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
pub(super) struct StreamCaller(pub Caller);

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

    fn local() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    #[test]
    fn nobody_configured_refuses_to_start() {
        assert!(Auth::new(Vec::new(), None, None, &[], local()).is_err());
        assert!(Auth::new(Vec::new(), None, Some("X-Tenant"), &[], local()).is_err());
        assert!(Auth::new(Vec::new(), Some("X-User"), None, &[], local()).is_ok());
    }

    #[test]
    fn trusted_headers_need_a_trusted_proxy_off_loopback() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let err = Auth::new(Vec::new(), Some("X-User"), None, &[], public).unwrap_err();
        assert!(err.contains("--trusted-proxy"), "{err}");
        let ok = Auth::new(
            Vec::new(),
            Some("X-User"),
            None,
            &["10.1.0.0/16,fd00::/8".into()],
            public,
        )
        .unwrap();
        assert_eq!(ok.proxies.len(), 2);
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::1/129"] {
            assert!(
                Auth::new(Vec::new(), Some("X-User"), None, &[bad.into()], public).is_err(),
                "{bad}"
            );
        }
        assert!(Auth::new(Vec::new(), None, None, &["10.0.0.0/8".into()], public).is_err());
    }

    #[test]
    fn cidr_ranges() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!net.contains("fd00::1".parse().unwrap()));
        let one = Cidr::parse("192.168.1.5").unwrap();
        assert!(one.contains("192.168.1.5".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("::/0")
            .unwrap()
            .contains("::1".parse().unwrap()));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Bb+c%zz%4"), "a+b c%zz%4");
    }
}
