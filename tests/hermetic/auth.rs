//! Who may pull: htpasswd Basic credentials, client certificates on the TLS listener, per-user
//! access, and the admin token, against the in-process proxy and a fake upstream that records
//! what reached it.

use base64::Engine as _;
use http::StatusCode;

use crate::fake::{client, error_code, oci_error, FakeUpstream, Proxy};

const PASSWORD: &str = "correct horse";

fn htpasswd() -> String {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    format!("ci:{hash}\nnodes:{hash}\n")
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn upstream() -> FakeUpstream {
    FakeUpstream::start(|_| async { oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN") }).await
}

/// A proxy whose config folder holds `files`, with `extra` YAML.
async fn proxy_with(up: &FakeUpstream, files: &[(&str, String)], extra: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = crate::fake::write_config(
        dir.path(),
        "fake.local",
        &format!("  fake.local: {{ url: \"{}\" }}", up.url()),
        extra,
    );
    Proxy::start_file(&path, dir).await
}

#[tokio::test]
async fn htpasswd_users_answer_the_challenge_and_access_says_what_they_pull() {
    let up = upstream().await;
    let proxy = proxy_with(
        &up,
        &[("users", htpasswd())],
        "auth:\n  htpasswd: users\n  realm: corp-mirror\n  access:\n    - { match: [\"fake.local/team/**\"], users: [ci, nodes] }\n    - { match: [\"fake.local/team/secret/**\"], users: [ci] }\n",
    )
    .await;
    let get = |path: &str, auth: Option<String>| {
        let mut req = client().get(format!("{}/v2/{path}", proxy.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };

    // `/v2/` challenges, as registries do: clients learn there that they must authenticate.
    let resp = get("", None).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"corp-mirror\""
    );
    let (_, code, _) = error_code(resp).await;
    assert_eq!(code, "UNAUTHORIZED");
    assert_eq!(
        get("", Some(basic("ci", PASSWORD))).await.unwrap().status(),
        200
    );

    // Wrong password, unknown user, another scheme: the same 401, nothing forwarded.
    for auth in [
        basic("ci", "hunter2-guess"),
        basic("eve", PASSWORD),
        "Bearer abc".to_owned(),
        "Basic !!!".to_owned(),
    ] {
        let resp = get("team/app/manifests/v1", Some(auth.clone()))
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{auth}");
        assert!(resp.headers().contains_key("www-authenticate"));
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(PASSWORD) && !text.contains("hunter2"),
            "{text}"
        );
    }
    assert_eq!(
        up.total(),
        0,
        "nothing reaches the upstream unauthenticated"
    );

    // Granted: forwarded (the fake knows no manifest).
    let resp = get("team/app/manifests/v1", Some(basic("nodes", PASSWORD)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The most specific entry wins: `nodes` may not pull the secret repository, `ci` may.
    let resp = get(
        "team/secret/db/manifests/v1",
        Some(basic("nodes", PASSWORD)),
    )
    .await
    .unwrap();
    let (status, code, message) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert_eq!(message, "requested access to the resource is denied");
    let resp = get("team/secret/db/manifests/v1", Some(basic("ci", PASSWORD)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // With `access`, what no entry matches is refused.
    let resp = get("library/alpine/manifests/v1", Some(basic("ci", PASSWORD)))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(up.total(), 2, "refused requests were not forwarded");

    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(r#"portcullis_auth_failures_total{reason="bad_credentials"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"portcullis_auth_failures_total{reason="forbidden"} 2"#),
        "{metrics}"
    );
    assert!(!metrics.contains(PASSWORD));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client: String,
}

fn pki(client_cn: &str) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test clients CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, client_cn);
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
    Pki {
        ca: ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        client: format!("{}{}", client.pem(), client_key.serialize_pem()),
    }
}

#[tokio::test]
async fn a_client_certificate_names_the_user() {
    let up = upstream().await;
    let trusted = pki("node-1");
    let proxy = proxy_with(
        &up,
        &[
            ("ca.pem", trusted.ca.clone()),
            ("tls.crt", trusted.server_cert.clone()),
            ("tls.key", trusted.server_key.clone()),
        ],
        "tls: { cert: tls.crt, key: tls.key }\nauth:\n  client_ca: ca.pem\n  access:\n    - { match: [\"fake.local/team/**\"], users: [node-1] }\n",
    )
    .await;
    let addr = proxy.server.as_ref().unwrap().api_addr;
    let https = |identity: Option<&str>| {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(trusted.ca.as_bytes()).unwrap());
        if let Some(pem) = identity {
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    };
    let url = |path: &str| format!("https://127.0.0.1:{}/v2/{path}", addr.port());

    let node = https(Some(&trusted.client));
    assert_eq!(node.get(url("")).send().await.unwrap().status(), 200);
    let resp = node.get(url("team/app/manifests/v1")).send().await.unwrap();
    assert_eq!(resp.status(), 404, "node-1 may pull team/**");
    let resp = node
        .get(url("other/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(up.total(), 1);

    // Without a certificate, or with one of another CA, the handshake fails: client_ca alone
    // requires certificates.
    assert!(https(None).get(url("")).send().await.is_err());
    let stranger = pki("node-1");
    assert!(https(Some(&stranger.client))
        .get(url(""))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn the_admin_token_guards_the_admin_listener() {
    let up = upstream().await;
    let token = "0123456789abcdef-admin-token";
    let proxy = proxy_with(
        &up,
        &[("admin-token", format!("{token}\n"))],
        "admin: { token_file: admin-token, open: [healthz] }\n",
    )
    .await;
    let admin = |path: &str, auth: Option<&str>| {
        let mut req = client().get(format!("{}{path}", proxy.admin));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    assert_eq!(admin("/healthz", None).await.unwrap().status(), 200);
    assert_eq!(admin("/readyz", None).await.unwrap().status(), 401);
    assert_eq!(admin("/metrics", None).await.unwrap().status(), 401);
    let resp = admin("/metrics", Some(&format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains(r#"portcullis_auth_failures_total{reason="admin_token"} 2"#));
    assert!(!text.contains(token));
}
