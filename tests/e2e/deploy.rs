//! What a cluster operator deploys and watches: the kustomize overlays of deploy/kubernetes/
//! rendered by the real `kubectl kustomize`, each rendered configuration loaded by
//! `portcullis check-config`; the alert rules of deploy/prometheus/ checked by `promtool`; and a
//! real Prometheus scraping a running portcullis, evaluating every alert expression and every
//! panel of the Grafana dashboard (deploy/grafana/).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::common::{write_config, ProxyProcess};
use crate::harness::{free_port, get, http_client, prerequisites, run, run_ok, Daemon};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn key<'a>(y: &'a Yaml, path: &[&str]) -> &'a Yaml {
    path.iter().fold(y, |y, k| &y[*k])
}

fn render(overlay: &str) -> Vec<Yaml> {
    let dir = repo().join("deploy/kubernetes/overlays").join(overlay);
    let out = run_ok(Command::new("kubectl").arg("kustomize").arg(&dir));
    YamlLoader::load_from_str(&String::from_utf8(out).unwrap()).unwrap()
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

/// `portcullis check-config` on `config`, with the files and variables a pod would have.
fn check_config(dir: &Path, config: &str) -> crate::harness::Finished {
    let path = dir.join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let token = dir.join("admin-token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check-config", "--config"])
        .arg(&path)
        .arg("ghcr.io/company/api")
        .env("PORTCULLIS__ADMIN__TOKEN_FILE", &token)
        .env("PORTCULLIS__STATE_DIR", dir.join("state"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("PGPASSWORD", "test"))
}

/// The top-level keys of DESIGN § 2 that this build does not know yet (being built on other
/// branches), found by asking the binary itself.
fn unknown_to_this_build(dir: &Path, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter(|k| {
            let probe = dir.join(format!("probe-{k}.yaml"));
            std::fs::write(
                &probe,
                format!("listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ndefault_upstream: d\nupstreams: {{d: {{url: \"http://127.0.0.1:1\"}}}}\n{k}: {{}}\n"),
            )
            .unwrap();
            let out = run(Command::new(env!("CARGO_BIN_EXE_portcullis"))
                .args(["check-config", "--config"])
                .arg(&probe));
            out.text().contains(&format!("unknown field `{k}`"))
        })
        .map(|k| k.to_string())
        .collect()
}

#[test]
fn kustomize_overlays_render_and_their_configurations_load() {
    if !prerequisites(&["kubectl"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for overlay in ["audit", "enforce", "scale-out"] {
        let docs = render(overlay);
        let deployments = of_kind(&docs, "Deployment");
        let [deployment] = deployments[..] else {
            panic!("{overlay}: one Deployment expected")
        };
        assert_eq!(
            key(deployment, &["metadata", "namespace"]).as_str(),
            Some("portcullis")
        );
        let pod = key(deployment, &["spec", "template", "spec"]);
        let container = &pod["containers"][0];
        assert_eq!(
            key(container, &["resources", "requests", "memory"]).as_str(),
            Some("192Mi")
        );
        assert_eq!(
            key(container, &["resources", "limits", "memory"]).as_str(),
            Some("384Mi")
        );
        let anti = key(pod, &["affinity", "podAntiAffinity"]);
        assert!(!anti.is_badvalue(), "{overlay}: anti-affinity");
        let pdbs = of_kind(&docs, "PodDisruptionBudget");
        assert_eq!(pdbs.len(), 1, "{overlay}: a PodDisruptionBudget");
        assert_eq!(key(pdbs[0], &["spec", "maxUnavailable"]).as_i64(), Some(1));

        // The ConfigMap the pods mount is the generated one (its name carries a content hash).
        let maps = of_kind(&docs, "ConfigMap");
        let [map] = maps[..] else {
            panic!("{overlay}: one ConfigMap expected")
        };
        let name = key(map, &["metadata", "name"]).as_str().unwrap();
        assert!(name.starts_with("portcullis-config-"), "{name}");
        let mounted = pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("config"))
            .unwrap();
        assert_eq!(key(mounted, &["configMap", "name"]).as_str(), Some(name));
        let config = key(map, &["data", "config.yaml"])
            .as_str()
            .unwrap()
            .to_owned();

        match overlay {
            "scale-out" => {
                assert_eq!(key(deployment, &["spec", "replicas"]).as_i64(), Some(3));
                assert!(!anti["requiredDuringSchedulingIgnoredDuringExecution"].is_badvalue());
                assert_eq!(
                    key(&container["envFrom"][0], &["secretRef", "name"]).as_str(),
                    Some("portcullis-scale-out")
                );
                let parsed = &YamlLoader::load_from_str(&config).unwrap()[0];
                assert_eq!(
                    key(parsed, &["storage", "s3", "bucket"]).as_str(),
                    Some("portcullis-cache")
                );
                assert_eq!(
                    key(parsed, &["database", "password_env"]).as_str(),
                    Some("PGPASSWORD")
                );
            }
            _ => assert_eq!(key(deployment, &["spec", "replicas"]).as_i64(), Some(2)),
        }

        let mut config_to_check = config.clone();
        let pending = unknown_to_this_build(dir.path(), &["storage", "database"]);
        if overlay == "scale-out" && !pending.is_empty() {
            // Until `storage` and `database` land, check everything else of the file.
            eprintln!("NOTE: this build does not know {pending:?} yet; checking the rest of the scale-out configuration");
            let mut doc = YamlLoader::load_from_str(&config).unwrap().remove(0);
            if let Yaml::Hash(h) = &mut doc {
                for k in &pending {
                    assert!(h.remove(&Yaml::String(k.clone())).is_some());
                }
            }
            config_to_check.clear();
            YamlEmitter::new(&mut config_to_check).dump(&doc).unwrap();
        }
        let out = check_config(dir.path(), &config_to_check);
        assert!(
            out.status.success(),
            "{overlay}: check-config: {}",
            out.text()
        );
        let text = out.text();
        let want = if overlay == "audit" {
            "rule \"default-audit\" (audit)"
        } else {
            "rule \"company\" (enforce)"
        };
        assert!(text.contains(want), "{overlay}: {text}");
    }
}

#[test]
fn promtool_accepts_the_alert_rules() {
    if !prerequisites(&["promtool"], false) {
        return;
    }
    let rules = repo().join("deploy/prometheus/portcullis-rules.yaml");
    let out = run_ok(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(&rules),
    );
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("SUCCESS: 9 rules found"), "{out}");
}

/// Every alert expression of the rules file.
fn alert_exprs() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo().join("deploy/prometheus/portcullis-rules.yaml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    doc["groups"][0]["rules"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every panel query of the dashboard, with Grafana's variables filled in.
fn dashboard_exprs() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo().join("deploy/grafana/portcullis-dashboard.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*");
            out.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    out
}

async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> Value {
    let resp = client
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expr)])
        .send()
        .await
        .unwrap();
    // Not JSON while Prometheus is still starting: polled again by the callers.
    resp.json().await.unwrap_or(Value::Null)
}

