//! The `portcullis` command line: `serve`, `check-config`, `verify`, `audit`, `inventory`,
//! `advisories`, `cache`, `import` and `verify-bundle`.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use portcullis::config::Config;
use portcullis::server::Server;
use portcullis::signature::TrustRoot;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "A pull-through, verifying OCI registry proxy"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum InventoryCommand {
    /// The pulled images whose SBOMs list a package, by purl or name, optionally in a range.
    Query {
        /// A package URL (pkg:maven/org.apache.logging.log4j/log4j-core; version ignored).
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        purl: Option<String>,
        /// A package name, in any ecosystem.
        #[arg(long)]
        name: Option<String>,
        /// A range: <2.17.1, >=2.0.0,<2.17.1, or a vers: URI.
        #[arg(long)]
        range: Option<String>,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON: every entry names `image` and `digest`.
        #[arg(long)]
        json: bool,
    },
    /// One pulled digest's SBOM: where it came from, its packages, its pulls.
    Image {
        /// IMAGE@DIGEST (the digest decides; the name is shown when nothing is recorded).
        image: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The pulled images an advisory affects: imported (by CVE or advisory id) or from a file.
    Affected {
        /// A CVE id (an alias of the imported advisories).
        #[arg(long, group = "which")]
        cve: Option<String>,
        /// An advisory id (GHSA-..., an OSV id).
        #[arg(long, group = "which")]
        advisory: Option<String>,
        /// An OSV advisory file, not imported.
        #[arg(long, group = "which")]
        osv: Option<PathBuf>,
        #[command(flatten)]
        scope: ScopeArgs,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// Which pulled images an inventory answer lists.
#[derive(clap::Args)]
struct ScopeArgs {
    /// Only images pulled this long ago or later (30d, 24h).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<std::time::Duration>,
    /// Only images pulled under this rule.
    #[arg(long)]
    rule: Option<String>,
    /// Only images pulled from this upstream (its key in `upstreams`).
    #[arg(long)]
    upstream: Option<String>,
    /// Only images whose canonical name matches this glob (a namespace: docker.io/company/**).
    #[arg(long)]
    image: Option<String>,
}

impl ScopeArgs {
    fn scope(self) -> anyhow::Result<portcullis::inventory::query::Scope> {
        Ok(portcullis::inventory::query::Scope {
            since: portcullis::inventory::query::Scope::since(self.since),
            rule: self.rule,
            upstream: self.upstream,
            image: self
                .image
                .as_deref()
                .map(portcullis::policy::Pattern::new)
                .transpose()
                .context("--image")?,
        })
    }
}

#[derive(Subcommand)]
enum AdvisoriesCommand {
    /// Store OSV advisories from a JSON file, a directory of them, or an OSV all.zip archive,
    /// each replacing what was stored under its id.
    Import {
        /// FILE, DIR or ZIP.
        path: PathBuf,
        /// The configuration whose database is written (default: the embedded one).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the import report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (on the embedded default configuration when --config is not given).
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration and print what it means; with IMAGE, how that image is routed.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
        /// An image name such as ghcr.io/company/app or alpine.
        image: Option<String>,
    },
    /// Run the proxy's discovery, verification and policy for one image, as a pipeline step.
    /// Exit status: 0 allowed, 1 denied, 2 error.
    Verify {
        /// The image: [registry/]repository[:tag|@digest], routed as the proxy routes it.
        image: String,
        #[arg(long, short)]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// From the SBOMs of pulled images: which contain a package, which an advisory affects.
    Inventory {
        #[command(subcommand)]
        command: InventoryCommand,
    },
    /// OSV advisories for `portcullis inventory affected`.
    Advisories {
        #[command(subcommand)]
        command: AdvisoriesCommand,
    },
    /// From the pull ledger: what audit rules let through unverified (what enforce would refuse),
    /// what was refused, and the signature lookup faults, grouped by rule and image.
    Audit {
        /// The configuration whose database is read (default: the embedded one, SQLite under
        /// its state_dir).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The window: pulls last seen this long ago or later (7d, 24h, 30m).
        #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only images matching this pattern (`*` one path segment, `**` any depth).
        #[arg(long)]
        image: Option<String>,
        /// Print JSON: every entry names `image` and `digest`.
        #[arg(long)]
        json: bool,
        /// Re-decide the window's digests under this proposed configuration and list what would
        /// change (fetches them and their signatures from its upstreams).
        #[arg(long, value_name = "NEW.yaml", conflicts_with_all = ["rule", "image"])]
        what_if: Option<PathBuf>,
    },
    /// Check every stored blob against its digest (`verify`, exit 1 when one was corrupt), or
    /// evict the filesystem store down to its bound (`gc`).
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Translate Kyverno or policy-controller policies into a portcullis configuration.
    /// Exit status: 0 all carried over, 1 something not carried over, 2 error.
    Import(portcullis::cli::import::ImportArgs),
    /// Verify one Sigstore bundle against an artifact (sigstore-conformance client interface).
    /// Exit status: 0 verified, 1 not verified, 2 error.
    VerifyBundle {
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long, conflicts_with = "certificate_identity_regexp")]
        certificate_identity: Option<String>,
        #[arg(long)]
        certificate_identity_regexp: Option<String>,
        #[arg(long)]
        certificate_oidc_issuer: Option<String>,
        /// A Sigstore trusted root JSON; default: the embedded public-good root.
        #[arg(long)]
        trusted_root: Option<PathBuf>,
        /// A PEM public key: verify a key-signed bundle instead of a certificate identity.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The artifact: a file, or sha256:<hex>.
        artifact: String,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    Verify {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    Gc {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder
            .fmt_fields(portcullis::logging::EscapedFields)
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            match cli.log_format {
                LogFormat::Json => tracing::error!(error = %format!("{e:#}"), "fatal"),
                LogFormat::Text => eprintln!(
                    "portcullis: {}",
                    portcullis::logging::escape_control(&format!("{e:#}"))
                ),
            }
            ExitCode::from(2)
        }
    }
}

/// Runs a command; `Ok(false)` is a negative answer (exit 1), `Err` an error (exit 2).
fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Serve { config } => {
            let config = Config::load(config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                // Headroom for deep request futures (verification) in unoptimised builds; only
                // touched pages count towards memory.
                .thread_stack_size(4 * 1024 * 1024)
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(config))?;
            Ok(true)
        }
        Command::CheckConfig { config, image } => {
            let config = Config::load(Some(&config))?;
            // The trusted root is parsed where it is used; check-config parses it too.
            TrustRoot::load(&config.trusted_root)?;
            print!(
                "{}",
                portcullis::cli::check_config::describe(&config, image.as_deref())?
            );
            Ok(true)
        }
        Command::Verify {
            image,
            config,
            json,
        } => {
            let config = Config::load(Some(&config))?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let report = runtime
                .block_on(portcullis::cli::verify::verify_image(&config, &image))
                .with_context(|| format!("verifying {image}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(report.allowed())
        }
        Command::Audit {
            config,
            since,
            rule,
            image,
            json,
            what_if,
        } => {
            let config = Config::load(config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            if let Some(proposed) = what_if {
                let proposed = Config::load(Some(&proposed))?;
                let report = runtime
                    .block_on(portcullis::cli::what_if::what_if(&config, &proposed, since))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{report}");
                }
                return Ok(true);
            }
            let image = image
                .as_deref()
                .map(portcullis::policy::Pattern::new)
                .transpose()
                .context("--image")?;
            let query = portcullis::ledger::report::Query { since, rule, image };
            let report = runtime.block_on(portcullis::cli::audit::audit(&config, &query))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(true)
        }
        Command::Cache { action } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let report = match action {
                CacheAction::Verify { config } => {
                    let config = Config::load(config.as_deref())?;
                    runtime.block_on(portcullis::cli::cache::verify(&config))?
                }
                CacheAction::Gc { config } => {
                    let config = Config::load(config.as_deref())?;
                    runtime.block_on(portcullis::cli::cache::gc(&config))?
                }
            };
            print!("{report}");
            Ok(report.clean())
        }
        Command::Import(args) => portcullis::cli::import::run(args),
        Command::Inventory { command } => inventory(command),
        Command::Advisories {
            command: AdvisoriesCommand::Import { path, config, json },
        } => {
            let config = Config::load(config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let report = runtime.block_on(async {
                let db = portcullis::cli::audit::open(&config).await?;
                anyhow::Ok(portcullis::inventory::advisories::import(&db, &path).await?)
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(true)
        }
        Command::VerifyBundle {
            bundle,
            certificate_identity,
            certificate_identity_regexp,
            certificate_oidc_issuer,
            trusted_root,
            key,
            artifact,
        } => verify_bundle(
            &bundle,
            certificate_identity,
            certificate_identity_regexp,
            certificate_oidc_issuer,
            trusted_root,
            key,
            &artifact,
        ),
    }
}

fn verify_bundle(
    bundle: &std::path::Path,
    identity: Option<String>,
    identity_regexp: Option<String>,
    issuer: Option<String>,
    trusted_root: Option<PathBuf>,
    key: Option<PathBuf>,
    artifact: &str,
) -> anyhow::Result<bool> {
    use portcullis::cli::verify_bundle::{BundleError, BundleSigner};
    use portcullis::policy::Matcher;
    let root = match trusted_root {
        None => TrustRoot::public_good()?,
        Some(p) => {
            let json = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            TrustRoot::from_json(&json, p.display().to_string())?
        }
    };
    let bundle_json =
        std::fs::read_to_string(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let signer = match (key, identity, identity_regexp, issuer) {
        (Some(k), None, None, _) => BundleSigner::Key(
            std::fs::read_to_string(&k).with_context(|| format!("reading {}", k.display()))?,
        ),
        (None, Some(id), None, Some(iss)) => BundleSigner::Identity {
            identity: Matcher::Exact(id),
            issuer: iss,
        },
        (None, None, Some(re), Some(iss)) => BundleSigner::Identity {
            identity: Matcher::regexp(&re)?,
            issuer: iss,
        },
        _ => anyhow::bail!(
            "give --key, or --certificate-identity[-regexp] with --certificate-oidc-issuer"
        ),
    };
    match portcullis::cli::verify_bundle::verify_bundle(&root, &bundle_json, artifact, &signer) {
        Ok(who) => {
            println!("OK: verified, signed by {who}");
            Ok(true)
        }
        Err(BundleError::NotVerified(reason)) => {
            println!("FAIL: {reason}");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

fn inventory(command: InventoryCommand) -> anyhow::Result<bool> {
    use portcullis::inventory::{osv::Advisory, query, versions::Range};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (answer, json) = match command {
        InventoryCommand::Image {
            image,
            config,
            json,
        } => {
            let (name, digest) = image
                .split_once('@')
                .context("give the image as IMAGE@DIGEST (sha256:...)")?;
            let digest: portcullis::oci::Digest = digest
                .parse()
                .with_context(|| format!("{digest:?} is not a digest"))?;
            let config = Config::load(config.as_deref())?;
            let answer = runtime.block_on(async {
                let db = portcullis::cli::audit::open(&config).await?;
                anyhow::Ok(query::image::image(&db, name, &digest.to_string()).await?)
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print!("{answer}");
            }
            return Ok(true);
        }
        InventoryCommand::Query {
            purl,
            name,
            range,
            scope,
            config,
            json,
        } => {
            let scope = scope.scope()?;
            let config = Config::load(config.as_deref())?;
            let range = range
                .as_deref()
                .map(Range::parse)
                .transpose()
                .context("--range")?;
            let package = purl.or(name).context("give --purl or --name")?;
            let answer = runtime.block_on(async {
                let db = portcullis::cli::audit::open(&config).await?;
                anyhow::Ok(query::query(&db, &package, range.as_ref(), &scope).await?)
            })?;
            (answer, json)
        }
        InventoryCommand::Affected {
            cve,
            advisory,
            osv,
            scope,
            config,
            json,
        } => {
            let scope = scope.scope()?;
            let config = Config::load(config.as_deref())?;
            let answer = runtime.block_on(async {
                let db = portcullis::cli::audit::open(&config).await?;
                let advisories = match (cve.or(advisory), osv) {
                    (_, Some(path)) => {
                        let bytes = std::fs::read(&path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        vec![Advisory::parse(&bytes).with_context(|| path.display().to_string())?]
                    }
                    (Some(id), None) => query::named_advisories(&db, &id).await?,
                    (None, None) => anyhow::bail!("give --cve, --advisory or --osv"),
                };
                anyhow::Ok(query::affected(&db, &advisories, &scope).await?)
            })?;
            (answer, json)
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{answer}");
    }
    Ok(true)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let server = Server::start(config).await?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            // Read the configuration again; the outcome is logged and counted by `reload`, and
            // a configuration that does not validate leaves the one in force as it is.
            _ = hup.recv() => {
                let _ = server.reload().await;
            }
        }
    }
    tracing::info!("shutdown signal received; draining (send it again to stop at once)");
    tokio::select! {
        _ = server.shutdown() => tracing::info!("stopped"),
        _ = term.recv() => tracing::warn!("second signal: stopping without draining"),
        _ = int.recv() => tracing::warn!("second signal: stopping without draining"),
    }
    Ok(())
}
