//! The deployment files parse and carry what they must: `deploy/compose.yaml` (Redis with
//! AOF and a password, a coordinator, two workers, metrics ports, healthchecks) and every
//! `deploy/k8s/*.yaml` (coordinator Deployment with 2 replicas, a worker Deployment with an
//! HPA, probes on `/readyz` and `/healthz`, a Secret with the Redis URL). Docker is not
//! needed: this is the check CI runs.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Every document of a YAML file.
fn documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = read(path)?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| anyhow::anyhow!("{} does not parse: {e}", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn compose_has_redis_coordinator_and_two_workers() -> anyhow::Result<()> {
    let docs = documents(&deploy_dir().join("compose.yaml"))?;
    assert_eq!(docs.len(), 1);
    let services = &docs[0]["services"];
    for name in ["redis", "coordinator", "worker"] {
        assert!(services[name].is_object(), "service {name} missing");
        assert!(
            services[name]["healthcheck"]["test"].is_array(),
            "service {name} has no healthcheck"
        );
    }
    let redis_cmd = text_of(&services["redis"]["command"]);
    assert!(redis_cmd.contains("--requirepass"), "{redis_cmd}");
    assert!(redis_cmd.contains("redis.conf"), "{redis_cmd}");
    assert_eq!(services["worker"]["deploy"]["replicas"], 2);
    for name in ["coordinator", "worker"] {
        let env = &services[name]["environment"];
        assert!(
            text_of(&env["WEIR_REDIS_URL"]).starts_with("redis://:"),
            "{name}: the Redis URL carries the password"
        );
        assert!(
            env["WEIR_METRICS_ADDR"].is_string(),
            "{name}: metrics address"
        );
        assert!(services[name]["ports"].is_array(), "{name}: metrics port");
        assert!(
            text_of(&services[name]["command"]).contains("json"),
            "{name}: JSON logs"
        );
    }
    Ok(())
}

#[test]
fn redis_conf_has_the_recommended_settings() -> anyhow::Result<()> {
    let conf = read(&deploy_dir().join("redis.conf"))?;
    let set: Vec<&str> = conf
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for line in [
        "appendonly yes",
        "appendfsync everysec",
        "maxmemory-policy noeviction",
    ] {
        assert!(set.contains(&line), "redis.conf lacks {line:?}");
    }
    Ok(())
}

fn probe_path(container: &Value, probe: &str) -> Option<String> {
    container[probe]["httpGet"]["path"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn kubernetes_manifests_have_deployments_probes_and_a_secret() -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(deploy_dir().join("k8s"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files += 1;
            for doc in documents(&path)? {
                assert!(
                    doc["apiVersion"].is_string() && doc["kind"].is_string(),
                    "{}: every document has apiVersion and kind",
                    path.display()
                );
                assert!(doc["metadata"]["name"].is_string(), "{}", path.display());
                all.push(doc);
            }
        }
    }
    assert!(files >= 2, "no manifests found");
    let find = |kind: &str, name: &str| {
        all.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
    };

    let coordinator = find("Deployment", "weir-coordinator").expect("coordinator Deployment");
    assert_eq!(coordinator["spec"]["replicas"], 2);
    let worker = find("Deployment", "weir-worker").expect("worker Deployment");
    for d in [&coordinator, &worker] {
        let spec = &d["spec"];
        assert_eq!(
            spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"],
            "selector matches the pod labels"
        );
        let c = &spec["template"]["spec"]["containers"][0];
        assert_eq!(probe_path(c, "readinessProbe").as_deref(), Some("/readyz"));
        assert_eq!(probe_path(c, "livenessProbe").as_deref(), Some("/healthz"));
        let env_from = c["envFrom"].as_array().cloned().unwrap_or_default();
        assert!(
            env_from
                .iter()
                .any(|e| e["secretRef"]["name"] == "weir-redis"),
            "the Redis URL comes from the Secret"
        );
        assert_eq!(
            spec["template"]["spec"]["securityContext"]["runAsNonRoot"],
            true
        );
    }
    let hpa = find("HorizontalPodAutoscaler", "weir-worker").expect("worker HPA");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "weir-worker");
    let secret = find("Secret", "weir-redis").expect("Secret");
    assert!(secret["stringData"]["WEIR_REDIS_URL"].is_string());
    assert!(find("ConfigMap", "weir-config").is_some(), "ConfigMap");
    Ok(())
}