/// Polls `expr` until it returns at least one sample, or panics at the deadline.
async fn wait_for_samples(
    client: &reqwest::Client,
    prometheus: &str,
    expr: &str,
    deadline: Instant,
) -> Value {
    loop {
        let v = query(client, prometheus, expr).await;
        if v["status"] == "success"
            && v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            return v;
        }
        assert!(Instant::now() < deadline, "no samples for {expr}: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_portcullis_and_evaluates_alerts_and_dashboard() {
    if !prerequisites(&["prometheus"], false) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // An upstream that refuses connections: upstream faults and 5xx answers for the alerts to see.
    let dead = free_port();
    let config = write_config(
        dir.path(),
        "dead.local",
        &format!("  dead.local: {{ url: \"http://127.0.0.1:{dead}\" }}"),
        "policies:\n  - name: company\n    match: [\"dead.local/**\"]\n    mode: enforce\n    attestors: [ { keyless: { subject_regexp: \".+\", issuer_regexp: \".+\" } } ]",
    );
    let proxy = ProxyProcess::start(&config);

    let rules = repo().join("deploy/prometheus/portcullis-rules.yaml");
    let port = free_port();
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nrule_files: [\"{}\"]\nscrape_configs:\n  - job_name: portcullis\n    static_configs: [ {{ targets: [\"{}\"] }} ]\n",
            rules.display(),
            proxy.admin
        ),
    )
    .unwrap();
    let mut prom = Daemon::spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle"),
        dir.path().join("prometheus.log"),
    );
    let prometheus = format!("http://127.0.0.1:{port}");
    let client = http_client();
    let deadline = Instant::now() + Duration::from_secs(60);

    loop {
        let ready = client.get(format!("{prometheus}/-/ready")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        prom.assert_running();
        assert!(Instant::now() < deadline, "prometheus did not become ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Traffic: every request to the dead upstream fails (502/503), /v2/ answers 200.
    for _ in 0..20 {
        get(&client, &format!("{}/v2/", proxy.url())).await;
        let r = get(
            &client,
            &format!("{}/v2/dead.local/company/app/manifests/v1", proxy.url()),
        )
        .await;
        assert!(r.status >= 500, "{}", r.status);
    }
    let up = wait_for_samples(
        &client,
        &prometheus,
        "up{job=\"portcullis\"} == 1",
        deadline,
    )
    .await;
    assert_eq!(up["data"]["result"][0]["value"][1], "1");
    prom.assert_running();

    // Two scrapes after the traffic, so that rate() has two samples of it.
    wait_for_samples(
        &client,
        &prometheus,
        "portcullis_http_requests_total{route=\"manifest\"}",
        deadline,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for _ in 0..10 {
        get(
            &client,
            &format!("{}/v2/dead.local/company/app/manifests/v1", proxy.url()),
        )
        .await;
    }

    // The fault alerts' expressions see the fault: they would fire after their `for`.
    let server_errors = alert_exprs()
        .into_iter()
        .find(|(a, _)| a == "PortcullisServerErrors")
        .unwrap()
        .1;
    let v = wait_for_samples(&client, &prometheus, &server_errors, deadline).await;
    assert!(
        v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.05,
        "{v}"
    );
    let upstream_errors = alert_exprs()
        .into_iter()
        .find(|(a, _)| a == "PortcullisUpstreamErrors")
        .unwrap()
        .1;
    let v = wait_for_samples(&client, &prometheus, &upstream_errors, deadline).await;
    assert_eq!(
        v["data"]["result"][0]["metric"]["upstream"], "dead.local",
        "{v}"
    );
    // And the healthy ones do not.
    for healthy in ["PortcullisDown", "PortcullisNotReady"] {
        let expr = alert_exprs()
            .into_iter()
            .find(|(a, _)| a == healthy)
            .unwrap()
            .1;
        let v = query(&client, &prometheus, &expr).await;
        assert_eq!(v["status"], "success", "{healthy}: {v}");
        assert!(
            v["data"]["result"].as_array().unwrap().is_empty(),
            "{healthy} would fire: {v}"
        );
    }

    // Every alert and panel expression evaluates.
    for (name, expr) in alert_exprs().into_iter().chain(dashboard_exprs()) {
        let v = query(&client, &prometheus, &expr).await;
        assert_eq!(v["status"], "success", "{name}: {expr}: {v}");
    }
    // The panels over metrics this traffic produced have data.
    for title in [
        "Client requests by route and status",
        "Upstream requests by upstream, kind and status",
        "Ready replicas",
    ] {
        let (_, expr) = dashboard_exprs()
            .into_iter()
            .find(|(t, _)| t == title)
            .unwrap();
        wait_for_samples(&client, &prometheus, &expr, deadline).await;
    }

    // Prometheus itself evaluated every rule without error.
    loop {
        let v: Value = client
            .get(format!("{prometheus}/api/v1/rules"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rules = v["data"]["groups"][0]["rules"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if rules.len() == 9 && rules.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(Instant::now() < deadline, "rules not all evaluated ok: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        prom.terminate(Duration::from_secs(10)),
        "prometheus did not stop"
    );
}
