//! What a `--redis` value names: one server, a list of seed nodes (one server or a Redis
//! Cluster, told apart by asking the first that answers), or a Sentinel-watched primary.
//!
//! The forms:
//! - `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS): one server, or any
//!   node of a Redis Cluster (cluster mode is detected: `INFO cluster` says
//!   `cluster_enabled:1`).
//! - `redis://node1:port,redis://node2:port,…`: several seed nodes of one cluster (or of
//!   one server's address, then the first that answers is used). Each seed is a full URL;
//!   credentials and TLS are taken from the first.
//! - `redis+sentinel://[user:password@]host:port[,host:port…]/MASTER_NAME[?db=N&sentinel_username=U&sentinel_password=P]`
//!   (`rediss+sentinel://` for TLS to the sentinels and the servers): the primary the
//!   sentinels name as `MASTER_NAME`, followed to its successor after a failover. The
//!   credentials in front of the hosts are the servers'; sentinels that need their own
//!   give them as `sentinel_username` / `sentinel_password`.

use super::RedisError;

/// How to treat the servers a URL names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedisMode {
    /// Ask the first seed that answers: `INFO cluster` says whether it is a cluster node
    /// (the default). A `redis+sentinel://` URL always means Sentinel.
    #[default]
    Detect,
    /// One server, even if it has cluster mode on.
    Single,
    /// A Redis Cluster, without asking.
    Cluster,
}

/// A parsed `--redis` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One URL or several seed URLs of plain servers or cluster nodes.
    Seeds(Vec<String>),
    /// A primary watched by sentinels.
    Sentinel(SentinelUrl),
}

/// The parts of a `redis+sentinel://` URL.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// TLS to the sentinels and the servers (`rediss+sentinel://`).
    pub tls: bool,
    /// `#insecure`: TLS without certificate checks (tests only).
    pub insecure: bool,
    /// `host:port` of every sentinel.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels know the primary by.
    pub master_name: String,
    /// The servers' ACL user, if not `default`.
    pub username: Option<String>,
    /// The servers' password.
    pub password: Option<String>,
    /// The database number on the servers.
    pub db: i64,
    /// The sentinels' ACL user.
    pub sentinel_username: Option<String>,
    /// The sentinels' password.
    pub sentinel_password: Option<String>,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords.
        f.debug_struct("SentinelUrl")
            .field("tls", &self.tls)
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("username", &self.username)
            .field("db", &self.db)
            .finish()
    }
}

const SENTINEL_FORM: &str =
    "redis+sentinel://[user:password@]host:port[,host:port...]/MASTER_NAME[?db=N]";

impl Topology {
    /// Parses a `--redis` value; `display` is the value with passwords masked, for errors.
    pub(crate) fn parse(url: &str, display: &str) -> Result<Topology, RedisError> {
        let url = url.trim();
        for (scheme, tls) in [("redis+sentinel://", false), ("rediss+sentinel://", true)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                return parse_sentinel(rest, tls, display).map(Topology::Sentinel);
            }
        }
        let seeds: Vec<String> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if seeds.is_empty() {
            return Err(RedisError::Config(
                "the Redis URL is empty: give redis://host:port (or several, comma-separated, \
                 or a redis+sentinel:// URL)"
                    .into(),
            ));
        }
        if let Some(bad) = seeds.iter().find(|s| !s.contains("://")) {
            return Err(RedisError::Config(format!(
                "invalid Redis URL {display}: the seed {:?} has no scheme; give each seed as a \
                 full URL: redis://host:port,redis://host2:port",
                super::connect::mask_password(bad)
            )));
        }
        Ok(Topology::Seeds(seeds))
    }
}

fn parse_sentinel(rest: &str, tls: bool, display: &str) -> Result<SentinelUrl, RedisError> {
    let bad = |why: &str| {
        RedisError::Config(format!(
            "invalid Redis Sentinel URL {display}: {why} (expected {SENTINEL_FORM})"
        ))
    };
    let (rest, insecure) = match rest.split_once('#') {
        Some((before, fragment)) => (before, fragment == "insecure"),
        None => (rest, false),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| bad("the master name is missing after the hosts"))?;
    let master_name = percent_decode(path.trim_end_matches('/'));
    if master_name.is_empty() || master_name.contains('/') {
        return Err(bad("the path must be the master's name"));
    }
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.split_once(':') {
            Some((user, pass)) => (
                Some(percent_decode(user)).filter(|u| !u.is_empty()),
                Some(percent_decode(pass)),
            ),
            None => (Some(percent_decode(info)).filter(|u| !u.is_empty()), None),
        },
    };
    let mut sentinels = Vec::new();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let (name, port) = host
            .rsplit_once(':')
            .ok_or_else(|| bad(&format!("the sentinel {host:?} has no port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(&format!("the sentinel {host:?} has a bad port")))?;
        let name = name.trim_start_matches('[').trim_end_matches(']');
        sentinels.push((name.to_string(), port));
    }
    if sentinels.is_empty() {
        return Err(bad("no sentinel host:port is given"));
    }
    let mut url = SentinelUrl {
        tls,
        insecure,
        sentinels,
        master_name,
        username,
        password,
        db: 0,
        sentinel_username: None,
        sentinel_password: None,
    };
    for param in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        let value = percent_decode(value);
        match name {
            "db" => {
                url.db = value
                    .parse()
                    .map_err(|_| bad(&format!("db={value} is not a number")))?
            }
            "sentinel_username" => url.sentinel_username = Some(value),
            "sentinel_password" => url.sentinel_password = Some(value),
            other => {
                return Err(bad(&format!(
                    "unknown parameter {other:?}; known: db, sentinel_username, sentinel_password"
                )))
            }
        }
    }
    Ok(url)
}

/// Decodes `%XX` escapes (for user names and passwords with reserved characters).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
                // Two hex digits make one byte: at most 255.
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_or_seeds() {
        assert_eq!(
            Topology::parse("redis://127.0.0.1:6379", "").ok(),
            Some(Topology::Seeds(vec!["redis://127.0.0.1:6379".into()]))
        );
        assert_eq!(
            Topology::parse("redis://a:1, redis://b:2,", "").ok(),
            Some(Topology::Seeds(vec![
                "redis://a:1".into(),
                "redis://b:2".into()
            ]))
        );
        let err = Topology::parse("redis://a:1,b:2", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("full URL"), "{err}");
        assert!(Topology::parse(" ", "").is_err());
    }

    #[test]
    fn sentinel_urls() {
        let Ok(Topology::Sentinel(s)) = Topology::parse(
            "redis+sentinel://app:p%40ss@h1:26379,h2:26380/mymaster?db=2&sentinel_password=sp",
            "",
        ) else {
            panic!("not parsed as Sentinel");
        };
        assert!(!s.tls);
        assert_eq!(
            s.sentinels,
            vec![("h1".into(), 26379), ("h2".into(), 26380)]
        );
        assert_eq!(s.master_name, "mymaster");
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.db, 2);
        assert_eq!(s.sentinel_password.as_deref(), Some("sp"));
        let Ok(Topology::Sentinel(s)) = Topology::parse("rediss+sentinel://:pw@h:1/m#insecure", "")
        else {
            panic!("not parsed as Sentinel");
        };
        assert!(s.tls && s.insecure);
        assert_eq!((s.username, s.password.as_deref()), (None, Some("pw")));
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel://h/m",
            "redis+sentinel:///m",
            "redis+sentinel://h:1/m?color=red",
        ] {
            assert!(Topology::parse(bad, "").is_err(), "{bad}");
        }
    }
}
