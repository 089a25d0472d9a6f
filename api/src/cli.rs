//! Command-line interface of the `pyairtable` binary.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use pyairtable_eventstore::{EventStore, Position, RecordedEvent, StreamId};

use pyairtable_commands::{Caller, CommandContext, CreateApiToken, Platform, RegisterUser};
use pyairtable_domain::ids::{BaseId, UserId};
use pyairtable_domain::roles::Scope;

use crate::Application;
use crate::config::{ServeSettings, Settings};

/// PyAirtable: an event-sourced, self-hostable Airtable-style data platform.
#[derive(Debug, Parser)]
#[command(name = "pyairtable", version, about)]
pub struct Cli {
    /// Where the services are.
    #[command(flatten)]
    pub settings: Settings,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations and exit.
    Migrate,
    /// Migrate, then serve HTTP (`/healthz`, `/readyz`, the APIs) until SIGINT/SIGTERM.
    Serve(ServeSettings),
    /// Inspect the event store.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Inspect and operate the projections (read models).
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage workspaces.
    #[command(subcommand)]
    Workspaces(WorkspacesCommand),
    /// Manage personal API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
}

/// `pyairtable users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Register a user; prints the new `usr…` id.
    Create {
        /// Email address (unique, case-insensitive).
        #[arg(long)]
        email: String,
        /// Read the password from standard input (first line) instead of a flag, so it never
        /// shows in the process list or the shell history.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Display name (default: the part of the email before `@`).
        #[arg(long)]
        name: Option<String>,
        /// Make the user an instance administrator.
        #[arg(long)]
        admin: bool,
    },
}

/// `pyairtable workspaces ...`
#[derive(Debug, Subcommand)]
pub enum WorkspacesCommand {
    /// Create a workspace owned by an existing user; prints the new `wsp…` id.
    Create {
        /// Email of the owner.
        #[arg(long)]
        owner: String,
        /// Name of the workspace.
        #[arg(long)]
        name: String,
    },
}

/// `pyairtable tokens ...`
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a personal API token for a user; prints the token once (it is stored hashed).
    Create {
        /// Email of the token's owner.
        #[arg(long)]
        email: String,
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
        /// Comma-separated Airtable scopes, e.g. `data.records:read,data.records:write`.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Restrict the token to this base (repeat for several).
        #[arg(long = "base")]
        bases: Vec<String>,
    },
}

/// `pyairtable projections ...`
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Position, lag (events and seconds), state and parked events of every projection.
    Status {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replay a projection from the event store into a shadow copy, catch up, then switch
    /// atomically. Queries keep answering from the old copy until the switch.
    Rebuild {
        /// The projection (see `projections status`).
        name: String,
    },
    /// Apply the parked events of a projection again (and resume it if it was halted).
    Retry {
        /// The projection.
        name: String,
    },
}

/// `pyairtable events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events of the global feed from a position on, then follow new commits live.
    Tail {
        /// Start after this position token (default: the beginning of the feed).
        #[arg(long)]
        from: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Exit once caught up instead of following new commits.
        #[arg(long)]
        no_follow: bool,
    },
    /// Recompute the hash chain and report the first broken link of each broken stream.
    /// Exits with status 1 when any stream is broken.
    Verify {
        /// Check only this stream.
        #[arg(long)]
        stream: Option<String>,
    },
}

/// Parses the command line, runs it and maps the outcome to an exit status.
pub async fn main() -> ExitCode {
    // One TLS crypto provider for every client in the process (sqlx, async-nats, reqwest):
    // with none installed rustls panics at the first TLS connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    init_tracing();
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PYAIRTABLE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let json = std::env::var("PYAIRTABLE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests calling main twice) is harmless; ignore it.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Migrate => {
            let store = EventStore::connect(cli.settings.store_config()?).await?;
            store.migrate().await?;
            println!("migrations applied (namespace {})", store.namespace());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(serve) => {
            let app = Application::build(&cli.settings, &serve).await?;
            let addr = app.local_addr()?;
            tracing::info!(%addr, "pyairtable listening");
            println!("pyairtable listening on http://{addr}");
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Events(EventsCommand::Tail {
            from,
            json,
            no_follow,
        }) => {
            let store = EventStore::connect(cli.settings.store_config()?).await?;
            let from = match from {
                Some(token) => token
                    .parse::<Position>()
                    .map_err(|e| anyhow::anyhow!("--from: {e}"))?,
                None => Position::START,
            };
            tail(&store, from, json, !no_follow).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Projections(command) => projections(&cli.settings, command).await,
        Command::Users(command) => users(&cli.settings, command).await,
        Command::Workspaces(command) => workspaces(&cli.settings, command).await,
        Command::Tokens(command) => tokens(&cli.settings, command).await,
        Command::Events(EventsCommand::Verify { stream }) => {
            let store = EventStore::connect(cli.settings.store_config()?).await?;
            let reports = match stream {
                Some(id) => {
                    let id = StreamId::parse(&id).map_err(|e| anyhow::anyhow!("--stream: {e}"))?;
                    vec![store.verify_stream(&id).await?]
                }
                None => store.verify_all().await?,
            };
            let mut broken = 0usize;
            let mut checked = 0u64;
            for report in &reports {
                checked += report.events_checked;
                if let Some(link) = &report.first_broken {
                    broken += 1;
                    println!(
                        "BROKEN {} at version {}: {}",
                        report.stream, link.version, link.reason
                    );
                }
            }
            println!(
                "{} stream(s), {} event(s) checked, {} broken",
                reports.len(),
                checked,
                broken
            );
            Ok(if broken == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The application layer, acting as the operator at the CLI (recorded as actor `system:cli`).
async fn connect_platform(settings: &Settings) -> anyhow::Result<(Platform, CommandContext)> {
    let store = EventStore::connect(settings.store_config()?).await?;
    store.migrate().await?;
    let auth = settings.auth_config(&store).await?;
    let platform = Platform::new(store, auth).await?;
    Ok((platform, CommandContext::new(Caller::system("cli"))))
}

/// Finds a user by email, with an error naming the flag when there is none.
async fn user_by_email(platform: &Platform, flag: &str, email: &str) -> anyhow::Result<UserId> {
    platform
        .user_by_email(email)
        .await?
        .map(|user| user.user_id)
        .ok_or_else(|| anyhow::anyhow!("{flag}: no user with email {email:?}"))
}

async fn users(settings: &Settings, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let UsersCommand::Create {
        email,
        password_stdin: _,
        name,
        admin,
    } = command;
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        !password.is_empty(),
        "--password-stdin: no password on standard input"
    );
    let (platform, ctx) = connect_platform(settings).await?;
    let written = platform
        .register_user(
            &ctx,
            RegisterUser {
                email,
                display_name: name,
                password,
                is_admin: admin,
            },
        )
        .await?;
    println!("{}", written.id);
    Ok(ExitCode::SUCCESS)
}

async fn workspaces(settings: &Settings, command: WorkspacesCommand) -> anyhow::Result<ExitCode> {
    let WorkspacesCommand::Create { owner, name } = command;
    let (platform, ctx) = connect_platform(settings).await?;
    let owner = user_by_email(&platform, "--owner", &owner).await?;
    let written = platform.create_workspace(&ctx, &name, Some(&owner)).await?;
    println!("{}", written.id);
    Ok(ExitCode::SUCCESS)
}

async fn tokens(settings: &Settings, command: TokensCommand) -> anyhow::Result<ExitCode> {
    let TokensCommand::Create {
        email,
        name,
        scopes,
        bases,
    } = command;
    let scopes = scopes
        .iter()
        .map(|s| Scope::parse(s.trim()).map_err(|e| anyhow::anyhow!("--scopes: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let base_ids = bases
        .iter()
        .map(|b| BaseId::parse(b).map_err(|e| anyhow::anyhow!("--base: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (platform, ctx) = connect_platform(settings).await?;
    let owner = user_by_email(&platform, "--email", &email).await?;
    let created = platform
        .create_api_token(
            &ctx,
            CreateApiToken {
                owner: Some(owner),
                name,
                scopes,
                base_ids: (!base_ids.is_empty()).then_some(base_ids),
            },
        )
        .await?;
    let token = created
        .token
        .ok_or_else(|| anyhow::anyhow!("the token was created by an earlier identical request"))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

async fn connect_projections(
    settings: &Settings,
) -> anyhow::Result<pyairtable_projections::Projections> {
    let store = EventStore::connect(settings.store_config()?).await?;
    store.migrate().await?;
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(settings.nats_url.as_str())
        .await?;
    let redis = redis::Client::open(settings.redis_url.as_str())?;
    let projections = pyairtable_projections::Projections::new(
        store,
        nats,
        redis,
        pyairtable_projections::RuntimeConfig::default(),
    )
    .await?;
    projections.install().await?;
    Ok(projections)
}

async fn projections(settings: &Settings, command: ProjectionsCommand) -> anyhow::Result<ExitCode> {
    let projections = connect_projections(settings).await?;
    match command {
        ProjectionsCommand::Status { json } => {
            let statuses = projections.status().await?;
            let mut out = std::io::stdout().lock();
            if !json {
                writeln!(
                    out,
                    "{:<12} {:<6} {:>4} {:>10} {:>9} {:<11} {:>7}  POSITION",
                    "NAME", "STORE", "GEN", "LAG(EVT)", "LAG(S)", "STATE", "PARKED"
                )?;
            }
            for s in statuses {
                if json {
                    let line = serde_json::json!({
                        "name": s.name,
                        "backend": format!("{:?}", s.backend).to_lowercase(),
                        "generation": s.generation,
                        "position": s.position.to_string(),
                        "lagEvents": s.lag_events,
                        "lagSeconds": s.lag_seconds,
                        "state": s.state.as_str(),
                        "parked": s.parked,
                    });
                    writeln!(out, "{line}")?;
                } else {
                    writeln!(
                        out,
                        "{:<12} {:<6} {:>4} {:>10} {:>9.2} {:<11} {:>7}  {}",
                        s.name,
                        format!("{:?}", s.backend).to_lowercase(),
                        s.generation,
                        s.lag_events,
                        s.lag_seconds,
                        s.state.as_str(),
                        s.parked,
                        s.position
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Rebuild { name } => {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:<24} [{bar:40}] {pos}/{len} events  {per_sec}  eta {eta}",
                )
                .map_err(|e| anyhow::anyhow!("progress template: {e}"))?
                .progress_chars("=> "),
            );
            let report = projections
                .rebuild(&name, |p| {
                    // Writes go on during a rebuild, so the replay may pass the initial total.
                    bar.set_length(p.total.max(p.done));
                    bar.set_position(p.done);
                    bar.set_message(format!("{} g{} {:?}", p.projection, p.generation, p.phase));
                })
                .await?;
            bar.finish();
            println!(
                "rebuilt {} into generation {}: {} events in {:.1}s ({} parked)",
                report.projection,
                report.generation,
                report.events,
                report.elapsed.as_secs_f64(),
                report.parked
            );
            Ok(ExitCode::SUCCESS)
        }
        ProjectionsCommand::Retry { name } => {
            let (resolved, failing) = projections.retry_parked(&name).await?;
            println!("{name}: {resolved} parked event(s) applied, {failing} still failing");
            Ok(if failing == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Prints the feed from `from`; with `follow`, keeps printing new commits until interrupted.
async fn tail(store: &EventStore, from: Position, json: bool, follow: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "{:<28} {:<32} {:>7} {:<28} ACTOR",
            "POSITION", "STREAM", "VERSION", "TYPE"
        )?;
    }
    if follow {
        let mut feed = std::pin::pin!(store.subscribe_all(from));
        loop {
            tokio::select! {
                next = feed.next() => match next {
                    Some(event) => print_event(&mut out, &event?, json)?,
                    None => return Ok(()),
                },
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }
    let mut after = from;
    loop {
        let batch = store.read_all(&after, 500).await?;
        if batch.events.is_empty() {
            return Ok(());
        }
        for event in &batch.events {
            print_event(&mut out, event, json)?;
        }
        after = batch.next;
    }
}

fn print_event(out: &mut impl Write, event: &RecordedEvent, json: bool) -> anyhow::Result<()> {
    if json {
        let line = serde_json::json!({
            "position": event.position.to_string(),
            "stream": event.stream_id,
            "version": event.version,
            "eventId": event.event_id,
            "type": event.event_type,
            "schemaVersion": event.schema_version,
            "recordedAt": event.recorded_at,
            "metadata": event.metadata,
            "payload": event.payload,
        });
        writeln!(out, "{line}")?;
    } else {
        let actor = serde_json::to_string(&event.metadata.actor)?;
        writeln!(
            out,
            "{:<28} {:<32} {:>7} {:<28} {}",
            event.position.to_string(),
            event.stream_id,
            event.version,
            event.event_type,
            actor
        )?;
    }
    out.flush()?;
    Ok(())
}
